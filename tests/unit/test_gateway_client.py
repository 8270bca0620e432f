"""The gateway client over real HTTP on loopback: headers, retries, faults, downloads, secrecy."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3.util.connection
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from studio.errors import (
    AuthenticationError,
    BadRequestError,
    GatewayConnectionError,
    GatewayError,
    GatewayResponseError,
    GatewayStatusError,
    GatewayTimeout,
    InsufficientBalanceError,
    LinkExpiredError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnsendableKeyError,
)
from studio.gateway import (
    KEY_HEADER,
    POLL_PATH,
    GatewayClient,
    RetryPolicy,
    TaskStatus,
    Timeouts,
)

KEY = "pz-test-key-5c1e9b7a2f"
SUBMIT_PATH = "/wan-i2v/v1/generateImageToVideoRequest"
FRAME_PATH = "/wan-i2v/v1/generateImageToVideoFrameRequest"
ACCEPTED = {"request_id": "req-1", "output": {"task_id": "task-1", "task_status": "PENDING"}}
REQUEST = {
    "model": "wan2.2-i2v-flash",
    "input": {"prompt": "A cat blinks.", "img_url": "https://images.example.com/cat.png"},
    "parameters": {"resolution": "480P", "duration": 5, "prompt_extend": True, "watermark": False},
}
FAST = Timeouts(connect=1.0, read=0.5)


class Sleeps:
    """Records every wait the client asks for instead of waiting."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        self.calls: list[float] = []
        self._on_first = on_first

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self._on_first is not None and len(self.calls) == 1:
            self._on_first()


def make_client(base_url: str, *, sleeps: Sleeps | None = None, **options: object) -> GatewayClient:
    options.setdefault("timeouts", FAST)
    options.setdefault("retry", RetryPolicy(max_attempts=3, backoff_base=0.1, backoff_cap=1.0))
    return GatewayClient(
        base_url=base_url,
        api_key=KEY,
        sleep=sleeps if sleeps is not None else Sleeps(),
        **options,
    )


