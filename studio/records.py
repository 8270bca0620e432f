"""What the store keeps about a job, and how each state reads to a person.

Pages never compare status strings: they ask a ``Job`` or a ``JobStatus`` for its label, its tone
and whether it is still in flight.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.variations import VariationKind

DEMO = "demo"
BILLED = "billed"


class JobStatus(StrEnum):
    """The life of one job, from the moment it is written to the store."""

    SUBMITTING = "submitting"  # written, the submit request not yet answered
    UNCERTAIN = "uncertain"  # the submit may have reached the gateway but its answer was lost
    REJECTED = "rejected"  # the gateway refused the submit: no task, nothing billed
    QUEUED = "queued"  # the gateway accepted it (PENDING)
    RUNNING = "running"  # the model is generating (RUNNING or SUSPENDED)
    DOWNLOADING = "downloading"  # done upstream; the video is being saved locally
    SUCCEEDED = "succeeded"  # the video is on disk
    FAILED = "failed"  # the gateway reported FAILED
    CANCELED = "canceled"
    LOST = "lost"  # the gateway does not know the task (UNKNOWN, confirmed)
    TIMED_OUT = "timed_out"  # we stopped watching after the deadline; it can be checked again
    EXPIRED = "expired"  # made and billed, but the video link expired before it was saved

    @property
    def in_flight(self) -> bool:
        """True while the watcher still has work to do for this job."""
        return self in _IN_FLIGHT

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def tone(self) -> str:
        """One of ``info``, ``success``, ``warning``, ``error``: how a page should colour it."""
        return _TONES[self]


_IN_FLIGHT = frozenset(
    {JobStatus.SUBMITTING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DOWNLOADING}
)

_LABELS = {
    JobStatus.SUBMITTING: "Sending",
    JobStatus.UNCERTAIN: "Not sure it was sent",
    JobStatus.REJECTED: "Not accepted",
    JobStatus.QUEUED: "Queued",
    JobStatus.RUNNING: "Generating",
    JobStatus.DOWNLOADING: "Saving video",
    JobStatus.SUCCEEDED: "Done",
    JobStatus.FAILED: "Failed",
    JobStatus.CANCELED: "Cancelled",
    JobStatus.LOST: "Lost by the gateway",
    JobStatus.TIMED_OUT: "Taking too long",
    JobStatus.EXPIRED: "Video link expired",
}

_TONES = {
    JobStatus.SUBMITTING: "info",
    JobStatus.UNCERTAIN: "warning",
    JobStatus.REJECTED: "error",
    JobStatus.QUEUED: "info",
    JobStatus.RUNNING: "info",
    JobStatus.DOWNLOADING: "info",
    JobStatus.SUCCEEDED: "success",
    JobStatus.FAILED: "error",
    JobStatus.CANCELED: "warning",
    JobStatus.LOST: "error",
    JobStatus.TIMED_OUT: "warning",
    JobStatus.EXPIRED: "error",
}


@dataclass(frozen=True)
class Job:
    """One generation job as the store keeps it. Times are timezone-aware UTC."""

    id: int
    submission_id: str
    mode: str  # DEMO or BILLED
    session_id: str | None
    model: str
    resolution: str
    duration: int
    prompt: str
    negative_prompt: str
    prompt_extend: bool
    watermark: bool
    seed: int | None
    image_sha256: str
    image_source: str | None  # the file name or link the user gave
    last_frame_sha256: str | None  # first-and-last-frame models only
    status: JobStatus
    created_at: datetime
    estimate_usd: Decimal
    output_width: int | None = None
    output_height: int | None = None
    task_id: str | None = None
    polling_url: str | None = None
    submitted_at: datetime | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    explanation: str | None = None  # what happened and what to do, in plain words
    actual_prompt: str | None = None
    video_url: str | None = None
    video_path: str | None = None  # relative to the data folder
    billed_seconds: int | None = None
    cost_usd: Decimal | None = None
    key_fingerprint: str | None = None
    poll_count: int = 0
    next_poll_at: datetime | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None
    unknown_since: datetime | None = None
    deadline_at: datetime | None = None
    batch_id: int | None = None  # one of several clips made by one click
    favourite: bool = False
    owner: str | None = None  # who made it: a signed-in person's e-mail; none without sign-in

    @property
    def is_demo(self) -> bool:
        return self.mode == DEMO

    @property
    def in_flight(self) -> bool:
        return self.status.in_flight

    @property
    def has_video(self) -> bool:
        return self.status is JobStatus.SUCCEEDED and self.video_path is not None

    @property
    def has_cost(self) -> bool:
        """True once the gateway reported the video made: it is billed, saved or not."""
        return self.cost_usd is not None

    @property
    def prompt_was_improved(self) -> bool:
        return bool(self.actual_prompt) and self.actual_prompt != self.prompt


@dataclass(frozen=True)
class Batch:
    """Several clips made by one click (variations): each an ordinary job, grouped here.

    ``jobs`` are in clip order; a clip sent again later (after it was not sent) appears after
    the first ones, as a new job. Each job's submission id is the batch's followed by
    ``/<clip number>`` (and ``/<submission id of the sending again>`` for a later attempt),
    which is how ``clips`` tells the attempts of one clip apart.
    """

    id: int
    submission_id: str
    session_id: str | None
    kind: VariationKind | str  # "seeds", "prompts" or "models"
    size: int
    created_at: datetime
    jobs: tuple[Job, ...] = ()
    owner: str | None = None  # who made it, as on its jobs

    def clip_number(self, job: Job) -> int:
        """The clip (1 to ``size``) that ``job`` is an attempt at."""
        rest = job.submission_id.removeprefix(f"{self.submission_id}/")
        return int(rest.split("/", 1)[0])

    @property
    def clips(self) -> tuple[Job, ...]:
        """The latest attempt at each clip, in clip order: what a grid of the batch shows."""
        latest: dict[int, Job] = {}
        for job in self.jobs:  # in the order they were written, so a later attempt wins
            latest[self.clip_number(job)] = job
        return tuple(latest[number] for number in sorted(latest))

    @property
    def cost_usd(self) -> Decimal:
        """What the gateway billed for the batch's videos so far."""
        return sum((job.cost_usd for job in self.jobs if job.cost_usd is not None), Decimal(0))

    @property
    def pending_usd(self) -> Decimal:
        """What the clips in flight will cost if they succeed (their reserved estimates)."""
        pending = (job.estimate_usd for job in self.jobs if job.in_flight and not job.has_cost)
        return sum(pending, Decimal(0))

    @property
    def went(self) -> tuple[Job, ...]:
        """The jobs that reached the gateway, or may have: each one must never be sent again."""
        return tuple(
            job for job in self.jobs if job.status is not JobStatus.REJECTED and not _waiting(job)
        )

    @property
    def not_sent(self) -> tuple[Job, ...]:
        """The clips that certainly did not go (refused, or held back after a refusal), not yet
        sent again: what "send the rest" sends."""
        return tuple(job for job in self.clips if job.status is JobStatus.REJECTED)

    @property
    def done(self) -> bool:
        """True once no clip is in flight."""
        return not any(job.in_flight for job in self.jobs)


