"""Everything that can go wrong when talking to the gateway, as one tree of exceptions.

Each error carries a ``message`` (what happened) and a ``hint`` (what the user should do), both in
plain words for someone who has never seen an API. ``error_from_response`` is the one place that
turns an HTTP error answer into the right class.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

REDACTED = "[hidden]"

# Secrets shorter than this are not searched for: replacing every "a" in a message would make it
# unreadable, and real keys are long.
_MIN_SECRET_LENGTH = 4
_BODY_EXCERPT_CHARS = 300
_DETAIL_CHARS = 200
# A key echoed back in a header-like line ("Ocp-Apim-Subscription-Key: abc") is hidden even when the
# client does not know which key it was.
_KEY_ECHO = re.compile(r"(subscription-key[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)", re.IGNORECASE)


def _base64_cores(secret: bytes) -> set[str]:
    """The base64 characters that depend only on ``secret``, at each of the three byte alignments.

    Inside a longer base64 text the secret can start at any byte offset modulo 3; at each offset
    the characters that mix in a neighbouring byte (and any padding) differ, the rest do not.
    """
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + secret).decode("ascii")
        start = -(-8 * offset // 6)
        end = 8 * (offset + len(secret)) // 6
        core = encoded[start:end]
        cores.add(core)
        cores.add(core.translate(_URLSAFE))
    return cores


_URLSAFE = str.maketrans("+/", "-_")


def redaction_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One pattern matching every form a secret may be echoed in, or None when there is none.

    Each secret matches in plain text in any letter case, and as base64 (standard or URL-safe,
    padded or not, alone or at any alignment inside a longer base64 text).
    """
    plain: set[str] = set()
    encoded: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            continue
        plain.add(secret)
        for variant in {secret, secret.lower(), secret.upper()}:
            encoded |= _base64_cores(variant.encode("utf-8"))
    if not plain:
        return None
    # Longest first, so a longer form is hidden whole rather than around a shorter one.
    alternatives = [f"(?i:{re.escape(text)})" for text in sorted(plain, key=len, reverse=True)]
    alternatives += [re.escape(text) for text in sorted(encoded, key=len, reverse=True) if text]
    return re.compile("|".join(alternatives))


def redact(text: str, secrets: Iterable[str] | re.Pattern[str] | None = ()) -> str:
    """Return ``text`` with every secret, and anything that looks like an echoed key, hidden.

    Parameters
    ----------
    text
        Any text that may end up in a message, a log line or the database.
    secrets
        Exact values to hide (the API key), or a pattern from ``redaction_pattern``. Each is hidden
        in any letter case and in base64 too.

    Returns
    -------
    str
        The text with each secret replaced by ``[hidden]``.
    """
    if secrets is not None and not isinstance(secrets, re.Pattern):
        secrets = redaction_pattern(secrets)
    if secrets is not None:
        text = secrets.sub(REDACTED, text)
    return _KEY_ECHO.sub(lambda match: match.group(1) + REDACTED, text)


class GatewayError(Exception):
    """Base of every gateway error: what happened, and what the user should do about it."""

    default_hint = "Try again in a moment."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class GatewayConnectionError(GatewayError):
    """The gateway could not be reached, or the connection broke before an answer arrived.

    ``may_have_reached_server`` is False only when the connection never opened, so the request
    certainly was not sent. When it is True, a submit may have created (and billed) a task.
    """

    default_hint = "Check your internet connection and try again in a moment."

    def __init__(
        self, message: str, *, may_have_reached_server: bool, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.may_have_reached_server = may_have_reached_server


class RequestNotSentError(GatewayConnectionError):
    """The request could not be put together or sent at all, so no byte of it left this computer."""

    default_hint = "Nothing was sent; check the settings and try again."

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, may_have_reached_server=False, hint=hint)


class UnsendableKeyError(RequestNotSentError):
    """The API key holds a character no key has (often an invisible one pasted along with it)."""

    default_hint = (
        "Type or paste the API key again in Settings, without spaces or invisible characters."
    )


class GatewayTimeout(GatewayConnectionError):
    """The gateway took too long to connect or to answer."""

    default_hint = "The video service is slow right now; try again in a moment."


class GatewayResponseError(GatewayError):
    """The gateway answered with success but in a form we cannot read (not JSON, no task id).

    The request did reach the server: after a submit, a task may exist and be billed.
    """

    default_hint = (
        "Try again in a moment; if it keeps happening, the video service may have changed."
    )

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body_excerpt: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.body_excerpt = body_excerpt


class GatewayStatusError(GatewayError):
    """The gateway answered with an HTTP error status."""

    summary = "The video service could not handle the request."
    default_hint = "Try again in a moment."

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after


class BadRequestError(GatewayStatusError):
    """400: the gateway refused the request's content."""

    summary = "The video service did not accept the request."
    default_hint = "Check the image and the options, then try again."


