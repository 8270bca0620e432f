"""What a person can expect of a job: how long it usually takes, and what it is doing now.

The words are for someone who never saw an API; pages show them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from studio.records import BILLED, DEMO, JobStatus

# A job that has run this many times its usual time is "taking longer than usual".
OVERDUE_FACTOR = 1.5
# A progress bar never shows full before the video is saved.
MAX_PROGRESS = 0.97


@dataclass(frozen=True)
class TypicalWait:
    """How long a job usually takes from sending to a saved video, in seconds."""

    usual_from: float
    usual_to: float
    longest: float | None = None

    def describe(self) -> str:
        """``Usually under a minute``, ``Usually 1–5 minutes, sometimes up to 10``."""
        if self.usual_from <= 0:
            text = f"Usually under {_minutes(self.usual_to)}"
        else:
            text = f"Usually {round(self.usual_from / 60)}–{_minutes(self.usual_to)}"
        if self.longest is not None:
            text += f", sometimes up to {round(self.longest / 60)}"
        return text


def _minutes(seconds: float) -> str:
    count = round(seconds / 60)
    return "a minute" if count == 1 else f"{count} minutes"


# Before this app has timed enough similar jobs itself: real jobs take 1 to 5 minutes, now and
# then up to 10; the built-in demo gateway finishes well within a minute.
TYPICAL_WAIT = MappingProxyType(
    {
        BILLED: TypicalWait(usual_from=60, usual_to=300, longest=600),
        DEMO: TypicalWait(usual_from=0, usual_to=60),
    }
)

_STAGES = {
    JobStatus.SUBMITTING: "Sending it to the video service",
    JobStatus.QUEUED: "Waiting its turn at the video service",
    JobStatus.RUNNING: "The model is making your video",
    JobStatus.DOWNLOADING: "Saving the finished video",
}


def typical_wait(mode: str) -> TypicalWait:
    """How long a job of this mode (``billed`` or ``demo``) usually takes."""
    return TYPICAL_WAIT[mode]


def stage(status: JobStatus) -> str:
    """What a job in this status is doing, in plain words (its label once it has ended)."""
    return _STAGES.get(status, status.label)


@dataclass(frozen=True)
class Progress:
    """How far along a job probably is, as a fraction of its expected time, and in words."""

    fraction: float
    text: str


def progress(
    *, started: datetime, expected_finish: datetime | None, now: datetime
) -> Progress | None:
    """Estimate how far along an in-flight job is from when similar jobs finished.

    Parameters
    ----------
    started
        When the job was sent.
    expected_finish
        When similar past jobs suggest it ends (``Studio.expected_finish``), if known.
    now
        The current time.

    Returns
    -------
    Progress or None
        ``None`` without an expected finish after ``started``; then only the typical wait of
        the job's mode can be said. The fraction stays below 1 until the video is saved.
    """
    if expected_finish is None:
        return None
    total = (expected_finish - started).total_seconds()
    if total <= 0:
        return None
    so_far = (now - started).total_seconds()
    if expected_finish > now:
        left = time_left((expected_finish - now).total_seconds())
        text = left[:1].upper() + left[1:]
    elif so_far < total * OVERDUE_FACTOR:
        text = "Should be ready any moment"
    else:
        text = "Taking longer than usual; it is still going"
    return Progress(fraction=min(MAX_PROGRESS, max(0.0, so_far / total)), text=text)


def time_left(seconds: float) -> str:
    """``about 40 s left``, ``about 3 min left``: rounded, because it is a guess."""
    rounded = max(5, round(seconds / 5) * 5)
    if rounded < 60:
        return f"about {rounded} s left"
    return f"about {round(seconds / 60)} min left"
