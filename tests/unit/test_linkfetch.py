"""The link guard: what it fetches, and every way it refuses, always before connecting.

Only 127.0.0.1 is ever contacted. Attempts to connect anywhere else are intercepted at urllib3's
socket factory, recorded and failed, so tests can show that a refusal sent no traffic and that the
address connected to is the one that was checked (DNS pinning).
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import urllib3.util.connection
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from studio.linkfetch import (
    MAX_REDIRECTS,
    FetchedImage,
    LinkRejected,
    fetch_image_link,
    non_public_reason,
)
from tests.plugins.ci import skip_unless_ci
from tests.plugins.images import png

PNG = png(400, 400)
HTML = b"<!DOCTYPE html><html><head><title>Cat</title></head><body><img src=cat.png></body></html>"


def _start(**options: object) -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True, **options)
    server.start()
    return server


@pytest.fixture(scope="module")
def shared_server() -> Iterator[HTTPServer]:
    server = _start()
    yield server
    server.stop()


@pytest.fixture
def server(shared_server: HTTPServer) -> Iterator[HTTPServer]:
    shared_server.clear()
    yield shared_server
    shared_server.clear()


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second local server that is NOT trusted, to show redirects never reach it."""
    server = _start()
    yield server
    server.stop()


@pytest.fixture
def trusted(server: HTTPServer) -> list[str]:
    return [f"127.0.0.1:{server.port}"]


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address a connection is opened to; only loopback ones really connect."""
    attempts: list[tuple[str, int]] = []
    real_create_connection = urllib3.util.connection.create_connection

    def guarded_create_connection(address, *args, **kwargs):
        host, port = address
        attempts.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise OSError("tests never connect outside this machine")
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", guarded_create_connection)
    return attempts


class FakeResolver:
    """Answers like getaddrinfo with a scripted list of addresses per call, and counts calls."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[tuple]:
        self.calls.append((host, port))
        addresses = self.answers[min(len(self.calls), len(self.answers)) - 1]
        entries = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            entries.append((family, socket.SOCK_STREAM, 6, "", (address, port)))
        return entries


def must_not_resolve(host: str, port: int) -> list[tuple]:
    raise AssertionError(f"resolved {host}:{port} although the link should be refused first")


# --- what is fetched ---------------------------------------------------------------------------


def test_fetches_an_image_from_a_trusted_local_server(server, trusted, connections) -> None:
    server.expect_request("/cat.png").respond_with_data(PNG, content_type="image/png")
    url = server.url_for("/cat.png").replace("localhost", "127.0.0.1")
    fetched = fetch_image_link(url, trusted_hosts=trusted)
    assert fetched == FetchedImage(data=PNG, content_type="image/png", final_url=url)
    assert connections == [("127.0.0.1", server.port)]
    request = server.log[0][0]
    assert request.headers["Accept-Encoding"] == "identity"
    assert "Cookie" not in request.headers
    assert "Authorization" not in request.headers


def test_content_type_is_not_trusted_but_content_is(server, trusted) -> None:
    server.expect_request("/cat").respond_with_data(PNG, content_type="application/octet-stream")
    fetched = fetch_image_link(f"http://127.0.0.1:{server.port}/cat", trusted_hosts=trusted)
    assert fetched.data == PNG


def test_connects_to_the_address_it_checked_and_keeps_the_name(server, connections) -> None:
    server.expect_request("/cat.png").respond_with_data(PNG, content_type="image/png")
    # A rebinding resolver: the second answer would point somewhere else.
    resolver = FakeResolver(["127.0.0.1"], ["10.0.0.1"])
    fetched = fetch_image_link(
        f"http://images.test:{server.port}/cat.png",
        trusted_hosts=[f"Images.Test:{server.port}"],
        resolve=resolver,
    )
    assert fetched.data == PNG
    assert resolver.calls == [("images.test", server.port)]
    assert connections == [("127.0.0.1", server.port)]
    assert server.log[0][0].headers["Host"] == f"images.test:{server.port}"


