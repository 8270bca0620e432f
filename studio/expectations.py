"""What to expect of a job: how long it runs, how long it usually takes, and what it is doing now.

``RunTimeEstimator`` is the one estimate of run time, fed by the store: the watcher schedules its
polls with it and the job cards word it. The words are for someone who never saw an API; pages
show them as they are.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from studio.catalog import Catalog
from studio.records import DEMO, Job, JobStatus
from studio.schedule import (
    ExpectedRunTime,
    PollPolicy,
    expected_from_samples,
    gateway_pace,
    ratios_to_neighbours,
    spread_around,
)

if TYPE_CHECKING:
    from studio.store import JobStore

# The demo gateway's timing is imported where a demo job needs it: the job cards import this
# module, and the Generate form is drawn before the demo gateway (the simulator, Pillow, the
# video renderer) has been imported.

# A job that has run this many times its usual time is "taking longer than usual".
OVERDUE_FACTOR = 1.5
# A progress bar never shows full before the video is saved.
MAX_PROGRESS = 0.97
# Past jobs of a class read for an estimate: enough for a spread, recent enough to follow a change.
HISTORY_LIMIT = 50
# Past jobs of every class on a gateway read for its spread and its pace.
GATEWAY_HISTORY_LIMIT = 100
# A failing estimate is logged with its traceback at most this often (it fails for every job).
ESTIMATE_FAILURE_QUIET_SECONDS = 300.0

logger = logging.getLogger("studio.expectations")


@dataclass(frozen=True)
class TypicalWait:
    """How long a job usually takes from sending to a saved video, in seconds."""

    usual_from: float
    usual_to: float
    longest: float | None = None

    def describe(self) -> str:
        """``Usually under a minute``, ``Usually 1–5 minutes, sometimes up to 10``, ``Usually
        under a minute, sometimes up to 2 minutes``."""
        upper = max(round(self.usual_to / 60), 1)
        lower = round(self.usual_from / 60)
        if lower < 1 or lower >= upper:
            text = f"Usually under {_minutes(upper)}"
        else:
            text = f"Usually {lower}–{_minutes(upper)}"
        if self.longest is not None and (longest := round(self.longest / 60)) > upper:
            # After a range in minutes the unit goes without saying; after "a minute" it does not.
            text += f", sometimes up to {longest if upper > 1 else _minutes(longest)}"
        return text


def _minutes(count: int) -> str:
    return "a minute" if count == 1 else f"{count} minutes"


@dataclass(frozen=True)
class JobClass:
    """What run time depends on: the gateway (``billed`` or ``demo``) and the job's options."""

    mode: str
    model: str
    resolution: str
    duration: int

    @classmethod
    def of(cls, job: Job) -> JobClass:
        return cls(job.mode, job.model, job.resolution, job.duration)