def _waiting(job: Job) -> bool:
    # Written with the batch, its turn to be sent not yet come.
    return job.status is JobStatus.SUBMITTING and job.submitted_at is None


@dataclass(frozen=True)
class Spend:
    """Counts and money for one slice of the jobs."""

    jobs: int = 0
    videos: int = 0  # videos the gateway made and billed, saved or not
    seconds: int = 0  # billed seconds of video
    cost_usd: Decimal = Decimal(0)
    pending: int = 0  # jobs in flight: sent, not yet ended
    pending_usd: Decimal = Decimal(0)  # what the pending jobs cost if they succeed


@dataclass(frozen=True)
class ModeSpend:
    """Billed and demo spend, kept apart."""

    billed: Spend = field(default_factory=Spend)
    demo: Spend = field(default_factory=Spend)


@dataclass(frozen=True)
class Totals:
    """The running totals the sidebar and the history page show."""

    session: ModeSpend
    today: ModeSpend
    all_time: ModeSpend
    by_model: dict[str, ModeSpend]


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a history list, count or export covers; ``None`` leaves that filter out.

    ``models`` and ``statuses`` may be given as any collection and are kept as tuples (so that a
    filter can be compared and hashed); an empty one matches no job. Blank ``text`` is no filter.
    """

    session_id: str | None = None
    models: Collection[str] | None = None
    statuses: Collection[JobStatus] | None = None
    mode: str | None = None  # DEMO or BILLED
    since: datetime | None = None  # since <= created_at
    until: datetime | None = None  # created_at < until
    text: str | None = None  # in the prompt, the extended prompt or the image's name
    favourites_only: bool = False  # only jobs marked as favourites
    batch_id: int | None = None  # the clips of one batch
    owner: str | None = None  # one person's jobs (their e-mail, lower-cased)

    def __post_init__(self) -> None:
        # Frozen: the normalised values are set the way dataclasses set them.
        models = None if self.models is None else tuple(self.models)
        statuses = (
            None if self.statuses is None else tuple(JobStatus(status) for status in self.statuses)
        )
        text = self.text.strip() if self.text and self.text.strip() else None
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "statuses", statuses)
        object.__setattr__(self, "text", text)
        if self.owner is not None:
            object.__setattr__(self, "owner", self.owner.strip().lower())


ALL_JOBS = JobFilter()


@dataclass(frozen=True)
class KeptDraft:
    """A browser session's Generate form as the store keeps it, and who kept it."""

    body: str  # the form as JSON text, written by the page
    owner: str | None = None  # the signed-in person who kept it; none without sign-in

    def open_to(self, person: str | None) -> bool:
        """Whether ``person`` may have this draft back from its address.

        Without sign-in (no person) there is one user and every draft is theirs; signed in, only
        the person who kept a draft gets it back, not someone else given its address.
        """
        return person is None or self.owner == person.strip().lower()