def test_dns_rebinding_cannot_swap_the_checked_public_address(connections) -> None:
    resolver = FakeResolver(["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"])
    with pytest.raises(LinkRejected, match=re.escape("Could not connect to rebind.test")):
        fetch_image_link("http://rebind.test/cat.png", resolve=resolver)
    # Resolved once; the only connection attempt went to the public address that was checked.
    assert len(resolver.calls) == 1
    assert connections == [("93.184.216.34", 80)]


def test_trusted_host_name_allows_any_port(server) -> None:
    server.expect_request("/cat.png").respond_with_data(PNG)
    fetched = fetch_image_link(
        f"http://images.test:{server.port}/cat.png",
        trusted_hosts=["images.test"],
        resolve=FakeResolver(["127.0.0.1"]),
    )
    assert fetched.data == PNG


def test_relative_redirect_on_a_trusted_server_is_followed(server, trusted) -> None:
    server.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": "/images/cat.png"}
    )
    server.expect_request("/images/cat.png").respond_with_data(PNG, content_type="image/png")
    fetched = fetch_image_link(f"http://127.0.0.1:{server.port}/start", trusted_hosts=trusted)
    assert fetched.data == PNG
    assert fetched.final_url == f"http://127.0.0.1:{server.port}/images/cat.png"


# --- refused before connecting -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/cat.png", "this computer"),
        ("http://127.8.9.10/cat.png", "this computer"),
        ("http://2130706433/cat.png", "this computer"),
        ("http://0x7f.1/cat.png", "this computer"),
        ("http://10.0.0.1/cat.png", "a private network address"),
        ("http://172.16.5.4/cat.png", "a private network address"),
        ("http://192.168.1.20/cat.png", "a private network address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata service"),
        ("http://169.254.10.10/cat.png", "a link-local address"),
        ("http://100.64.0.7/cat.png", "a carrier-grade NAT address"),
        ("http://0.0.0.0/cat.png", "the unspecified address"),
        ("http://224.0.0.1/cat.png", "a multicast address"),
        ("http://240.0.0.1/cat.png", "a reserved address"),
        ("http://[::1]/cat.png", "this computer"),
        ("http://[::]/cat.png", "the unspecified address"),
        ("http://[fd00::1]/cat.png", "a private network address"),
        ("http://[fe80::1]/cat.png", "a link-local address"),
        ("http://[ff02::1]/cat.png", "a multicast address"),
        ("http://[fd00:ec2::254]/cat.png", "a cloud metadata service"),
        ("http://[::ffff:127.0.0.1]/cat.png", "this computer"),
        ("http://[::ffff:10.0.0.1]/cat.png", "a private network address"),
        ("http://[::ffff:169.254.169.254]/cat.png", "a cloud metadata service"),
        ("http://[::127.0.0.1]/cat.png", "an IPv4-compatible IPv6 address"),
        ("http://[64:ff9b::a00:1]/cat.png", "a NAT64 translation address"),
        ("http://[2002:7f00:1::]/cat.png", "a 6to4 tunnel address"),
        ("http://[2001:0:4136:e378::1]/cat.png", "a Teredo tunnel address"),
        ("https://10.1.2.3/cat.png", "a private network address"),
    ],
)
def test_non_public_addresses_are_refused_without_connecting(
    url: str, reason: str, connections
) -> None:
    with pytest.raises(LinkRejected) as refusal:
        fetch_image_link(url)
    message = str(refusal.value)
    assert message.startswith(f"The link leads to {reason}")
    assert " at " in message
    assert "an administrator can trust its host" in message
    assert "WAN_STUDIO" not in message  # the setting's name is for the administrators' section
    assert connections == []