class RunTimeEstimator:
    """How long jobs of a class run and take, from the store's timings or else a prior.

    The prior of a billed job is the catalog's guess (a hint only); a demo job's is the demo
    gateway's own timing model at its speed. Timings of the two gateways never mix. Looked-up
    times are reused for ``policy.history_ttl`` seconds.

    Parameters
    ----------
    store
        Where past jobs' times come from.
    catalog
        The priors and speed classes.
    policy
        How many past jobs make a centre and a spread, and how long to reuse them.
    demo_speed
        How much faster than its defaults the demo gateway runs.
    clock
        Monotonic seconds, for the reuse period.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        catalog: Catalog,
        policy: PollPolicy,
        demo_speed: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._policy = policy
        self._demo_speed = demo_speed
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[tuple[JobClass, bool], tuple[float, list[float]]] = {}
        self._latest: dict[str, tuple[float, list[tuple[str, str, int, float]]]] = {}
        self._failure_quiet_until = float("-inf")

    def forget(self) -> None:
        """Read the store afresh on the next question."""
        with self._lock:
            self._cache.clear()
            self._latest.clear()

    def running_time(self, job_class: JobClass) -> ExpectedRunTime:
        """The model's running time (gateway start to end) for a job of this class.

        Past jobs only inform it. Should their times not add up (a division by zero, a median
        of nothing), the class's prior is used instead: such a job stays in the store, and
        would otherwise stop every estimate, and with them the watcher and the job cards.
        """
        prior = self._prior(job_class)
        try:
            pace, spread = self._gateway_ratios(job_class.mode)
            return expected_from_samples(
                self._policy,
                self._times(job_class, from_start=True),
                fallback=prior,
                pace=gateway_pace(self._policy, pace),
                pooled_ratios=spread,
            )
        except (ArithmeticError, ValueError):
            self._say_estimate_failed(job_class)
            return prior

    def _say_estimate_failed(self, job_class: JobClass) -> None:
        # Every job of every class would say it, every round: with its traceback, once a while.
        now = self._clock()
        with self._lock:
            if now < self._failure_quiet_until:
                return
            self._failure_quiet_until = now + ESTIMATE_FAILURE_QUIET_SECONDS
        logger.exception(
            "could not estimate %s from past jobs; using the model's usual time", job_class
        )

    def _gateway_ratios(self, mode: str) -> tuple[list[float], list[float]]:
        """The gateway's latest jobs of every class against their classes, latest first.

        Returns ``(pace, spread)``. ``pace``: each job over its class's median (``gateway_pace``
        reads the first few). ``spread``: each job over the median of its class's jobs that
        ended around it (``ratios_to_neighbours``), so that a change of pace, which moves the
        whole class, does not pass for a spread. Only classes with enough jobs for a median
        (``spread_samples``) count.
        """
        now = self._clock()
        with self._lock:
            cached = self._latest.get(mode)
        if cached is None or now - cached[0] >= self._policy.history_ttl:
            latest = self._store.latest_running_times(mode=mode, limit=GATEWAY_HISTORY_LIMIT)
            cached = (now, latest)
            with self._lock:
                self._latest[mode] = cached
        pace = []
        medians: dict[JobClass, float | None] = {}
        by_class: dict[JobClass, list[float]] = {}
        for model, resolution, duration, seconds in cached[1]:
            job_class = JobClass(mode, model, resolution, duration)
            by_class.setdefault(job_class, []).append(seconds)
            if job_class not in medians:
                times = self._times(job_class, from_start=True)
                enough = len(times) >= self._policy.spread_samples
                medians[job_class] = statistics.median(times) if enough else None
            median = medians[job_class]
            if median:
                pace.append(seconds / median)
        spread = [
            ratio
            for times in by_class.values()
            if len(times) >= self._policy.spread_samples
            for ratio in ratios_to_neighbours(times, self._policy.spread_neighbours)
        ]
        return pace, spread

    def total_time(self, job_class: JobClass) -> ExpectedRunTime:
        """The time from the submit to the end, queue included, for a job of this class."""
        queue = self._prior_queue_seconds(job_class)
        prior = self._prior(job_class)
        fallback = ExpectedRunTime(
            prior.median_seconds + queue,
            prior.low_seconds + queue / 2,
            prior.high_seconds + queue * 2,
            trusted=prior.trusted,
        )
        return expected_from_samples(
            self._policy, self._times(job_class, from_start=False), fallback=fallback
        )

    def expected_finish(self, job: Job) -> datetime | None:
        """When an in-flight job should be done, from similar past jobs (None: none timed yet).

        Once the gateway has started the job, its running time is what varies least, so the
        estimate counts from the start; before that it counts from the submit, queue included.
        """
        if not job.in_flight or job.submitted_at is None:
            return None
        job_class = JobClass.of(job)
        if job.started_at is not None:
            expected, since = self.running_time(job_class), job.started_at
        else:
            expected, since = self.total_time(job_class), job.submitted_at
        if expected.samples == 0:
            return None
        return since + timedelta(seconds=expected.median_seconds)

    def typical_wait(self, job_class: JobClass) -> TypicalWait:
        """How long a job of this class usually takes, from its sending to its end."""
        total = self.total_time(job_class)
        return TypicalWait(
            usual_from=total.low_seconds, usual_to=total.median_seconds, longest=total.high_seconds
        )

    def _times(self, job_class: JobClass, *, from_start: bool) -> list[float]:
        key = (job_class, from_start)
        now = self._clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self._policy.history_ttl:
            return cached[1]
        times = self._store.recent_run_times(
            job_class.model,
            job_class.resolution,
            job_class.duration,
            mode=job_class.mode,
            from_start=from_start,
            limit=HISTORY_LIMIT,
        )
        with self._lock:
            self._cache[key] = (now, times)
        return times

    def _prior(self, job_class: JobClass) -> ExpectedRunTime:
        if job_class.mode == DEMO:
            from studio.demo import demo_running_seconds

            seconds, jitter = demo_running_seconds(
                self._catalog,
                model=job_class.model,
                resolution=job_class.resolution,
                duration=job_class.duration,
                speed=self._demo_speed,
            )
            return spread_around(seconds, low_share=1 - jitter, high_share=1 + jitter, trusted=True)
        timing = self._catalog.timing
        seconds = self._catalog.prior_running_seconds(
            job_class.model, job_class.resolution, job_class.duration
        )
        return spread_around(
            seconds,
            low_share=timing.prior_low_share,
            high_share=timing.prior_high_share,
            trusted=False,
        )

    def _prior_queue_seconds(self, job_class: JobClass) -> float:
        if job_class.mode == DEMO:
            from studio.demo import demo_queue_seconds

            return demo_queue_seconds(speed=self._demo_speed)
        return self._catalog.timing.prior_queue_seconds


_STAGES = {
    JobStatus.SUBMITTING: "Sending it to the video service",
    JobStatus.QUEUED: "Waiting its turn at the video service",
    JobStatus.RUNNING: "The model is making your video",
    JobStatus.DOWNLOADING: "Saving the finished video",
}


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
        When similar past jobs suggest it ends (``RunTimeEstimator.expected_finish``), if known.
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
