"""The client for the Wan image-to-video gateway: submit a job, read a task, download a video.

Parsing is pure and public (``parse_submit_response``, ``parse_task``) and tolerant of both gateway
contracts described in docs/gateway.md. The client retries only where repeating is safe: polls and
downloads on connection errors, 429 and 5xx; a submit only when its connection never opened, since
a submit that reached the server creates (and bills) a task.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions

from studio.errors import (
    GatewayConnectionError,
    GatewayError,
    GatewayResponseError,
    GatewayStatusError,
    GatewayTimeout,
    LinkExpiredError,
    RequestNotSentError,
    ServerError,
    UnsendableKeyError,
    error_from_response,
    redact,
    redaction_pattern,
)
from studio.humane import size_limit
from studio.linkfetch import (
    LinkRejected,
    LinkTooSlow,
    LinkUnreachable,
    OpenedLink,
    declared_length,
    open_link,
)

logger = logging.getLogger("studio.gateway")

DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
POLL_PATH = "/wan-video-polling/getTextToVideoResult"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
# A task id no submit can return (the gateway's ids are random UUIDs): a status check for it
# tests a key without making anything.
KEY_CHECK_TASK_ID = "00000000-0000-0000-0000-000000000000"
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
# Upstream times are Beijing time without an offset.
GATEWAY_TIMEZONE = timezone(timedelta(hours=8))

DEFAULT_DOWNLOAD_DEADLINE_SECONDS = 600.0
_DOWNLOAD_CHUNK_BYTES = 256 * 1024
_DOWNLOAD_HEADERS = {"User-Agent": "WanStudio/0.1 (video download)", "Accept-Encoding": "identity"}
_BODY_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection to open and between bytes of an answer."""

    connect: float = 10.0
    read: float = 30.0

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a safe request is repeated."""

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 60.0

    def backoff(self, attempt: int, *, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), with jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        # Half fixed, half random: spreads clients apart without ever retrying at once.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


DEFAULT_TIMEOUT = Timeouts()
DEFAULT_RETRY = RetryPolicy()


class TaskStatus(StrEnum):
    """Where a task is in its life; every spelling from either contract maps to one of these."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True when the task will not change any more."""
        return self in _TERMINAL

    @classmethod
    def from_wire(cls, value: object) -> TaskStatus:
        """Map a status as the gateway spells it (any case, either contract); UNKNOWN otherwise."""
        if not isinstance(value, str):
            return cls.UNKNOWN
        return _STATUS_ALIASES.get(value.strip().upper().replace("-", "_"), cls.UNKNOWN)


_TERMINAL = frozenset(
    {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED, TaskStatus.UNKNOWN}
)
_STATUS_ALIASES: dict[str, TaskStatus] = {
    **{status.value: status for status in TaskStatus},
    "QUEUED": TaskStatus.PENDING,
    "IN_QUEUE": TaskStatus.PENDING,
    "PROCESSING": TaskStatus.RUNNING,
    "IN_PROGRESS": TaskStatus.RUNNING,
    "COMPLETED": TaskStatus.SUCCEEDED,
    "ERROR": TaskStatus.FAILED,
    "CANCELLED": TaskStatus.CANCELED,
}


# Ceilings for the numbers a gateway answer may carry: far beyond anything real, yet small enough
# that no arithmetic on them can take noticeable time.
MAX_VIDEO_SECONDS = Decimal(600)
MAX_VIDEO_COUNT = 100
MAX_SIDE_PIXELS = 100_000
# A number written with more characters than this is not a duration, count or size.
_MAX_NUMBER_CHARS = 32
# Plain digits with an optional fraction: no sign, no exponent, no nan or infinity.
_PLAIN_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")