@pytest.mark.parametrize(
    ("addresses", "shown"),
    [
        (["10.20.30.40"], "10.20.30.40"),
        (["127.0.0.1"], "127.0.0.1"),
        (["93.184.216.34", "192.168.0.9"], "192.168.0.9"),
        (["2606:4700::1111", "::1"], "::1"),
    ],
    ids=["private", "loopback", "one-of-several", "ipv6-one-of-several"],
)
def test_a_public_name_resolving_to_a_private_address_is_refused(
    addresses: list[str], shown: str, connections
) -> None:
    with pytest.raises(LinkRejected, match=rf"at {shown}, not the public internet"):
        fetch_image_link("https://images.example/cat.png", resolve=FakeResolver(addresses))
    assert connections == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://example.com/cat.png", "this one starts with ftp:"),
        ("file:///etc/passwd", "this one starts with file:"),
        ("javascript:alert(1)", "this one starts with javascript:"),
        ("data:image/png;base64,iVBORw0KGgo=", "this one starts with data:"),
        ("example.com/cat.png", "this one has no http:// or https:// in front"),
        ("gopher://127.0.0.1:70/", "this one starts with gopher:"),
    ],
)
def test_only_http_and_https_are_fetched(url: str, expected: str, connections) -> None:
    with pytest.raises(LinkRejected, match=f"Only http:// and https:// links.*{expected}"):
        fetch_image_link(url, resolve=must_not_resolve)
    assert connections == []


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secret@example.com/cat.png",
        "https://token@example.com/cat.png",
        "http://example.com@127.0.0.1/cat.png",
    ],
)
def test_credentials_in_the_link_are_refused(url: str, connections) -> None:
    with pytest.raises(LinkRejected, match="user name or password"):
        fetch_image_link(url, resolve=must_not_resolve)
    assert connections == []


@pytest.mark.parametrize(
    "url", ["http://example.com:8080/cat.png", "https://example.com:22/", "http://[::1]:6379/"]
)
def test_only_ports_80_and_443_are_allowed(url: str, connections) -> None:
    with pytest.raises(LinkRejected, match=r"asks for port \d+; only the standard web ports"):
        fetch_image_link(url, resolve=must_not_resolve)
    assert connections == []


def test_untrusted_loopback_server_is_never_contacted(server, connections) -> None:
    server.expect_request("/cat.png").respond_with_data(PNG)
    with pytest.raises(LinkRejected, match="this computer"):
        fetch_image_link(
            "http://images.example/cat.png",
            trusted_hosts=[f"other.example:{server.port}"],
            resolve=FakeResolver(["127.0.0.1"]),
        )
    assert server.log == []
    assert connections == []


def test_unknown_host_is_reported() -> None:
    def no_such_host(host: str, port: int) -> list[tuple]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(LinkRejected, match=r"The host nowhere\.example could not be found"):
        fetch_image_link("http://nowhere.example/cat.png", resolve=no_such_host)


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://10.0.0.1/cat.png", "a private network address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata service"),
        ("http://127.0.0.1/cat.png", "this computer"),
        ("http://[::ffff:192.168.0.1]/cat.png", "a private network address"),
    ],
)
def test_redirect_to_a_non_public_address_is_refused_before_connecting(
    location: str, reason: str, server, trusted, connections
) -> None:
    server.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": location}
    )
    with pytest.raises(LinkRejected) as refusal:
        fetch_image_link(f"http://127.0.0.1:{server.port}/start", trusted_hosts=trusted)
    assert str(refusal.value).startswith(
        f"The link redirects to another address. The link leads to {reason}"
    )
    assert connections == [("127.0.0.1", server.port)]


def test_redirect_to_an_untrusted_local_port_is_refused(
    server, trusted, other_server, connections
) -> None:
    other_server.expect_request("/cat.png").respond_with_data(PNG)
    server.expect_request("/start").respond_with_data(
        "", status=307, headers={"Location": f"http://127.0.0.1:{other_server.port}/cat.png"}
    )
    with pytest.raises(LinkRejected, match=f"asks for port {other_server.port}"):
        fetch_image_link(f"http://127.0.0.1:{server.port}/start", trusted_hosts=trusted)
    assert other_server.log == []
    assert connections == [("127.0.0.1", server.port)]


def test_redirect_to_another_scheme_is_refused(server, trusted) -> None:
    server.expect_request("/start").respond_with_data(
        "", status=301, headers={"Location": "file:///etc/passwd"}
    )
    with pytest.raises(LinkRejected, match=re.escape("redirects to another address. Only http://")):
        fetch_image_link(f"http://127.0.0.1:{server.port}/start", trusted_hosts=trusted)


