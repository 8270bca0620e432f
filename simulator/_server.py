"""The HTTP side of the simulator: the gateway's endpoints, signed video links and faults."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

from simulator._faults import (
    LOST_SUBMIT,
    MALFORMED_JSON,
    POLL,
    RATE_LIMIT,
    SERVER_ERROR,
    SLOW,
    SUBMIT,
    TASK_FAULTS,
    VIDEO,
    FaultConfigError,
    FaultCounter,
    FaultPlan,
    FaultRule,
    split_key,
)
from simulator._rules import FIRST_AND_LAST_FRAME, FIRST_FRAME, GatewayRules, load_rules
from simulator._tasks import TASK_TTL_SECONDS, UNKNOWN, TaskBook, poll_output

log = logging.getLogger("simulator")

SUBMIT_PATH = "/wan-i2v/v1/generateImageToVideoRequest"
SUBMIT_FRAMES_PATH = "/wan-i2v/v1/generateImageToVideoFrameRequest"
POLL_PATH = "/wan-video-polling/getTextToVideoResult"
VIDEO_PREFIX = "/videos/"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
# A 10 MB image as a data: URI is about 13.4 MB of JSON.
MAX_BODY_BYTES = 20 * 1024 * 1024
_VIDEO_PATH = re.compile(r"^/videos/([0-9a-f-]{36})\.mp4$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_COPY_CHUNK = 256 * 1024


@dataclass
class _Answer:
    """What a handler decided to send."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    task_id: str | None = None


def _json_answer(status: int, payload: dict, *, task_id: str | None = None) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), task_id=task_id)


def _error(status: int, message: str) -> _Answer:
    return _json_answer(status, {"error": message})


def _storage_error(code: str, message: str) -> _Answer:
    # Signed links are served by object storage upstream, which answers in XML.
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
    body += f"<Message>{message}</Message></Error>"
    return _Answer(403, body.encode(), content_type="application/xml")


class _Reject(Exception):
    """A submit the gateway refuses with 400 and this message."""