@dataclass(frozen=True)
class TaskUsage:
    """What a finished task reports it made, which is what gets billed.

    Every value lies between zero and its ceiling (``MAX_VIDEO_SECONDS``, ``MAX_VIDEO_COUNT``,
    ``MAX_SIDE_PIXELS``), so billing arithmetic on them is always cheap.
    """

    video_duration: Decimal | None = None
    video_count: int | None = None
    sr: int | None = None
    video_ratio: str | None = None

    def __post_init__(self) -> None:
        checks = (
            ("video_duration", self.video_duration, MAX_VIDEO_SECONDS),
            ("video_count", self.video_count, MAX_VIDEO_COUNT),
            ("SR", self.sr, MAX_SIDE_PIXELS),
        )
        for name, value, ceiling in checks:
            if value is None:
                continue
            if isinstance(value, Decimal) and not value.is_finite():
                raise ValueError(f"{name} must be a finite number")
            if not 0 <= value <= ceiling:
                raise ValueError(f"{name} must be between 0 and {ceiling}")

    @property
    def billed_seconds(self) -> Decimal | None:
        """Seconds of video billed (duration × count), or None when the gateway did not say."""
        if self.video_duration is None:
            return None
        return self.video_duration * (self.video_count if self.video_count is not None else 1)


@dataclass(frozen=True)
class SubmitReceipt:
    """The gateway's answer to a submit: the task to poll and how to poll it."""

    task_id: str
    status: TaskStatus
    request_id: str | None
    polling_url: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class TaskSnapshot:
    """One poll's view of a task; times are aware UTC datetimes, ``raw`` is the body as received."""

    task_id: str
    status: TaskStatus
    raw_status: str | None = None
    video_url: str | None = None
    orig_prompt: str | None = None
    actual_prompt: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    usage: TaskUsage | None = None
    submit_time: datetime | None = None
    scheduled_time: datetime | None = None
    end_time: datetime | None = None
    request_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


# Parsing: pure functions over decoded JSON.


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _first_text(*values: object) -> str | None:
    for value in values:
        if (text := _text(value)) is not None:
            return text
    return None


def _output(body: dict[str, Any]) -> dict[str, Any]:
    output = body.get("output")
    return output if isinstance(output, dict) else {}


def _media_url(container: dict[str, Any]) -> str | None:
    media = container.get("media_url")
    if isinstance(media, list):
        return next((text for item in media if (text := _text(item)) is not None), None)
    return _text(media)


def _require_object(body: object, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        excerpt = json.dumps(body)[:_BODY_EXCERPT_CHARS]
        raise GatewayResponseError(
            f"The gateway's answer to the {what} was not in the expected form.",
            body_excerpt=excerpt,
        )
    return body


def parse_gateway_time(value: object) -> datetime | None:
    """Read a gateway timestamp as an aware UTC datetime.

    Parameters
    ----------
    value
        Usually ``"YYYY-MM-DD HH:MM:SS.mmm"`` in UTC+8; ISO strings with an offset and Unix times
        (seconds or milliseconds) are accepted too.

    Returns
    -------
    datetime or None
        The moment in UTC, or None when the value is missing or unreadable.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=GATEWAY_TIMEZONE)
    return moment.astimezone(UTC)


def _absurd_number(name: str, shown: str) -> GatewayResponseError:
    return GatewayResponseError(
        f"The gateway's answer about the task gave an impossible {name} ({shown}).",
        hint="Check the task again soon; if it keeps happening, the gateway may have changed.",
    )


def _usage_number(name: str, value: object, *, ceiling: Decimal, whole: bool) -> Decimal | None:
    """Read one usage number with bounded work: None when absent or not a number at all.

    Raises
    ------
    GatewayResponseError
        When it is a number but not a plausible one: negative, not finite, written with an
        exponent or too many digits, not whole where it must be, or above ``ceiling``.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        # Compared before any conversion: turning a huge integer into text costs time too.
        if not 0 <= value <= ceiling:
            raise _absurd_number(name, "out of range")
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value) or not 0 <= value <= ceiling:
            raise _absurd_number(name, "out of range")
        parsed = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_NUMBER_CHARS:
            raise _absurd_number(name, f"{len(text)} characters long")
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            return None
        # Decimal reads exponents cheaply, but what is done with such a value later may not be.
        if not _PLAIN_NUMBER.fullmatch(text) or not 0 <= parsed <= ceiling:
            raise _absurd_number(name, repr(text))
    else:
        return None
    if whole and parsed != parsed.to_integral_value():
        raise _absurd_number(name, f"{parsed}, not a whole number")
    return parsed