def test_endless_redirects_stop(server, trusted) -> None:
    server.expect_request("/loop").respond_with_data("", status=302, headers={"Location": "/loop"})
    with pytest.raises(LinkRejected, match=f"redirects more than {MAX_REDIRECTS} times"):
        fetch_image_link(f"http://127.0.0.1:{server.port}/loop", trusted_hosts=trusted)
    assert len(server.log) == MAX_REDIRECTS + 1


# --- what comes back ---------------------------------------------------------------------------


def test_declared_oversized_answer_is_refused(server, trusted) -> None:
    server.expect_request("/big.png").respond_with_data(PNG + b"\x00" * 5000)
    with pytest.raises(LinkRejected, match=r"larger than 4 KB"):
        fetch_image_link(
            f"http://127.0.0.1:{server.port}/big.png", trusted_hosts=trusted, max_bytes=4096
        )


def test_streamed_oversized_answer_is_cut_off(server, trusted) -> None:
    sent: list[int] = []

    def endless(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield PNG[:64]
            for _ in range(1000):
                sent.append(1)
                yield b"\x00" * 1024

        return Response(chunks(), content_type="image/png")  # no Content-Length: chunked

    server.expect_request("/stream.png").respond_with_handler(endless)
    with pytest.raises(LinkRejected, match=r"larger than 16 KB"):
        fetch_image_link(
            f"http://127.0.0.1:{server.port}/stream.png",
            trusted_hosts=trusted,
            max_bytes=16 * 1024,
        )


def test_slow_headers_hit_the_deadline(server, trusted) -> None:
    def sleepy(request: Request) -> Response:
        time.sleep(1.5)
        return Response(PNG, content_type="image/png")

    server.expect_request("/slow.png").respond_with_handler(sleepy)
    with pytest.raises(LinkRejected, match=r"took longer than 0.3 seconds"):
        fetch_image_link(
            f"http://127.0.0.1:{server.port}/slow.png", trusted_hosts=trusted, deadline_seconds=0.3
        )


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_a_dripping_body_hits_the_total_deadline(declare_length: bool, server, trusted) -> None:
    """Each byte arrives well within any per-read timeout; only a total deadline stops it."""

    def drip(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield PNG[:64]
            for byte in PNG[64:100]:
                time.sleep(0.05)
                yield bytes([byte])

        headers = {"Content-Length": str(len(PNG))} if declare_length else {}
        return Response(chunks(), content_type="image/png", headers=headers)

    server.expect_request("/drip.png").respond_with_handler(drip)
    with pytest.raises(LinkRejected, match=r"took longer than 0.5 seconds"):
        fetch_image_link(
            f"http://127.0.0.1:{server.port}/drip.png", trusted_hosts=trusted, deadline_seconds=0.5
        )


def test_dripping_headers_hit_the_total_deadline(trusted) -> None:
    """A header line that never ends: no read ever times out, so only the deadline can stop it.

    The server gives up on its own after a few seconds; the test shows the client hung up first.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client_hung_up = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            try:
                for _ in range(100):
                    time.sleep(0.05)
                    connection.sendall(b"z")
            except OSError:
                client_hung_up.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(LinkRejected, match=r"took longer than 0.5 seconds"):
            fetch_image_link(
                f"http://127.0.0.1:{port}/cat.png",
                trusted_hosts=[f"127.0.0.1:{port}"],
                deadline_seconds=0.5,
            )
        thread.join(timeout=10)
        assert client_hung_up.is_set()
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (HTML, "image/png", "leads to a web page, not to an image"),
        (
            b'{"error": "nope", "padding": "' + b"x" * 80 + b'"}',
            "application/json",
            r"^The link does not lead to an image\. Use a link to a JPEG",
        ),
        (
            b"short text",
            "text/plain; charset=utf-8",
            r"^The link does not lead to an image\. Use a link to a JPEG",
        ),
    ],
    ids=["html-posing-as-png", "json", "short-text"],
)
def test_non_image_content_is_refused(body, content_type, expected, server, trusted) -> None:
    server.expect_request("/cat.png").respond_with_data(body, content_type=content_type)
    with pytest.raises(LinkRejected, match=expected):
        fetch_image_link(f"http://127.0.0.1:{server.port}/cat.png", trusted_hosts=trusted)


def test_empty_answer_is_refused(server, trusted) -> None:
    server.expect_request("/cat.png").respond_with_data(b"", content_type="image/png")
    with pytest.raises(LinkRejected, match="empty answer"):
        fetch_image_link(f"http://127.0.0.1:{server.port}/cat.png", trusted_hosts=trusted)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, r"there is no image at this address \(HTTP 404\). Check the link."),
        (403, r"it refuses to share this image .* \(HTTP 403\)"),
        (429, r"too many requests .* \(HTTP 429\)"),
        (502, r"it had an internal error \(HTTP 502\). Try again later."),
        (418, r"it refused the request \(HTTP 418\)"),
    ],
)
def test_http_errors_are_explained(status: int, expected: str, server, trusted) -> None:
    server.expect_request("/cat.png").respond_with_data(PNG, status=status)
    with pytest.raises(LinkRejected, match=f"The server says {expected}"):
        fetch_image_link(f"http://127.0.0.1:{server.port}/cat.png", trusted_hosts=trusted)


def test_closed_port_on_trusted_host_is_a_connection_failure(trusted) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(LinkRejected, match=re.escape("Could not connect to 127.0.0.1")):
        fetch_image_link(f"http://127.0.0.1:{free_port}/cat.png", trusted_hosts=["127.0.0.1"])


def test_environment_proxies_are_ignored(server, trusted, monkeypatch) -> None:
    # A proxy would connect on our behalf to whatever it resolves, bypassing the checks.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    server.expect_request("/cat.png").respond_with_data(PNG)
    assert (
        fetch_image_link(f"http://127.0.0.1:{server.port}/cat.png", trusted_hosts=trusted).data
        == PNG
    )


# --- https: the pinned connection still checks the certificate against the name --------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        skip_unless_ci("needs the openssl command to make a throwaway certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=images.test",
            "-addext",
            "subjectAltName=DNS:images.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_server(tls_files: tuple[str, str]) -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    server = _start(ssl_context=context)
    server.expect_request("/cat.png").respond_with_data(PNG, content_type="image/png")
    yield server
    server.stop()


def test_https_to_a_pinned_address_verifies_the_name(tls_server, tls_files) -> None:
    cert, _ = tls_files

    def session_trusting_our_certificate() -> requests.Session:
        session = requests.Session()
        session.verify = cert
        return session

    fetched = fetch_image_link(
        f"https://images.test:{tls_server.port}/cat.png",
        trusted_hosts=[f"images.test:{tls_server.port}"],
        resolve=FakeResolver(["127.0.0.1"]),
        session_factory=session_trusting_our_certificate,
    )
    assert fetched.data == PNG


def test_https_with_a_certificate_for_another_name_is_refused(tls_server, tls_files) -> None:
    cert, _ = tls_files

    def session_trusting_our_certificate() -> requests.Session:
        session = requests.Session()
        session.verify = cert
        return session

    with pytest.raises(LinkRejected, match=re.escape("secure connection to other.test failed")):
        fetch_image_link(
            f"https://other.test:{tls_server.port}/cat.png",
            trusted_hosts=["other.test"],
            resolve=FakeResolver(["127.0.0.1"]),
            session_factory=session_trusting_our_certificate,
        )
    assert tls_server.log == []


# --- the classifier on its own -----------------------------------------------------------------


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    ["fec0::1", "fed0::1", "feff::1", "fec0::", "FEFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF"],
)
def test_deprecated_site_local_ipv6_is_private(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) == (
        "a private network address (IPv6 site-local)"
    )


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:127.0.0.1", "this computer (a loopback address)"),
        ("::ffff:10.1.2.3", "a private network address"),
        ("fe80::1", "a link-local address"),
        ("ff02::1", "a multicast address"),
    ],
)
def test_neighbours_of_site_local_keep_their_reasons(address: str, reason: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) == reason


def test_a_site_local_link_is_refused_without_connecting(connections) -> None:
    with pytest.raises(LinkRejected, match="site-local"):
        fetch_image_link("http://[fec0::1]/cat.png")
    with pytest.raises(LinkRejected, match="site-local"):
        fetch_image_link("https://images.example/cat.png", resolve=FakeResolver(["fed0::5"]))
    assert connections == []
