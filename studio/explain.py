"""What happened to a job and what to do about it, in words for someone who never saw an API.

The watcher and the submit path store these sentences on the job (``Job.explanation``), so every
page, the command line and the CSV export say the same thing.
"""

from __future__ import annotations

from studio.catalog import Limits
from studio.errors import (
    AuthenticationError,
    GatewayConnectionError,
    GatewayError,
    GatewayResponseError,
    GatewayStatusError,
    InsufficientBalanceError,
    RateLimitError,
)
from studio.humane import size_limit

NOTHING_BILLED = "Nothing was billed."
# Said of failures that are the service's own passing trouble: pages offer a "Try again" button.
TRYING_AGAIN_WORKS = "Trying again usually works."

_FAILURE_CODES: dict[str, str] = {
    "DataInspectionFailed": (
        "The video service's content filter refused the image, the prompt or the generated video. "
        f"{NOTHING_BILLED} Try another image or reword the prompt."
    ),
    "InvalidParameter": (
        "The video service could not use the image or one of the settings{detail}. {billed} "
        "Check that the image is {rules}, then try again."
    ),
    "InternalError": (
        f"The video service failed on its side while generating. {NOTHING_BILLED} "
        f"{TRYING_AGAIN_WORKS}"
    ),
}


def _said(message: str | None) -> str:
    return f' (the video service said: "{message.strip()}")' if message and message.strip() else ""


def image_rules(limits: Limits) -> str:
    """The catalog's image rules in words: ``a JPEG, PNG, BMP or WEBP of at most 10.4 MB ...``."""
    *first, last = limits.image_formats
    formats = f"{', '.join(first)} or {last}" if first else last
    return (
        f"a {formats} of at most {size_limit(limits.image_max_bytes)} with each side between "
        f"{limits.image_min_side_px} and {limits.image_max_side_px} px"
    )


def explain_failure(code: str | None, message: str | None, *, limits: Limits) -> str:
    """Explain a task that the gateway reported as FAILED.

    Parameters
    ----------
    code
        The gateway's ``output.code``, e.g. ``DataInspectionFailed``.
    message
        The gateway's ``output.message``.
    limits
        The catalog's image rules, named when the image may be what was refused.

    Returns
    -------
    str
        What happened, that failed jobs are not billed, and what to try next.
    """
    if code == "InvalidParameter":
        return _FAILURE_CODES[code].format(
            detail=_said(message), billed=NOTHING_BILLED, rules=image_rules(limits)
        )
    if code in _FAILURE_CODES:
        return _FAILURE_CODES[code]
    named = f" ({code})" if code else ""
    return (
        f"The video service reported that the video could not be made{named}{_said(message)}. "
        f"Failed jobs are not billed. Try again, or change the image or prompt if it fails again."
    )


def explain_canceled() -> str:
    """Explain a task that was cancelled on the gateway's side."""
    return f"The task was cancelled by the video service before it ran. {NOTHING_BILLED}"


def explain_lost(*, polls: int, seconds: float) -> str:
    """Explain a young task the gateway kept answering UNKNOWN about.

    Parameters
    ----------
    polls
        How many UNKNOWN answers were seen (at least).
    seconds
        Over how long they were seen.
    """
    return (
        f"The video service does not know this task: it said so {polls} times over "
        f"{seconds:.0f} seconds. The task was probably never started, and a task that never ran "
        "is not billed. Generate it again."
    )


def explain_lost_expired() -> str:
    """Explain an UNKNOWN answer for a task older than the gateway keeps tasks."""
    return (
        "The video service forgets tasks after 24 hours and no longer knows this one, so its "
        "result cannot be fetched any more. Generate it again if you still need it."
    )


def explain_timed_out(minutes: float) -> str:
    """Explain a job that Studio stopped watching after its deadline."""
    return (
        f"No result after {minutes:.0f} minutes, so Wan Studio stopped checking. The video "
        "service may still finish it: use Check again to look once more."
    )


def explain_not_saved(minutes: float) -> str:
    """Explain a video the gateway made and billed that could not be saved before the deadline."""
    return (
        f"The video was made and billed, but saving it kept failing for {minutes:.0f} minutes, "
        "so Wan Studio stopped trying. Use Check again to try once more while its download "
        "link lasts (24 hours)."
    )


def explain_expired() -> str:
    """Explain a video the gateway made and billed whose link expired before it could be saved."""
    return (
        "The video was made and billed, but it could not be fetched in time: its download link "
        "expired (links last 24 hours) before Wan Studio could save it, so it cannot be "
        "downloaded any more. Generate it again if you still need it."
    )