@dataclass
class _Gateway:
    """Everything the request handler needs, shared by its threads."""

    book: TaskBook
    rules: GatewayRules
    key: str | None
    plan: FaultPlan
    link_ttl_seconds: float
    secret: bytes
    base_url: str
    log_requests: bool
    counter: FaultCounter = field(default_factory=FaultCounter)

    def sign(self, task_id: str, expires: int) -> str:
        message = f"{task_id}:{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def video_url(self, task_id: str, end_time: float, host: str | None) -> str:
        expires = math.ceil(end_time + self.link_ttl_seconds)
        base = f"http://{host}" if host else self.base_url
        signature = self.sign(task_id, expires)
        return f"{base}{VIDEO_PREFIX}{task_id}.mp4?Expires={expires}&Signature={signature}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "WanGatewaySimulator/1.0"
    gateway: _Gateway  # set on a per-server subclass

    # _log_line writes one line per request instead; the default line shows the raw query.
    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        endpoint = {SUBMIT_PATH: SUBMIT, SUBMIT_FRAMES_PATH: SUBMIT, POLL_PATH: POLL}.get(path)
        if endpoint is None:
            self._drain_body()
            self._finish(_error(404, "Resource not found"), started)
            return
        answer = self._api_call(path, endpoint)
        if answer is None:  # a lost answer: the connection closes without a byte
            self.close_connection = True
            self._log_line(0, None, started)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._finish(answer, started)

    def do_GET(self) -> None:
        self._video(started=time.monotonic(), send_body=True)

    def do_HEAD(self) -> None:
        self._video(started=time.monotonic(), send_body=False)

    def _drain_body(self) -> bytes | None:
        """The request body, or ``None`` when it cannot be read (the connection then closes)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        # Without a usable length the next request on this connection could not be found.
        if self.headers.get("Transfer-Encoding") or not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _api_call(self, path: str, endpoint: str) -> _Answer | None:
        body = self._drain_body()
        if body is None:
            return _error(413, "The request body is too large or has no Content-Length.")
        key = (self.headers.get(KEY_HEADER) or "").strip()
        if not key:
            return _error(
                401,
                "Access denied due to missing subscription key. "
                "Make sure to include a subscription key when making requests to an API.",
            )
        try:
            base_key, key_rules = split_key(key)
        except FaultConfigError as problem:
            return _error(400, f"Unreadable fault in the key: {problem}")
        gateway = self.gateway
        if not base_key or (gateway.key is not None and base_key != gateway.key):
            return _error(401, "Access denied due to invalid subscription key.")
        firing = gateway.counter.firing(gateway.plan.rules + key_rules, endpoint, key)
        for rule in firing:
            if rule.kind == SLOW:
                time.sleep(rule.seconds)
            elif rule.kind == RATE_LIMIT:
                answer = _error(429, "Rate limit is exceeded. Try again later.")
                answer.headers["Retry-After"] = _seconds_text(rule.retry_after)
                return answer
            elif rule.kind == SERVER_ERROR:
                return _error(500, "Internal server error.")
        try:
            payload = json.loads(body or b"null")
        except (UnicodeDecodeError, ValueError):
            return _error(400, "The request body is not valid JSON.")
        if not isinstance(payload, dict):
            return _error(400, "The request body must be a JSON object.")
        if endpoint == POLL:
            answer = self._poll(payload)
        else:
            kind = FIRST_AND_LAST_FRAME if path == SUBMIT_FRAMES_PATH else FIRST_FRAME
            task_faults = [rule for rule in firing if rule.kind in TASK_FAULTS]
            answer = self._submit(payload, kind, task_faults)
            if answer.status == 200 and any(rule.kind == LOST_SUBMIT for rule in firing):
                return None
        if answer.status == 200 and any(rule.kind == MALFORMED_JSON for rule in firing):
            answer.body = answer.body[: max(1, len(answer.body) // 2)]
        return answer

    def _submit(self, payload: dict, kind: str, task_faults: list[FaultRule]) -> _Answer:
        gateway = self.gateway
        try:
            settings = _validate_submit(payload, kind, gateway.rules)
        except _Reject as problem:
            return _error(400, str(problem))
        model = gateway.rules.models[settings["model"]]
        task = gateway.book.create(
            model=model.model_id,
            kind=kind,
            submitted=payload,
            resolution=settings["resolution"],
            duration=settings["duration"],
            prompt_extend=settings["prompt_extend"],
            watermark=settings["watermark"],
            seed=settings["seed"],
            fast=model.is_fast,
            task_faults=task_faults,
        )
        return _json_answer(
            200,
            {
                "request_id": str(uuid.uuid4()),
                "output": {"task_id": task.task_id, "task_status": "PENDING"},
            },
            task_id=task.task_id,
        )

    def _poll(self, payload: dict) -> _Answer:
        task_id = payload.get("task_id")
        if not isinstance(task_id, str) or not task_id.strip():
            return _error(400, "task_id is required.")
        request_id = str(uuid.uuid4())
        task = self.gateway.book.get(task_id)
        now = time.time()
        # Upstream forgets a task 24 h after its submit; so does the simulator.
        if task is None or now - task.submit_time > TASK_TTL_SECONDS:
            unknown = {"task_id": task_id, "task_status": UNKNOWN}
            return _json_answer(200, {"request_id": request_id, "output": unknown}, task_id=task_id)
        _, end = task.status(now)
        video_url = self.gateway.video_url(task_id, end or now, self.headers.get("Host"))
        output, usage = poll_output(task, now=now, video_url=video_url)
        answer: dict = {"request_id": request_id, "output": output}
        if usage is not None:
            answer["usage"] = usage
        return _json_answer(200, answer, task_id=task_id)

    def _video(self, *, started: float, send_body: bool) -> None:
        parts = urlsplit(self.path)
        match = _VIDEO_PATH.match(parts.path)
        if match is None:
            self._finish(_error(404, "Resource not found"), started)
            return
        task_id = match.group(1)
        gateway = self.gateway
        for rule in gateway.counter.firing(gateway.plan.rules, VIDEO, None):
            if rule.kind == SLOW:
                time.sleep(rule.seconds)
            elif rule.kind == RATE_LIMIT:
                answer = _error(429, "Rate limit is exceeded. Try again later.")
                answer.headers["Retry-After"] = _seconds_text(rule.retry_after)
                self._finish(answer, started)
                return
            elif rule.kind == SERVER_ERROR:
                self._finish(_error(500, "Internal server error."), started)
                return
        query = parse_qs(parts.query)
        expires_text = query.get("Expires", [""])[0]
        signature = query.get("Signature", [""])[0]
        if not expires_text.isdigit() or not hmac.compare_digest(
            signature, gateway.sign(task_id, int(expires_text))
        ):
            answer = _storage_error(
                "SignatureDoesNotMatch", "The request signature does not match."
            )
            self._finish(answer, started, task_id)
            return
        if time.time() > int(expires_text):
            self._finish(_storage_error("AccessDenied", "Request has expired."), started, task_id)
            return
        path = gateway.book.video_path(task_id)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            self._finish(_error(404, "The video does not exist."), started, task_id)
            return
        with handle:
            self._send_file(handle, path.stat().st_size, task_id, started, send_body=send_body)

    def _send_file(
        self, handle: BinaryIO, size: int, task_id: str, started: float, *, send_body: bool
    ) -> None:
        start, end = 0, size - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            byte_range = _parse_range(range_header, size)
            if byte_range is None:
                answer = _Answer(416, headers={"Content-Range": f"bytes */{size}"})
                self._finish(answer, started, task_id)
                return
            start, end = byte_range
            status = 206
        # Logged before the first byte leaves, so the line exists once the client has its answer.
        self._log_line(status, task_id, started)
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if send_body:
            handle.seek(start)
            remaining = end - start + 1
            with contextlib.suppress(ConnectionError):
                while remaining > 0 and (chunk := handle.read(min(_COPY_CHUNK, remaining))):
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    def _finish(self, answer: _Answer, started: float, task_id: str | None = None) -> None:
        # Logged before the answer leaves: whoever reads the log after getting the answer finds
        # its line (the time is the time to answer, not to send).
        self._log_line(answer.status, answer.task_id or task_id, started)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(ConnectionError):
                self.wfile.write(answer.body)

    def _log_line(self, status: int, task_id: str | None, started: float) -> None:
        if self.gateway.log_requests:
            elapsed_ms = (time.monotonic() - started) * 1000
            status_text = str(status) if status else "closed"
            path = urlsplit(self.path).path
            task = task_id or "-"
            log.info("%s %s %s task=%s %.0fms", self.command, path, status_text, task, elapsed_ms)


def _seconds_text(seconds: float) -> str:
    # Whole seconds as HTTP says; a fraction only when a test asks for one, to stay fast.
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a single ``bytes=`` range, or ``None`` when unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None or size == 0:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        length = int(last)
        return (max(0, size - length), size - 1) if length > 0 else None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end and start < size else None


def _validate_submit(payload: dict, kind: str, rules: GatewayRules) -> dict:
    """Check a submit body as the gateway does; return its settings with defaults filled in."""
    model_id = payload.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise _Reject("model is required.")
    model = rules.models.get(model_id)
    if model is None:
        raise _Reject(f"Model {model_id!r} does not exist; use one of: {', '.join(rules.models)}.")
    if model.kind != kind:
        right_path = SUBMIT_FRAMES_PATH if model.kind == FIRST_AND_LAST_FRAME else SUBMIT_PATH
        raise _Reject(f"Model {model_id} is not served on this path; use {right_path}.")
    task_input = payload.get("input")
    if not isinstance(task_input, dict):
        raise _Reject("input is required and must be an object.")
    url_fields = ("img_url",)
    if kind == FIRST_AND_LAST_FRAME:
        url_fields = ("first_frame_url", "last_frame_url")
    for name in url_fields:
        url = task_input.get(name)
        if not isinstance(url, str) or not url.strip():
            raise _Reject(f"input.{name} is required.")
        if not url.startswith(("http://", "https://", "data:")):
            raise _Reject(f"input.{name} must be an http(s) URL or a data: URI.")
    for name, limit in (
        ("prompt", rules.prompt_max_chars),
        ("negative_prompt", rules.negative_prompt_max_chars),
    ):
        text = task_input.get(name)
        if text is None:
            continue
        if not isinstance(text, str):
            raise _Reject(f"input.{name} must be a string.")
        if len(text) > limit:
            raise _Reject(f"input.{name} is {len(text)} characters long; the limit is {limit}.")
    parameters = payload.get("parameters", {})
    if not isinstance(parameters, dict):
        raise _Reject("parameters must be an object.")
    resolution = parameters.get("resolution", model.default_resolution)
    if resolution not in model.resolutions:
        raise _Reject(
            f"parameters.resolution {resolution!r} is not available for {model_id}; "
            f"use one of: {', '.join(model.resolutions)}."
        )
    duration = parameters.get("duration", model.default_duration)
    if isinstance(duration, bool) or duration not in model.durations:
        allowed = ", ".join(str(d) for d in model.durations)
        raise _Reject(
            f"parameters.duration {duration!r} is not available for {model_id}; use {allowed}."
        )
    for name in ("prompt_extend", "watermark"):
        if name in parameters and not isinstance(parameters[name], bool):
            raise _Reject(f"parameters.{name} must be true or false.")
    seed = parameters.get("seed")
    if seed is not None and (
        isinstance(seed, bool)
        or not isinstance(seed, int)
        or not rules.seed_min <= seed <= rules.seed_max
    ):
        raise _Reject(
            f"parameters.seed must be an integer from {rules.seed_min} to {rules.seed_max}."
        )
    return {
        "model": model_id,
        "resolution": resolution,
        "duration": int(duration),
        "prompt_extend": parameters.get("prompt_extend", True),
        "watermark": parameters.get("watermark", False),
        "seed": seed,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    # Answers to clients that hung up are not errors worth a traceback.
    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("connection from %s ended early", client_address, exc_info=True)


class RunningSimulator:
    """A simulator serving on a background thread; stop it with :meth:`stop` or ``with``."""

    def __init__(self, *, server: _Server, gateway: _Gateway, temporary_dir: Path | None) -> None:
        self._server = server
        self._gateway = gateway
        self._temporary_dir = temporary_dir
        # A short poll interval makes stop() quick; the loop is idle otherwise.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="simulator-http", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def url(self) -> str:
        """Base URL, for example ``http://127.0.0.1:54321``."""
        return self._gateway.base_url

    @property
    def state_dir(self) -> Path:
        """Where tasks and videos are kept."""
        return self._gateway.book.state_dir

    def tasks(self) -> list[dict]:
        """Every task created so far, oldest first: id, model, status, the submitted body, ..."""
        book = self._gateway.book
        now = time.time()
        return [book.describe(task, now) for task in book.all()]

    def stop(self) -> None:
        """Stop serving and rendering; remove the state folder if it was a temporary one."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._gateway.book.close()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RunningSimulator(url={self.url!r}, tasks={len(self._gateway.book.all())})"


def _load_secret(state_dir: Path) -> bytes:
    # Kept in the state folder so links signed before a restart stay valid after it.
    path = state_dir / "link-secret"
    if not path.exists():
        partial = path.with_name(f".{path.name}.partial")
        partial.write_bytes(secrets.token_bytes(32))
        partial.replace(path)
    return path.read_bytes()


def start(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    key: str | None = None,
    speed: float = 1.0,
    fps: int = 30,
    state_dir: str | Path | None = None,
    link_ttl_seconds: float = 86400.0,
    faults: FaultPlan | None = None,
    log: bool = True,
) -> RunningSimulator:
    """Start a simulator on a background thread and return once it accepts connections.

    Parameters
    ----------
    host, port
        Where to listen; port 0 picks a free one (read it from ``.url``).
    key
        Accept only this API key; ``None`` accepts any non-empty key.
    speed
        Divide every simulated wait by this factor (tests use 20-50).
    fps
        Frames per second of the videos (upstream: 30).
    state_dir
        Folder for task records and videos, kept across restarts; ``None`` uses a temporary
        folder removed by :meth:`RunningSimulator.stop`.
    link_ttl_seconds
        How long a video link stays valid after the task ends (upstream: 24 h).
    faults
        Fault rules for every request; keys can carry more (see the package docstring).
    log
        Write one line per request to the ``simulator`` logger.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    if not 1 <= fps <= 120:
        raise ValueError("fps must be between 1 and 120")
    if link_ttl_seconds <= 0:
        raise ValueError("link_ttl_seconds must be positive")
    temporary_dir = None
    if state_dir is None:
        temporary_dir = Path(tempfile.mkdtemp(prefix="wan-simulator-"))
        folder = temporary_dir
    else:
        folder = Path(state_dir)
        folder.mkdir(parents=True, exist_ok=True)
    rules = load_rules()
    book = TaskBook(state_dir=folder, rules=rules, speed=speed, fps=fps)
    try:
        server = _Server((host, port), _Handler)
    except OSError:
        book.close()
        if temporary_dir is not None:
            shutil.rmtree(temporary_dir, ignore_errors=True)
        raise
    bound_host, bound_port = server.server_address[:2]
    url_host = f"[{bound_host}]" if ":" in str(bound_host) else str(bound_host)
    gateway = _Gateway(
        book=book,
        rules=rules,
        key=key,
        plan=faults or FaultPlan(),
        link_ttl_seconds=link_ttl_seconds,
        secret=_load_secret(folder),
        base_url=f"http://{url_host}:{bound_port}",
        log_requests=log,
    )
    server.RequestHandlerClass = type("Handler", (_Handler,), {"gateway": gateway})
    return RunningSimulator(server=server, gateway=gateway, temporary_dir=temporary_dir)