def _parse_usage(body: dict[str, Any]) -> TaskUsage | None:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        usage = _output(body).get("usage")
    if not isinstance(usage, dict):
        return None
    duration = _usage_number(
        "video length", usage.get("video_duration"), ceiling=MAX_VIDEO_SECONDS, whole=False
    )
    count = _usage_number(
        "video count", usage.get("video_count"), ceiling=Decimal(MAX_VIDEO_COUNT), whole=True
    )
    sr = _usage_number("resolution", usage.get("SR"), ceiling=Decimal(MAX_SIDE_PIXELS), whole=True)
    return TaskUsage(
        video_duration=duration,
        video_count=int(count) if count is not None else None,
        sr=int(sr) if sr is not None else None,
        video_ratio=_text(usage.get("video_ratio")),
    )


def parse_submit_response(body: object) -> SubmitReceipt:
    """Read the gateway's answer to a submit, in either contract.

    Parameters
    ----------
    body
        The decoded JSON body of a 2xx answer.

    Returns
    -------
    SubmitReceipt
        The task id (``output.task_id``, then ``task_id``; in the newer contract, which names a
        ``polling_url``, the ``request_id``), its status and the polling link if any.

    Raises
    ------
    GatewayResponseError
        When the body is not an object or names no task.
    """
    body = _require_object(body, "submit")
    output = _output(body)
    request_id = _text(body.get("request_id"))
    polling_url = _first_text(body.get("polling_url"), output.get("polling_url"))
    task_id = _first_text(output.get("task_id"), body.get("task_id"))
    if task_id is None and polling_url is not None:
        # In the older contract request_id names the HTTP request, not the task: only the newer
        # contract, which polls by polling_url, uses it as the task's id.
        task_id = request_id or urlsplit(polling_url).path.rstrip("/").rsplit("/", 1)[-1] or None
    if task_id is None:
        raise GatewayResponseError(
            "The gateway accepted the request but did not say which task it started.",
            hint="Check the job list before trying again: the video may still be made and billed.",
            body_excerpt=json.dumps(body)[:_BODY_EXCERPT_CHARS],
        )
    raw_status = _first_text(output.get("task_status"), body.get("task_status"), body.get("status"))
    status = TaskStatus.from_wire(raw_status) if raw_status else TaskStatus.PENDING
    return SubmitReceipt(
        task_id=task_id,
        status=status,
        request_id=request_id,
        polling_url=polling_url,
        raw=body,
    )


def parse_task(body: object, *, task_id: str | None = None) -> TaskSnapshot:
    """Read the gateway's answer to a poll, in either contract, flattened or nested.

    Parameters
    ----------
    body
        The decoded JSON body of a 2xx answer.
    task_id
        The id that was polled, used when the body does not repeat it.

    Returns
    -------
    TaskSnapshot
        Status, video link, prompts, error, usage and times (UTC) as far as the body gives them.

    Raises
    ------
    GatewayResponseError
        When the body is not an object or carries no status at all.
    """
    body = _require_object(body, "status check")
    output = _output(body)
    raw_status = _first_text(output.get("task_status"), body.get("task_status"), body.get("status"))
    if raw_status is None:
        raise GatewayResponseError(
            "The gateway's answer about the task did not include its status.",
            body_excerpt=json.dumps(body)[:_BODY_EXCERPT_CHARS],
        )
    error = body.get("error")
    error_object = error if isinstance(error, dict) else {}

    def pick(key: str) -> str | None:
        return _first_text(output.get(key), body.get(key))

    return TaskSnapshot(
        task_id=_first_text(output.get("task_id"), body.get("task_id"), task_id) or "",
        status=TaskStatus.from_wire(raw_status),
        raw_status=raw_status,
        video_url=_first_text(
            output.get("video_url"), body.get("video_url"), _media_url(output), _media_url(body)
        ),
        orig_prompt=pick("orig_prompt"),
        actual_prompt=pick("actual_prompt"),
        error_code=_first_text(output.get("code"), body.get("code"), error_object.get("code")),
        error_message=_first_text(
            output.get("message"), body.get("message"), error_object.get("message"), error
        ),
        usage=_parse_usage(body),
        submit_time=parse_gateway_time(output.get("submit_time", body.get("submit_time"))),
        scheduled_time=parse_gateway_time(output.get("scheduled_time", body.get("scheduled_time"))),
        end_time=parse_gateway_time(output.get("end_time", body.get("end_time"))),
        request_id=_text(body.get("request_id")),
        raw=body,
    )