def explain_disk_full() -> str:
    """Explain a finished video that could not be saved because the disk is full."""
    return (
        "The disk is full, so the video could not be saved. Free some space and it will be "
        "saved automatically."
    )


def explain_download_problem(error: GatewayError | str) -> str:
    """Explain a download that failed for now and will be tried again."""
    reason = error.message if isinstance(error, GatewayError) else error
    return f"The video is ready, but saving it failed ({reason}). Wan Studio will try again."


def explain_uncertain(error: GatewayError | None = None) -> str:
    """Explain a submit whose answer was lost after the request may have reached the gateway.

    Parameters
    ----------
    error
        What broke (a read timeout, a dropped connection, an unreadable answer), or None when the
        app stopped while sending.
    """
    what = error.message if error is not None else "Wan Studio stopped while sending the job."
    return (
        f"{what} The request may have reached the video service, which would make (and bill) the "
        "video, or it may not. Wan Studio does not send it again on its own, so you are never "
        "billed twice without deciding it: send it again (accepting a possible second charge) "
        "or dismiss it."
    )


def explain_rejection(error: GatewayError) -> str:
    """Explain a submit the gateway refused, or that certainly never reached it.

    Parameters
    ----------
    error
        The error from the submit.

    Returns
    -------
    str
        The error's message and hint, and that nothing was billed.
    """
    hint = error.hint
    if isinstance(error, RateLimitError) and error.retry_after is None:
        hint = "The video service is busy: wait a minute and try again."
    elif isinstance(error, AuthenticationError):
        hint = "Check the API key in Settings; a key typed there lasts until the page is reloaded."
    elif isinstance(error, InsufficientBalanceError):
        hint = "Add credit to your Pixazo account, then generate again."
    sent = (
        "The request never reached the video service."
        if isinstance(error, GatewayConnectionError) and not error.may_have_reached_server
        else ""
    )
    parts = [error.message, sent, NOTHING_BILLED, hint]
    return " ".join(part.strip() for part in parts if part and part.strip())


def refused_inline_image(error: GatewayError) -> bool:
    """True when a refused submit that carried its first frame inline (a ``data:`` URI) was
    refused for that: a 400 or 422 answer that speaks of the image's URL."""
    if not isinstance(error, GatewayStatusError) or error.status_code not in (400, 422):
        return False
    said = f"{error.code or ''} {error.message} {error.body_excerpt}".lower()
    return "url" in said or "data:" in said


def explain_image_host_needed(error: GatewayError) -> str:
    """Explain a first frame refused because it was sent inline, not from a web address."""
    return (
        f"The video service would not take the picture sent with the request{_said(error.message)}"
        ": it reads first frames only from a web address, and this Wan Studio has no storage "
        f"set up to give them one. {NOTHING_BILLED} Ask whoever runs Wan Studio to set up image "
        "storage (Settings, For administrators, says how), then try again."
    )


def explain_held_back(refusal: GatewayStatusError) -> str:
    """Explain a clip of a batch not sent because an earlier one was refused for the account."""
    if isinstance(refusal, RateLimitError):
        return (
            "Not sent: the video service asked Wan Studio to slow down. Nothing was billed for "
            "this clip; send the clips that did not go again in a minute."
        )
    return (
        f"Not sent: {refusal.summary} Nothing was billed for this clip. "
        f"{refusal.hint} Then send the clips that did not go."
    )


def explain_never_sent() -> str:
    """Explain a job written but never sent: Wan Studio stopped before its turn came."""
    return (
        "Not sent: Wan Studio stopped (it was closed or restarted) before it sent this clip. "
        "Nothing was billed for it; send it again."
    )


def submit_was_certainly_refused(error: GatewayError) -> bool:
    """True when a failed submit certainly created no task (so the job is rejected, not uncertain).

    A 4xx answer is the gateway refusing the request, and a connection that never opened sent
    nothing. A broken connection after sending, a read timeout, any 5xx answer or a success answer
    we could not read may each hide a task that exists and will be billed.
    """
    if isinstance(error, GatewayConnectionError):
        return not error.may_have_reached_server
    if isinstance(error, GatewayStatusError):
        # A 5xx says the gateway, or a proxy or service behind it, failed after getting the
        # request: the task may have been started (and billed) before the failure.
        return error.status_code < 500
    return not isinstance(error, GatewayResponseError)