@pytest.fixture
def client(httpserver: HTTPServer) -> Iterator[GatewayClient]:
    with make_client(httpserver.url_for("/")) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _capture_every_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RawServer:
    """A bare TCP server on loopback whose misbehaviour each test chooses."""

    def __init__(self, behaviour: Callable[[socket.socket, threading.Event], None]) -> None:
        self._behaviour = behaviour
        self._listener = socket.create_server(("127.0.0.1", 0))
        # Closing a socket does not wake a blocked accept(), so the acceptor polls for the stop.
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self.connections = 0
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            self._behaviour(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def raw_server(behaviour: Callable[[socket.socket, threading.Event], None]) -> Iterator[RawServer]:
    server = RawServer(behaviour)
    try:
        yield server
    finally:
        server.close()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return data


def hold_without_answering(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    stop.wait(10)


def reset_after_reading(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    # SO_LINGER 0 turns close() into a TCP reset.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def drop_mid_body(conn: socket.socket, stop: threading.Event) -> None:
    read_request(conn)
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 100000\r\n"
        b"Connection: close\r\n\r\n" + b"\x00" * 1000
    )


# Requests, headers and bodies.


def test_submit_sends_the_documented_headers_and_body(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    httpserver.expect_oneshot_request(
        SUBMIT_PATH,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Cache-Control": "no-cache",
            KEY_HEADER: KEY,
        },
        json=REQUEST,
    ).respond_with_json(ACCEPTED)
    receipt = client.submit(REQUEST, path=SUBMIT_PATH)
    httpserver.check_assertions()
    assert receipt.task_id == "task-1"
    assert receipt.status is TaskStatus.PENDING
    assert receipt.request_id == "req-1"


def test_a_payload_goes_to_the_path_it_is_given(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    # The client knows nothing of models: whoever built the payload chose its path.
    payload = {"model": "wan2.1-kf2v-plus", "input": {}, "parameters": {}}
    httpserver.expect_oneshot_request(FRAME_PATH, method="POST", json=payload).respond_with_json(
        ACCEPTED
    )
    assert client.submit(payload, path=FRAME_PATH).task_id == "task-1"
    httpserver.check_assertions()


def test_get_task_posts_the_task_id(httpserver: HTTPServer, client: GatewayClient) -> None:
    httpserver.expect_oneshot_request(
        POLL_PATH, method="POST", headers={KEY_HEADER: KEY}, json={"task_id": "task-1"}
    ).respond_with_json({"output": {"task_id": "task-1", "task_status": "RUNNING"}})
    snapshot = client.get_task("task-1")
    httpserver.check_assertions()
    assert snapshot.status is TaskStatus.RUNNING


def test_newer_contract_polls_by_get_on_the_polling_url(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    polling_url = httpserver.url_for("/v2/requests/status/abc123")
    httpserver.expect_oneshot_request(SUBMIT_PATH, method="POST").respond_with_json(
        {"request_id": "abc123", "status": "QUEUED", "polling_url": polling_url}
    )
    httpserver.expect_oneshot_request(
        "/v2/requests/status/abc123", method="GET", headers={KEY_HEADER: KEY}
    ).respond_with_json({"status": "COMPLETED", "output": {"media_url": ["https://cdn/x.mp4"]}})
    receipt = client.submit(REQUEST, path=SUBMIT_PATH)
    snapshot = client.get_task(receipt.task_id, polling_url=receipt.polling_url)
    httpserver.check_assertions()
    assert snapshot.task_id == "abc123"
    assert snapshot.status is TaskStatus.SUCCEEDED
    assert snapshot.video_url == "https://cdn/x.mp4"


def test_a_relative_polling_url_is_joined_to_the_base(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    httpserver.expect_oneshot_request("/v2/requests/status/r1", method="GET").respond_with_json(
        {"status": "IN_PROGRESS"}
    )
    assert client.get_task("r1", polling_url="/v2/requests/status/r1").status is TaskStatus.RUNNING


def test_the_key_is_never_sent_to_a_polling_url_on_another_host(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    with pytest.raises(GatewayResponseError, match="another address"):
        client.get_task("r1", polling_url="https://elsewhere.example/v2/requests/status/r1")
    assert len(httpserver.log) == 0


# Retries.


def test_poll_honours_retry_after_then_succeeds(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    httpserver.expect_ordered_request(POLL_PATH).respond_with_json(
        {"error": "Too many requests"}, status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_ordered_request(POLL_PATH).respond_with_json(
        {"output": {"task_id": "t", "task_status": "SUCCEEDED"}}
    )
    with make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway:
        assert gateway.get_task("t").status is TaskStatus.SUCCEEDED
    assert sleeps.calls == [2.0]
    assert len(httpserver.log) == 2


def test_retry_after_is_capped(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    httpserver.expect_ordered_request(POLL_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )
    httpserver.expect_ordered_request(POLL_PATH).respond_with_json({"status": "RUNNING"})
    retry = RetryPolicy(max_attempts=3, retry_after_cap=7.5)
    with make_client(httpserver.url_for("/"), sleeps=sleeps, retry=retry) as gateway:
        gateway.get_task("t")
    assert sleeps.calls == [7.5]


def test_poll_retries_a_server_error_then_succeeds(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    httpserver.expect_ordered_request(POLL_PATH).respond_with_data("oops", status=500)
    httpserver.expect_ordered_request(POLL_PATH).respond_with_json({"status": "RUNNING"})
    with make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway:
        assert gateway.get_task("t").status is TaskStatus.RUNNING
    assert len(sleeps.calls) == 1
    assert 0 < sleeps.calls[0] <= 1.0


def test_poll_gives_up_after_max_attempts(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    httpserver.expect_request(POLL_PATH).respond_with_json({"error": "down"}, status=503)
    with (
        make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway,
        pytest.raises(ServerError),
    ):
        gateway.get_task("t")
    assert len(httpserver.log) == 3
    assert len(sleeps.calls) == 2


def test_backoff_grows_and_stays_under_the_cap(httpserver: HTTPServer) -> None:
    sleeps = Sleeps()
    httpserver.expect_request(POLL_PATH).respond_with_data("", status=502)
    retry = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_cap=4.0)
    with (
        make_client(httpserver.url_for("/"), sleeps=sleeps, retry=retry) as gateway,
        pytest.raises(ServerError),
    ):
        gateway.get_task("t")
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(sleeps.calls) == len(ceilings)
    for wait, ceiling in zip(sleeps.calls, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling


@pytest.mark.parametrize(("status", "error_class"), [(500, ServerError), (429, RateLimitError)])
def test_submit_is_never_retried_after_an_answer(
    httpserver: HTTPServer, status: int, error_class: type[GatewayStatusError]
) -> None:
    sleeps = Sleeps()
    httpserver.expect_request(SUBMIT_PATH).respond_with_json(
        {"error": "busy"}, status=status, headers={"Retry-After": "1"}
    )
    with (
        make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway,
        pytest.raises(error_class),
    ):
        gateway.submit(REQUEST, path=SUBMIT_PATH)
    assert len(httpserver.log) == 1
    assert sleeps.calls == []


def test_submit_is_retried_when_the_connection_never_opened() -> None:
    port = _free_port()
    late_server = HTTPServer(host="127.0.0.1", port=port)
    late_server.expect_request(SUBMIT_PATH).respond_with_json(ACCEPTED)
    # The gateway comes up during the client's first wait: the retry then reaches it.
    sleeps = Sleeps(on_first=late_server.start)
    try:
        with make_client(f"http://127.0.0.1:{port}", sleeps=sleeps) as gateway:
            receipt = gateway.submit(REQUEST, path=SUBMIT_PATH)
    finally:
        if late_server.is_running():
            late_server.stop()
    assert receipt.task_id == "task-1"
    assert len(sleeps.calls) == 1
    assert len(late_server.log) == 1


def test_connection_refused_says_the_request_never_arrived() -> None:
    sleeps = Sleeps()
    with (
        make_client(f"http://127.0.0.1:{_free_port()}", sleeps=sleeps) as gateway,
        pytest.raises(GatewayConnectionError) as caught,
    ):
        gateway.submit(REQUEST, path=SUBMIT_PATH)
    assert caught.value.may_have_reached_server is False
    assert not isinstance(caught.value, GatewayTimeout)
    assert len(sleeps.calls) == 2  # three attempts in all
    assert KEY not in str(caught.value)


def test_read_timeout_on_submit_is_not_retried_and_may_have_arrived() -> None:
    sleeps = Sleeps()
    with (
        raw_server(hold_without_answering) as server,
        make_client(server.url, sleeps=sleeps, timeouts=Timeouts(connect=1, read=0.3)) as gateway,
    ):
        with pytest.raises(GatewayTimeout) as caught:
            gateway.submit(REQUEST, path=SUBMIT_PATH)
        assert server.connections == 1
    assert caught.value.may_have_reached_server is True
    assert sleeps.calls == []
    assert caught.value.hint


def test_reset_after_sending_a_submit_is_not_retried() -> None:
    sleeps = Sleeps()
    with (
        raw_server(reset_after_reading) as server,
        make_client(server.url, sleeps=sleeps) as gateway,
    ):
        with pytest.raises(GatewayConnectionError) as caught:
            gateway.submit(REQUEST, path=SUBMIT_PATH)
        assert server.connections == 1
    assert caught.value.may_have_reached_server is True
    assert sleeps.calls == []


def test_read_timeout_on_a_poll_is_retried() -> None:
    sleeps = Sleeps()
    with (
        raw_server(hold_without_answering) as server,
        make_client(server.url, sleeps=sleeps, timeouts=Timeouts(connect=1, read=0.2)) as gateway,
    ):
        with pytest.raises(GatewayTimeout):
            gateway.get_task("t")
        assert server.connections == 3
    assert len(sleeps.calls) == 2


# Answers we cannot read, and error statuses.


@pytest.mark.parametrize("body", ["<html>maintenance</html>", "", "{not json"])
def test_non_json_success_on_submit_is_a_response_error(
    httpserver: HTTPServer, client: GatewayClient, body: str
) -> None:
    httpserver.expect_request(SUBMIT_PATH).respond_with_data(body, status=200)
    with pytest.raises(GatewayResponseError) as caught:
        client.submit(REQUEST, path=SUBMIT_PATH)
    assert caught.value.status_code == 200
    assert len(httpserver.log) == 1


def test_non_json_success_on_a_poll_is_a_response_error(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    httpserver.expect_request(POLL_PATH).respond_with_data("OK", status=200)
    with pytest.raises(GatewayResponseError):
        client.get_task("t")


def test_a_submit_answer_without_a_task_id(httpserver: HTTPServer, client: GatewayClient) -> None:
    httpserver.expect_request(SUBMIT_PATH).respond_with_json({"request_id": "r"})
    with pytest.raises(GatewayResponseError, match="did not say which task"):
        client.submit(REQUEST, path=SUBMIT_PATH)


@pytest.mark.parametrize(
    ("status", "body", "error_class"),
    [
        (400, {"error": "Invalid resolution"}, BadRequestError),
        (401, {"message": f"Access denied: invalid key {KEY}"}, AuthenticationError),
        (402, {"code": "InsufficientBalance", "message": "no credit"}, InsufficientBalanceError),
        (403, {"error": "Forbidden"}, PermissionDeniedError),
        (404, {"error": "Not found"}, NotFoundError),
        (429, {"error": "Rate limit exceeded"}, RateLimitError),
        (500, {"error": f"upstream failed for key {KEY}"}, ServerError),
    ],
)
def test_error_statuses_on_submit(
    httpserver: HTTPServer,
    client: GatewayClient,
    status: int,
    body: dict,
    error_class: type[GatewayStatusError],
) -> None:
    httpserver.expect_request(SUBMIT_PATH).respond_with_json(body, status=status)
    with pytest.raises(error_class) as caught:
        client.submit(REQUEST, path=SUBMIT_PATH)
    error = caught.value
    assert error.status_code == status
    for text in (str(error), error.message, error.hint, error.body_excerpt, repr(error)):
        assert KEY not in text


def test_a_redirect_is_not_followed_with_the_key(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    httpserver.expect_request(SUBMIT_PATH).respond_with_data(
        "", status=307, headers={"Location": "https://elsewhere.example/steal"}
    )
    with pytest.raises(GatewayStatusError) as caught:
        client.submit(REQUEST, path=SUBMIT_PATH)
    assert caught.value.status_code == 307
    assert len(httpserver.log) == 1


def test_an_invalid_base_url_is_a_plain_error() -> None:
    with (
        make_client("not a url") as gateway,
        pytest.raises(GatewayError, match="valid web address"),
    ):
        gateway.get_task("t")


# Downloads.


def test_download_writes_the_file_without_sending_the_key(
    httpserver: HTTPServer, client: GatewayClient, tmp_path: Path
) -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400
    seen_headers: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        seen_headers.append(dict(request.headers))
        return Response(video, content_type="video/mp4")

    httpserver.expect_request("/videos/out.mp4").respond_with_handler(handler)
    dest = tmp_path / "videos" / "job-1.mp4"
    written = client.download(httpserver.url_for("/videos/out.mp4?Expires=1&Signature=s"), dest)
    assert written == len(video)
    assert dest.read_bytes() == video
    assert list(dest.parent.iterdir()) == [dest]
    assert all(KEY not in json.dumps(headers) for headers in seen_headers)


def test_download_retries_a_server_error(httpserver: HTTPServer, tmp_path: Path) -> None:
    sleeps = Sleeps()
    httpserver.expect_ordered_request("/v.mp4").respond_with_data("", status=503)
    httpserver.expect_ordered_request("/v.mp4").respond_with_data(b"video-bytes")
    dest = tmp_path / "v.mp4"
    with make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway:
        assert gateway.download(httpserver.url_for("/v.mp4"), dest) == len(b"video-bytes")
    assert dest.read_bytes() == b"video-bytes"
    assert len(sleeps.calls) == 1


def test_a_dropped_download_leaves_no_partial_file(tmp_path: Path) -> None:
    sleeps = Sleeps()
    dest = tmp_path / "job.mp4"
    with raw_server(drop_mid_body) as server, make_client(server.url, sleeps=sleeps) as gateway:
        with pytest.raises(GatewayConnectionError):
            gateway.download(server.url + "/v.mp4", dest)
        assert server.connections == 3  # retried, since a download is safe to repeat
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_keeps_an_earlier_file(tmp_path: Path) -> None:
    dest = tmp_path / "job.mp4"
    dest.write_bytes(b"earlier complete video")
    with (
        raw_server(drop_mid_body) as server,
        make_client(server.url) as gateway,
        pytest.raises(GatewayConnectionError),
    ):
        gateway.download(server.url + "/v.mp4", dest)
    assert dest.read_bytes() == b"earlier complete video"
    assert list(tmp_path.iterdir()) == [dest]


def test_an_expired_link_says_so(
    httpserver: HTTPServer, client: GatewayClient, tmp_path: Path
) -> None:
    httpserver.expect_request("/v.mp4").respond_with_data(
        "<Error><Code>AccessDenied</Code><Message>Request has expired.</Message></Error>",
        status=403,
    )
    dest = tmp_path / "v.mp4"
    with pytest.raises(LinkExpiredError) as caught:
        client.download(httpserver.url_for("/v.mp4"), dest)
    assert isinstance(caught.value, PermissionDeniedError)
    assert "expired" in caught.value.message
    assert "again" in caught.value.hint
    assert len(httpserver.log) == 1  # an expired link never comes back
    assert list(tmp_path.iterdir()) == []


def test_a_download_over_the_size_limit_is_refused(
    httpserver: HTTPServer, client: GatewayClient, tmp_path: Path
) -> None:
    httpserver.expect_request("/big.mp4").respond_with_data(b"x" * 5000)
    with pytest.raises(GatewayResponseError, match="larger than"):
        client.download(httpserver.url_for("/big.mp4"), tmp_path / "big.mp4", max_bytes=1000)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_download_is_refused(
    httpserver: HTTPServer, client: GatewayClient, tmp_path: Path
) -> None:
    httpserver.expect_request("/empty.mp4").respond_with_data(b"")
    with pytest.raises(GatewayResponseError, match="empty"):
        client.download(httpserver.url_for("/empty.mp4"), tmp_path / "empty.mp4")
    assert list(tmp_path.iterdir()) == []


# Secrecy.


def test_repr_hides_the_key(client: GatewayClient) -> None:
    assert KEY not in repr(client)
    assert "hidden" in repr(client)
    assert KEY not in str(vars(client).get("base_url"))


def test_one_log_line_per_request_without_the_key(
    httpserver: HTTPServer, client: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(SUBMIT_PATH).respond_with_json(ACCEPTED)
    client.submit(REQUEST, path=SUBMIT_PATH)
    lines = [r for r in caplog.records if r.name == "studio.gateway"]
    assert len(lines) == 1
    assert SUBMIT_PATH in lines[0].getMessage()
    assert "200" in lines[0].getMessage()
    assert KEY not in caplog.text


def test_signed_link_queries_are_not_logged(
    httpserver: HTTPServer,
    client: GatewayClient,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    httpserver.expect_request("/v.mp4").respond_with_data(b"abc")
    client.download(httpserver.url_for("/v.mp4?Signature=SECRETSIG"), tmp_path / "v.mp4")
    gateway_lines = [r.getMessage() for r in caplog.records if r.name == "studio.gateway"]
    assert gateway_lines
    assert all("SECRETSIG" not in line for line in gateway_lines)


def test_a_broken_video_link_is_a_plain_error(client: GatewayClient, tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="video link") as caught:
        client.download("not-a-link", tmp_path / "v.mp4")
    assert "again" in caught.value.hint
    assert list(tmp_path.iterdir()) == []


def test_a_content_length_of_thousands_of_digits_is_too_large_not_a_crash(
    httpserver: HTTPServer, client: GatewayClient, tmp_path: Path
) -> None:
    def answer(request: Request) -> Response:
        response = Response(b"video-bytes", mimetype="video/mp4")
        response.headers["Content-Length"] = "9" * 5000
        return response

    httpserver.expect_request("/v.mp4").respond_with_handler(answer)
    with pytest.raises(GatewayResponseError, match="larger than"):
        client.download(httpserver.url_for("/v.mp4"), tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []


def _echoes_of(key: str) -> dict[str, str]:
    """The key as a hostile or careless gateway might echo it: cased, and in base64 forms."""
    raw = key.encode()
    return {
        "upper": key.upper(),
        "lower": key.lower(),
        "swapped": key.swapcase(),
        "base64": base64.b64encode(raw).decode(),
        "base64_unpadded": base64.b64encode(raw).decode().rstrip("="),
        "urlsafe": base64.urlsafe_b64encode(b"\xfb\xff" + raw).decode(),
        "urlsafe_unpadded": base64.urlsafe_b64encode(b"\xfb\xff" + raw).decode().rstrip("="),
        "inside_at_1": base64.b64encode(b"{" + raw + b"}").decode(),
        "inside_at_2": base64.b64encode(b'k"' + raw + b'",').decode(),
        "upper_base64": base64.b64encode(key.upper().encode()).decode(),
    }


def _base64_fragments(key: str) -> list[str]:
    """Pieces of base64 text that any unredacted base64 echo above would still contain."""
    fragments = []
    for offset in range(3):
        for case in (key, key.upper(), key.lower()):
            core = base64.b64encode(bytes(offset) + case.encode()).decode()[offset + 1 : -3]
            fragments += [core, core.replace("+", "-").replace("/", "_")]
    return fragments


def _assert_no_key(text: str, key: str) -> None:
    assert key.lower() not in text.lower()
    for fragment in _base64_fragments(key):
        assert fragment not in text


def test_a_key_echoed_in_a_successful_answer_is_hidden_in_every_form(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    echoes = _echoes_of(KEY)
    text = " ".join(f"{name}={value}" for name, value in echoes.items())
    body = {
        "request_id": f"req {echoes['base64']}",
        "output": {
            "task_id": "task-1",
            "task_status": "SUCCEEDED",
            "video_url": "https://videos.example.com/v.mp4",
            "orig_prompt": f"a cat {echoes['upper']}",
            "actual_prompt": f"A cat. {text}",
            "code": echoes["urlsafe_unpadded"],
            "message": text,
            "notes": [echoes["inside_at_1"], {"deeper": echoes["inside_at_2"]}],
        },
        "usage": {"video_duration": 5, "video_count": 1, "video_ratio": echoes["lower"]},
    }
    httpserver.expect_request(POLL_PATH, method="POST").respond_with_json(body)
    snapshot = client.get_task("task-1")

    for field_text in (
        snapshot.orig_prompt,
        snapshot.actual_prompt,
        snapshot.error_code,
        snapshot.error_message,
        snapshot.request_id,
        snapshot.usage.video_ratio if snapshot.usage else None,
        json.dumps(snapshot.raw),
    ):
        assert field_text is not None
        _assert_no_key(field_text, KEY)
    assert snapshot.actual_prompt is not None
    assert snapshot.actual_prompt.startswith("A cat. ")
    assert snapshot.actual_prompt.count("[hidden]") == len(echoes)
    assert snapshot.orig_prompt == "a cat [hidden]"


def test_a_key_echoed_in_a_submit_answer_is_hidden(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    echoes = _echoes_of(KEY)
    httpserver.expect_request(SUBMIT_PATH, method="POST").respond_with_json(
        {
            "request_id": echoes["swapped"],
            "output": {"task_id": "task-1", "task_status": "PENDING", "message": echoes["base64"]},
        }
    )
    receipt = client.submit(REQUEST, path=SUBMIT_PATH)
    assert receipt.request_id == "[hidden]"
    _assert_no_key(json.dumps(receipt.raw), KEY)


def test_a_key_echoed_in_base64_in_an_error_answer_is_hidden(
    httpserver: HTTPServer, client: GatewayClient
) -> None:
    echoes = _echoes_of(KEY)
    httpserver.expect_request(SUBMIT_PATH, method="POST").respond_with_json(
        {"code": echoes["upper"], "message": f"bad key {echoes['inside_at_2']}"}, status=400
    )
    httpserver.expect_request(POLL_PATH, method="POST").respond_with_json(
        {"message": "no such task"}, status=404, headers={"X-Request-Id": echoes["urlsafe"]}
    )
    with pytest.raises(BadRequestError) as refused:
        client.submit(REQUEST, path=SUBMIT_PATH)
    with pytest.raises(NotFoundError) as unknown:
        client.get_task("task-1")
    for error in (refused.value, unknown.value):
        for text in (str(error), error.code, error.request_id, error.body_excerpt, repr(error)):
            _assert_no_key(text or "", KEY)
    assert unknown.value.request_id is not None
    assert "[hidden]" in unknown.value.request_id


@pytest.mark.parametrize(
    ("key", "named"),
    [(KEY + "\u200b", "U+200B"), ("\u00e9" + KEY, "U+00E9"), (KEY + " x", "a space")],
)
def test_a_key_that_cannot_be_sent_is_refused_before_any_byte_leaves(
    httpserver: HTTPServer, key: str, named: str
) -> None:
    client = GatewayClient(base_url=httpserver.url_for("/"), api_key=key, timeouts=FAST)
    for call in (
        lambda: client.submit(REQUEST, path=SUBMIT_PATH),
        lambda: client.get_task("task-1"),
    ):
        with pytest.raises(UnsendableKeyError) as caught:
            call()
        error = caught.value
        assert error.may_have_reached_server is False
        assert named in error.message
        assert KEY not in str(error)
        assert "Settings" in error.hint
    assert httpserver.log == []


# Video links go through the link guard.


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a connection is opened to; only loopback ones really connect."""
    attempts: list[tuple[str, int]] = []
    real_create_connection = urllib3.util.connection.create_connection

    def recording_create_connection(address, *args, **kwargs):
        host, port = address
        attempts.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise OSError("tests never connect outside this machine")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording_create_connection)
    return attempts


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second local server, not the gateway: a hostile redirect's target."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1/internal",
        "http://127.0.0.1:{other}/internal",
        "http://localhost:{other}/internal",
        "http://[::1]/internal",
        "http://10.0.0.5/v.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fec0::1]/v.mp4",
        "http://[::ffff:127.0.0.1]:{other}/internal",
    ],
)
def test_a_video_link_redirecting_to_a_private_address_is_never_followed(
    httpserver: HTTPServer,
    other_server: HTTPServer,
    connections: list[tuple[str, int]],
    tmp_path: Path,
    target: str,
) -> None:
    other_server.expect_request("/internal").respond_with_data(b"secret internal bytes")
    location = target.format(other=other_server.port)
    httpserver.expect_request("/v.mp4").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    sleeps = Sleeps()
    with (
        make_client(httpserver.url_for("/"), sleeps=sleeps) as gateway,
        pytest.raises(GatewayResponseError) as caught,
    ):
        gateway.download(httpserver.url_for("/v.mp4"), tmp_path / "v.mp4")
    assert "video link that Wan Studio does not follow" in caught.value.message
    assert "redirects to another address" in caught.value.message
    assert other_server.log == []
    assert len(httpserver.log) == 1  # refused once, not retried
    assert sleeps.calls == []
    assert {port for _, port in connections} == {httpserver.port}
    assert list(tmp_path.iterdir()) == []


def test_a_video_link_on_another_local_server_is_never_contacted(
    httpserver: HTTPServer, other_server: HTTPServer, connections: list, tmp_path: Path
) -> None:
    other_server.expect_request("/v.mp4").respond_with_data(b"video-bytes")
    with make_client(httpserver.url_for("/")) as gateway, pytest.raises(GatewayResponseError):
        gateway.download(other_server.url_for("/v.mp4"), tmp_path / "v.mp4")
    assert other_server.log == []
    assert connections == []


def test_endless_video_redirects_stop(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )
    with make_client(httpserver.url_for("/")) as gateway, pytest.raises(GatewayResponseError):
        gateway.download(httpserver.url_for("/loop"), tmp_path / "v.mp4")
    assert len(httpserver.log) == 6  # the link and five redirects, once


def test_a_redirect_within_the_gateway_address_is_followed(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/v.mp4").respond_with_data(
        "", status=302, headers={"Location": "/stored/v.mp4?Signature=s"}
    )
    httpserver.expect_request("/stored/v.mp4").respond_with_data(b"video-bytes")
    with make_client(httpserver.url_for("/")) as gateway:
        assert gateway.download(httpserver.url_for("/v.mp4"), tmp_path / "v.mp4") == 11
    assert (tmp_path / "v.mp4").read_bytes() == b"video-bytes"
    assert all(KEY_HEADER not in request.headers for request, _ in httpserver.log)