def _redacted(value: object, pattern: re.Pattern[str] | None) -> object:
    """``value`` (decoded JSON) with every text in it, names included, made safe to keep.

    The key is hidden (``redact``) and NUL characters become U+FFFD: PostgreSQL cannot store a
    NUL in text, so one in a message would stop the job from ever being recorded.
    """
    if isinstance(value, str):
        return redact(value, pattern).replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {
            _redacted(str(key), pattern): _redacted(item, pattern) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item, pattern) for item in value]
    return value


# Transport.


def _never_connected(exc: BaseException) -> bool:
    """True when the request certainly never left: the TCP connection did not open."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        # NewConnectionError (refused, unreachable, DNS) is a kind of ConnectTimeoutError.
        if isinstance(current, urllib3.exceptions.ConnectTimeoutError):
            return True
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
        # Only explicit causes: an implicit __context__ can be an unrelated earlier failure (a
        # stale pooled connection, say) and would make a sent request look unsent.
        if current.__cause__ is not None:
            pending.append(current.__cause__)
    return False


def _connection_error(exc: requests.RequestException) -> GatewayConnectionError:
    never_connected = _never_connected(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        if never_connected:
            return GatewayTimeout(
                "The gateway did not answer when Wan Studio tried to connect.",
                may_have_reached_server=False,
            )
        return GatewayTimeout("The gateway took too long to answer.", may_have_reached_server=True)
    if never_connected:
        return GatewayConnectionError(
            "Wan Studio could not connect to the gateway.",
            may_have_reached_server=False,
            hint="Check your internet connection and the gateway address in Settings.",
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return GatewayConnectionError(
            "Wan Studio could not make a secure connection to the gateway.",
            may_have_reached_server=False,
            hint="Check the gateway address in Settings and your computer's date and time.",
        )
    return GatewayConnectionError(
        "The connection to the gateway broke before its answer arrived.",
        may_have_reached_server=True,
    )


_BAD_ADDRESS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _loggable(url: str) -> str:
    # Signed video links carry their signature in the query; the path is enough to follow a log.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def key_problem(api_key: str) -> str | None:
    """Say why this API key cannot be sent to the gateway, or return None when it can.

    Keys are plain visible ASCII. Anything else (a space, a zero-width space pasted with the key, a
    letter from another alphabet) cannot travel in an HTTP header as typed and was never part of a
    key. The message names the character by its code and position, never the key.
    """
    for position, character in enumerate(api_key, start=1):
        if not "!" <= character <= "~":
            name = "a space" if character == " " else f"the character U+{ord(character):04X}"
            return (
                f"The API key contains {name} (character {position} of {len(api_key)}), which an "
                "API key never has, so it cannot be sent. It often comes from copying the key "
                "with invisible characters around it."
            )
    return None


class GatewayClient:
    """One connection to the gateway: its address, the key, a session, timeouts and retries.

    Safe to share between threads: every call builds its own headers and the session only pools
    connections.
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str,
        timeouts: Timeouts = DEFAULT_TIMEOUT,
        retry: RetryPolicy = DEFAULT_RETRY,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        download_deadline: float = DEFAULT_DOWNLOAD_DEADLINE_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._key_problem = key_problem(api_key)
        self._redaction = redaction_pattern((api_key,))
        self.timeouts = timeouts
        self.retry = retry
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.download_deadline = download_deadline

    def __repr__(self) -> str:
        key = "<hidden>" if self._api_key else "<none>"
        return f"GatewayClient(base_url={self.base_url!r}, api_key={key})"

    def close(self) -> None:
        """Close the session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Public calls.

    def submit(self, payload: Mapping[str, Any], *, path: str) -> SubmitReceipt:
        """Send one generation job; never resent once it may have reached the server.

        Parameters
        ----------
        payload
            The JSON body, as ``studio.generation.build_payload`` makes it.
        path
            The submit path it goes to (it depends on the model's kind).

        Returns
        -------
        SubmitReceipt
            The task id, its first status and, in the newer contract, the polling link.

        Raises
        ------
        GatewayError
            Any subclass; a ``GatewayConnectionError`` says whether the request may have arrived,
            and a ``GatewayResponseError`` means it did (a task may exist).
        """
        response = self._send(
            "POST", self._url(path), json_body=dict(payload), safe_to_repeat=False
        )
        return parse_submit_response(self._json(response, what="submit"))

    def get_task(self, task_id: str, *, polling_url: str | None = None) -> TaskSnapshot:
        """Read a task's current state; repeated on connection errors, 429 and 5xx.

        Parameters
        ----------
        task_id
            The id from ``SubmitReceipt.task_id``.
        polling_url
            The newer contract's polling link; when given it is read with GET instead of the poll
            endpoint.

        Returns
        -------
        TaskSnapshot
            The task as the gateway sees it now.
        """
        if polling_url:
            url = urljoin(self.base_url + "/", polling_url)
            if _origin(url) != _origin(self.base_url):
                other_host, own_host = urlsplit(url).netloc, urlsplit(self.base_url).netloc
                raise GatewayResponseError(
                    "The gateway asked Wan Studio to check the task at another address "
                    f"({other_host}); your key is only sent to {own_host}.",
                    hint="Check the gateway address in Settings.",
                )
            response = self._send("GET", url, json_body=None, safe_to_repeat=True)
        else:
            response = self._send(
                "POST", self._url(POLL_PATH), json_body={"task_id": task_id}, safe_to_repeat=True
            )
        return parse_task(self._json(response, what="status check"), task_id=task_id)

    def check_key(self) -> None:
        """Ask the gateway whether it takes this key, at no cost; return if it does.

        A status check for a task id no submit ever made: a key the gateway takes gets a 200
        answer (the task is ``UNKNOWN``), a wrong one a 401, and nothing is made or billed.

        Raises
        ------
        AuthenticationError
            The gateway refused the key.
        GatewayError
            Any other problem (no connection, a timeout, an unreadable answer).
        """
        response = self._send(
            "POST",
            self._url(POLL_PATH),
            json_body={"task_id": KEY_CHECK_TASK_ID},
            safe_to_repeat=True,
        )
        self._json(response, what="key check")

    def download(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Save a video link to ``dest`` atomically; the key is never sent to the link's host.

        The link and every redirect go through the link guard (``studio.linkfetch.open_link``):
        only public addresses on ports 80 and 443, each name resolved once and pinned, one deadline
        (``download_deadline``) for the whole download. The gateway's storage hosts get no
        exemption; only the gateway's own address (``base_url``), which the client talks to
        anyway, may be private, which is how the embedded demo gateway serves videos on loopback.

        Parameters
        ----------
        url
            The task's ``video_url``.
        dest
            Where the file should end up. It appears only once complete; a failed download leaves
            nothing behind.
        max_bytes
            Refuse files larger than this.
        progress
            Called with the bytes written so far after each chunk; whatever it raises stops the
            download (the partial file is removed) and comes out of this call unchanged.

        Returns
        -------
        int
            The number of bytes written.

        Raises
        ------
        LinkExpiredError
            When the link answers 403 (signed links last 24 hours).
        GatewayResponseError
            When the guard refuses the link or a redirect (not retried).
        GatewayError
            Any other subclass, after retries.
        """
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        attempt = 1
        while True:
            try:
                return self._download_once(
                    url, dest, max_bytes=max_bytes, attempt=attempt, progress=progress
                )
            except (GatewayConnectionError, ServerError) as error:
                retryable = error
            except GatewayStatusError as error:
                if error.status_code == 429:
                    retryable = error
                elif error.status_code == 403:
                    raise LinkExpiredError(
                        LinkExpiredError.summary,
                        status_code=403,
                        code=error.code,
                        request_id=error.request_id,
                        body_excerpt=error.body_excerpt,
                    ) from None
                else:
                    raise
            if attempt >= self.retry.max_attempts:
                raise retryable
            self._sleep(self._delay(attempt, retryable))
            attempt += 1

    # Internals.

    def _url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    def _headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Cache-Control": "no-cache",
            KEY_HEADER: self._api_key,
        }

    def _secrets(self) -> re.Pattern[str] | None:
        return self._redaction

    def _delay(self, attempt: int, error: GatewayError) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.retry.retry_after_cap)
        return self.retry.backoff(attempt, rng=self._rng)

    def _send(
        self,
        method: str,
        url: str,
        *,
        json_body: Mapping[str, Any] | None,
        safe_to_repeat: bool,
    ) -> requests.Response:
        """Send one gateway request, repeating it only where that cannot create a second task."""
        if self._key_problem is not None:
            raise UnsendableKeyError(self._key_problem)
        attempt = 1
        while True:
            prepared, environment = self._prepare(method, url, json_body)
            started = time.monotonic()
            try:
                response = self._session.send(
                    prepared,
                    timeout=self.timeouts.as_requests(),
                    allow_redirects=False,
                    **environment,
                )
            except requests.RequestException as exc:
                error = self._transport_error(exc, method=method, url=url, attempt=attempt)
                can_repeat = safe_to_repeat or not error.may_have_reached_server
                if not can_repeat or attempt >= self.retry.max_attempts:
                    raise error from None
            else:
                self._log(method, url, response.status_code, started, attempt)
                if response.status_code < 300:
                    return response
                status_error = error_from_response(
                    response.status_code, response.text, response.headers, secrets=self._secrets()
                )
                repeatable = response.status_code == 429 or response.status_code >= 500
                if not (safe_to_repeat and repeatable) or attempt >= self.retry.max_attempts:
                    raise status_error
                error = status_error
            self._sleep(self._delay(attempt, error))
            attempt += 1

    def _prepare(
        self, method: str, url: str, json_body: Mapping[str, Any] | None
    ) -> tuple[requests.PreparedRequest, dict[str, Any]]:
        """Build the request completely, so that any failure here is known to have sent nothing.

        Raises
        ------
        RequestNotSentError
            For anything that stops the request being built, including a header that HTTP
            cannot carry.
        """
        try:
            prepared = self._session.prepare_request(
                requests.Request(method, url, json=json_body, headers=self._headers())
            )
            environment = self._session.merge_environment_settings(
                prepared.url, {}, None, None, None
            )
            for value in prepared.headers.values():
                if isinstance(value, str):
                    # What the HTTP library does later, while it may already be connected.
                    value.encode("latin-1")
        except _BAD_ADDRESS as exc:
            raise self._transport_error(exc, method=method, url=url, attempt=1) from None
        except Exception as exc:
            logger.warning("%s %s was not sent: %s", method, _loggable(url), type(exc).__name__)
            raise RequestNotSentError(
                "Wan Studio could not put the request together, so it was not sent."
            ) from None
        return prepared, environment

    def _transport_error(
        self, exc: requests.RequestException, *, method: str, url: str, attempt: int
    ) -> GatewayConnectionError:
        """Log a request that got no answer and return the error to raise or retry.

        An address that is not a web address at all is raised at once: retrying cannot help.
        """
        if isinstance(exc, _BAD_ADDRESS):
            if url.startswith(self.base_url):
                raise GatewayError(
                    f"The gateway address {self.base_url!r} is not a valid web address.",
                    hint="Check the gateway address in Settings; it should start with https://.",
                ) from None
            raise GatewayError(
                "The video link the gateway gave is not a valid web address.",
                hint="Generate the video again.",
            ) from None
        error = _connection_error(exc)
        logger.warning(
            "%s %s failed on attempt %d: %s (%s)",
            method,
            _loggable(url),
            attempt,
            error.message,
            type(exc).__name__,
        )
        return error

    def _log(self, method: str, url: str, status: int, started: float, attempt: int) -> None:
        elapsed_ms = (time.monotonic() - started) * 1000
        logger.info(
            "%s %s -> %d in %.0f ms (attempt %d)",
            method,
            _loggable(url),
            status,
            elapsed_ms,
            attempt,
        )

    def _json(self, response: requests.Response, *, what: str) -> object:
        """The answer's body with the key hidden in every text, so no echo of it is ever stored."""
        try:
            body = response.json()
        except ValueError:
            raise GatewayResponseError(
                f"The gateway's answer to the {what} was not readable (it was not JSON).",
                status_code=response.status_code,
                body_excerpt=redact(response.text[:_BODY_EXCERPT_CHARS], self._secrets()),
            ) from None
        return _redacted(body, self._redaction)

    def _download_once(
        self,
        url: str,
        dest: Path,
        *,
        max_bytes: int,
        attempt: int,
        progress: Callable[[int], None] | None,
    ) -> int:
        started = time.monotonic()
        try:
            # Through the link guard: every hop checked and pinned, no gateway headers (the link is
            # signed, and the key must not travel to another host).
            with open_link(
                url,
                headers=_DOWNLOAD_HEADERS,
                trusted_hosts=self._own_hosts(),
                deadline_seconds=self.download_deadline,
                timeouts=self.timeouts.as_requests(),
                trust_hint="",
            ) as opened:
                response = opened.response
                self._log("GET", url, response.status_code, started, attempt)
                if response.status_code >= 300:
                    raise error_from_response(
                        response.status_code,
                        response.text,
                        response.headers,
                        secrets=self._secrets(),
                    )
                declared = declared_length(response.headers.get("Content-Length"))
                if declared is not None and declared > max_bytes:
                    raise self._too_large(max_bytes)
                return self._write_atomically(
                    dest,
                    self._chunks(opened, url=url, attempt=attempt),
                    max_bytes=max_bytes,
                    progress=progress,
                )
        except LinkTooSlow:
            raise self._download_too_slow() from None
        except LinkUnreachable as failure:
            logger.warning("GET %s failed on attempt %d: %s", _loggable(url), attempt, failure)
            raise GatewayConnectionError(
                "Wan Studio could not reach the server holding the video.",
                may_have_reached_server=False,
            ) from None
        except LinkRejected as refusal:
            logger.warning("GET %s refused: %s", _loggable(url), refusal)
            raise GatewayResponseError(
                f"The gateway gave a video link that Wan Studio does not follow: {refusal}",
                hint="Generate the video again; if it keeps happening, check the gateway address.",
            ) from None

    def _own_hosts(self) -> tuple[str, ...]:
        """The gateway's own address: a video there reaches nothing the client does not already."""
        own = urlsplit(self.base_url)
        return (own.netloc.lower(),) if own.netloc else ()

    def _download_too_slow(self) -> GatewayTimeout:
        return GatewayTimeout(
            f"The video took longer than {self.download_deadline:g} seconds to download.",
            may_have_reached_server=True,
        )

    def _chunks(self, opened: OpenedLink, *, url: str, attempt: int) -> Iterator[bytes]:
        try:
            yield from opened.response.iter_content(_DOWNLOAD_CHUNK_BYTES)
        except requests.RequestException as exc:
            if opened.deadline_passed():
                raise self._download_too_slow() from None
            raise self._transport_error(exc, method="GET", url=url, attempt=attempt) from None
        # A socket shut down at the deadline can look like a normal end of the body.
        if opened.deadline_passed():
            raise self._download_too_slow()

    @staticmethod
    def _too_large(max_bytes: int) -> GatewayResponseError:
        return GatewayResponseError(
            f"The video is larger than the {size_limit(max_bytes)} limit, so it was not saved.",
            hint="Raise the download size limit, or generate a shorter or smaller video.",
        )

    def _write_atomically(
        self,
        dest: Path,
        chunks: Iterator[bytes],
        *,
        max_bytes: int,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, removed on failure.
            dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
        )
        temp_path = Path(handle.name)
        written = 0
        try:
            with handle:
                for chunk in chunks:
                    written += len(chunk)
                    if written > max_bytes:
                        raise self._too_large(max_bytes)
                    handle.write(chunk)
                    if progress is not None:
                        progress(written)
                handle.flush()
                os.fsync(handle.fileno())
            if written == 0:
                raise GatewayResponseError(
                    "The gateway sent an empty video file.",
                    hint="Try downloading again in a moment.",
                )
            os.replace(temp_path, dest)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            raise
        return written