class AuthenticationError(GatewayStatusError):
    """401: the API key is missing, wrong or expired."""

    summary = "Pixazo did not accept the API key."
    default_hint = "Check the API key in Settings: it may be mistyped, expired or missing."


class InsufficientBalanceError(GatewayStatusError):
    """402: the account has no credit left."""

    summary = "Your Pixazo account has run out of credit."
    default_hint = "Add credit to your Pixazo account, then try again."


class PermissionDeniedError(GatewayStatusError):
    """403: the key is valid but may not do this."""

    summary = "The video service refused access."
    default_hint = "Check that your Pixazo subscription includes the Wan image-to-video models."


class LinkExpiredError(PermissionDeniedError):
    """403 on a video link: signed links last 24 hours."""

    summary = "The video link has expired or is no longer valid (links last 24 hours)."
    default_hint = "The video can no longer be fetched from the video service; generate it again."


class NotFoundError(GatewayStatusError):
    """404: the address or the thing asked for does not exist."""

    summary = "The video service could not find what was asked for."
    default_hint = "An administrator can check the service address in Settings."


class RateLimitError(GatewayStatusError):
    """429: too many requests; ``retry_after`` says how long to wait, when the gateway says."""

    summary = "The video service is receiving too many requests right now."
    default_hint = "Wait a minute and try again."


class ServerError(GatewayStatusError):
    """5xx: the gateway or the model service failed on its side."""

    summary = "The video service had a problem on its side."
    default_hint = "Try again in a few minutes."


_CLASS_BY_STATUS: dict[int, type[GatewayStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[GatewayStatusError]:
    """Return the error class for an HTTP status code."""
    if status_code >= 500:
        return ServerError
    return _CLASS_BY_STATUS.get(status_code, GatewayStatusError)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header as seconds to wait.

    Parameters
    ----------
    value
        The header value: a number of seconds (``"2"``, ``"1.5"``) or an HTTP date.
    now
        The current time, for HTTP dates; defaults to the clock.

    Returns
    -------
    float or None
        Seconds to wait (``0.0`` for a date already past), or None for a missing, negative or
        unreadable value.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Plain dicts are case-sensitive; HTTP header names are not.
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _read_error_body(body_text: str) -> tuple[str | None, str | None, str | None]:
    """Return (code, detail, request_id) from any of the gateway's error body shapes."""
    try:
        body = json.loads(body_text)
    except ValueError:
        return None, None, None
    if not isinstance(body, dict):
        return None, None, None
    code = body.get("code")
    detail = body.get("message")
    error = body.get("error")
    if isinstance(error, dict):
        code = code or error.get("code")
        detail = detail or error.get("message")
    elif error is not None:
        detail = detail or error
    request_id = body.get("request_id")
    return (
        str(code) if code not in (None, "") else None,
        str(detail) if detail not in (None, "") else None,
        str(request_id) if request_id not in (None, "") else None,
    )


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def error_from_response(
    status_code: int,
    body_text: str,
    headers: Mapping[str, str],
    *,
    secrets: Iterable[str] | re.Pattern[str] | None = (),
) -> GatewayStatusError:
    """Turn an HTTP error answer from the gateway into the matching error.

    Parameters
    ----------
    status_code
        The HTTP status of the answer.
    body_text
        The answer's body as text: JSON in one of the three known shapes (``{"error": ...}``,
        ``{"code", "message", "request_id"}``, ``{"message"}``) or anything else.
    headers
        The answer's headers (``Retry-After`` and a request id are read from them).
    secrets
        Values that must never appear in the error (the API key), even if the server echoes them,
        or a pattern from ``redaction_pattern``.

    Returns
    -------
    GatewayStatusError
        An instance of the subclass for this status, with a plain message and a hint.
    """
    if not isinstance(secrets, re.Pattern) and secrets is not None:
        secrets = redaction_pattern(secrets)
    error_class = status_error_class(status_code)
    code, detail, request_id = _read_error_body(body_text)
    request_id = request_id or _header(headers, "x-request-id")
    request_id = redact(request_id, secrets) if request_id else None
    retry_after = parse_retry_after(_header(headers, "retry-after"))

    message = error_class.summary
    if error_class is GatewayStatusError:
        message = f"The video service could not handle the request (HTTP {status_code})."
    if detail:
        message += f' The video service said: "{_shorten(redact(detail, secrets), _DETAIL_CHARS)}"'
    hint = None
    if error_class is RateLimitError and retry_after is not None:
        hint = f"Wait about {math.ceil(retry_after)} seconds and try again."

    return error_class(
        message,
        status_code=status_code,
        code=redact(code, secrets) if code else None,
        request_id=request_id,
        body_excerpt=_shorten(redact(body_text, secrets), _BODY_EXCERPT_CHARS),
        retry_after=retry_after,
        hint=hint,
    )
