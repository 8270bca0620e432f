"""The job watcher: polls every in-flight job until it ends, and saves each finished video.

One watcher runs per server process (a daemon thread inside ``Studio``) or alone as a worker
(``python -m studio watch``). It takes a short lease on each job it works on, so two watchers on
one database never poll or download the same job at once, and a watcher that dies simply lets its
leases expire: the next one resumes the job. Every request goes through one ``RequestBudget``.
When more jobs are due than the budget allows at once, the ones closest to their expected finish
go first, and enough workers run that the round trip of each request does not hold the rate down.

Nothing it meets makes it spin: a store that cannot be reached, a full disk or an unexpected error
is logged in one line and tried again after a wait that doubles up to a bound. A download longer
than a lease renews the lease while it runs, so no other watcher starts the same download.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import logging
import os
import random
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from studio.catalog import Catalog, Limits
from studio.errors import GatewayError, LinkExpiredError, RateLimitError
from studio.expectations import JobClass, RunTimeEstimator
from studio.explain import (
    explain_canceled,
    explain_disk_full,
    explain_download_problem,
    explain_expired,
    explain_failure,
    explain_lost,
    explain_lost_expired,
    explain_never_sent,
    explain_not_saved,
    explain_timed_out,
    explain_uncertain,
)
from studio.gateway import GatewayClient, TaskSnapshot, TaskStatus
from studio.pricing import cost_for_usage
from studio.records import Job, JobStatus
from studio.schedule import (
    UNKNOWN_EXPIRED,
    ExpectedRunTime,
    PollPolicy,
    RequestBudget,
    finish_urgency,
    next_poll_delay,
    unknown_verdict,
    watch_from,
)
from studio.store import UNSENT_GRACE_SECONDS, JobStore

if TYPE_CHECKING:
    from studio.mediastore import Bucket

logger = logging.getLogger("studio.watcher")

VIDEOS_FOLDER = "videos"
# A real clip is hundreds of kilobytes; anything this small is an error page or a stub.
MIN_VIDEO_BYTES = 1024
# Jobs worked on at once: at the default budget (10 a second) and round trips of up to a second
# or a download in progress, fewer would leave the budget unused.
DEFAULT_WORKERS = 16
# Jobs claimed ahead of a free worker, so the most urgent of them goes first, are bounded so that
# the budget serves them all within this share of a lease.
_QUEUE_LEASE_SHARE = 0.25
# Never spin: a job that looks due but could not be claimed (a race) is tried again after this.
_MIN_IDLE_WAIT = 0.01
# How often a watcher looks for jobs whose sender stopped before sending them (any key's).
_NEVER_SENT_SWEEP = timedelta(seconds=30)
# Room kept free on the disk of the data folder, so that a video never takes the last bytes the
# database needs to record what happened.
DISK_RESERVE_BYTES = 32 * 1024 * 1024
# A job that failed on our side (a video that could not be written, an unexpected error) is
# worked on again after waits doubling from the first to the most.
FAILURE_RETRY_FIRST_SECONDS = 5.0
FAILURE_RETRY_MOST_SECONDS = 300.0
# An unreachable job store is tried again after waits doubling to this.
STORE_RETRY_MOST_SECONDS = 60.0
# A partial download untouched for this long is abandoned, whoever holds its job.
STALE_PART_SECONDS = 3600.0
# How the download writes a partial file: ``.<job id>.mp4.<random>.part`` in the videos folder.
_PART_FILE = re.compile(r"^\.(\d+)\.mp4\..+\.part$")
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

ClientForKey = Callable[[str | None], GatewayClient | None]
HeldKeys = Callable[[], Collection[str | None]]
FreeBytes = Callable[[Path], int]


class LeaseLost(Exception):
    """Another watcher took over a job while this one was still working on it."""


@dataclass(frozen=True)
class Backoff:
    """Waits that double from ``first`` seconds after each failure in a row, up to ``most``."""

    first: float
    most: float

    def wait(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row (1 for the first)."""
        exponent = min(max(failures - 1, 0), 32)
        return min(self.first * 2**exponent, self.most)


def free_bytes(folder: Path) -> int:
    """Bytes free for this process on the disk that holds ``folder``."""
    return shutil.disk_usage(folder).free


def _in_one_line(error: BaseException) -> str:
    """A short description of an error for a log line: no traceback, no SQL statement."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    cause = getattr(error, "orig", None)  # a database driver's own error under SQLAlchemy's
    text = str(cause if cause is not None else error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(cause or error).__name__}: {first[:200]}" if first else type(error).__name__


def looks_like_mp4(path: Path) -> bool:
    """True when the file starts with an MP4 ``ftyp`` box and is not trivially small."""
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
        size = path.stat().st_size
    except OSError:
        return False
    return size >= MIN_VIDEO_BYTES and head[4:8] == b"ftyp"


def video_relative_path(job_id: int) -> str:
    """Where a job's video lives, relative to the data folder."""
    return f"{VIDEOS_FOLDER}/{job_id}.mp4"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _ended_without_video(
    snapshot: TaskSnapshot,
    fields: dict[str, Any],
    *,
    began: datetime,
    now: datetime,
    limits: Limits,
) -> _Outcome:
    """A task the gateway reports FAILED or CANCELED: its code, message and a plain explanation."""
    if snapshot.status is TaskStatus.FAILED:
        return _Outcome(
            {
                **fields,
                "error_code": snapshot.error_code,
                "error_message": snapshot.error_message,
                "explanation": explain_failure(
                    snapshot.error_code, snapshot.error_message, limits=limits
                ),
                "finished_at": _within(snapshot.end_time, began, now),
            },
            status=JobStatus.FAILED,
        )
    return _Outcome(
        {
            **fields,
            "error_code": snapshot.error_code or "CANCELED",
            "error_message": snapshot.error_message,
            "explanation": explain_canceled(),
            "finished_at": now,
        },
        status=JobStatus.CANCELED,
    )


def _within(moment: datetime | None, earliest: datetime | None, latest: datetime) -> datetime:
    """An upstream time clamped into what our own clock saw, so skew never inverts a timeline."""
    if moment is None:
        return latest
    if earliest is not None and moment < earliest:
        return earliest
    return min(moment, latest)


@dataclass(frozen=True)
class _Outcome:
    """What one step decided: finish the job (status set) or release it until ``next_poll_at``."""

    fields: dict[str, Any]
    status: JobStatus | None = None
    next_poll_at: datetime | None = None
    failed: bool = False  # it could not do its work (a full disk): the next wait is longer


class _LeaseKeeper:
    """Renews a job's lease in the background while a long step (a download) runs.

    Renewal is a compare-and-set in the store, every third of a lease. When it finds that the
    lease is gone (another watcher claimed the job), ``check`` raises ``LeaseLost`` at the next
    call, so the download stops and its result is never recorded. A store that fails to answer
    is retried at the next renewal; if it stays down, the lease runs out and so does the claim.
    """

    def __init__(self, watcher: Watcher, job: Job) -> None:
        self._store = watcher.store
        self._owner = watcher.owner
        self._clock = watcher._clock
        self._job_id = job.id
        self._lease_seconds = watcher.policy.lease_seconds
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, name=f"wan-studio-lease-{job.id}", daemon=True
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()

    def check(self) -> None:
        """Raise ``LeaseLost`` once another watcher holds the job."""
        if self._lost.is_set():
            raise LeaseLost(f"job {self._job_id}: the lease was taken over")

    def _keep(self) -> None:
        while not self._done.wait(self._lease_seconds / 3):
            try:
                renewed = self._store.renew_lease(
                    self._job_id,
                    self._owner,
                    now=self._clock(),
                    lease_seconds=self._lease_seconds,
                )
            except Exception as error:
                logger.warning(
                    "job %s: could not renew its lease (%s); trying again",
                    self._job_id,
                    _in_one_line(error),
                )
                continue
            if renewed is None:
                self._lost.set()
                return


class Watcher:
    """Polls in-flight jobs on a schedule, under leases and a shared request budget.

    Parameters
    ----------
    store
        The job store.
    home
        The data folder; videos go to ``home/videos/<job id>.mp4``.
    catalog
        Prices, for the cost of a finished video.
    client_for_key
        The gateway client for a key fingerprint, or None if this process does not hold that key.
    held_keys
        The fingerprints whose jobs this watcher may work on, asked afresh on every round (keys
        typed in Settings arrive while it runs).
    policy
        Timing knobs.
    estimator
        Expected running times (the same estimate the job cards show).
    demo_policy
        The timing knobs for demo jobs, whose gateway runs at its own speed (``policy`` if None).
    budget
        The process's request budget, shared with anything else that calls the gateway.
    workers
        How many jobs are worked on at once (a download does not hold up the polls); enough that
        ``workers / round-trip time`` exceeds the budget's rate.
    disk_free
        Bytes free on the disk of a folder; a download stops as "disk full" when fewer than
        ``DISK_RESERVE_BYTES`` remain.
    failure_retry
        The waits before working again on a job that failed on this side: a video that could
        not be written (a full disk), an unexpected error.
    bucket
        Where finished videos go when object storage is configured (None: the data folder);
        each is downloaded to the data folder, written to the bucket once, then removed here.
    """

    def __init__(
        self,
        *,
        store: JobStore,
        home: Path,
        catalog: Catalog,
        client_for_key: ClientForKey,
        held_keys: HeldKeys,
        policy: PollPolicy,
        estimator: RunTimeEstimator,
        budget: RequestBudget,
        demo_policy: PollPolicy | None = None,
        workers: int = DEFAULT_WORKERS,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = _utcnow,
        disk_free: FreeBytes = free_bytes,
        failure_retry: Backoff = Backoff(FAILURE_RETRY_FIRST_SECONDS, FAILURE_RETRY_MOST_SECONDS),
        bucket: Bucket | None = None,
    ) -> None:
        self.store = store
        self.home = Path(home)
        self.catalog = catalog
        self.policy = policy
        self._estimator = estimator
        self._demo_policy = demo_policy or policy
        self.budget = budget
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._client_for_key = client_for_key
        self._held_keys = held_keys
        self._workers = workers
        self._rng = rng or random.Random()
        self._clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = 0
        self._active_lock = threading.Lock()
        self._disk_free = disk_free
        self._failure_retry = failure_retry
        self._bucket = bucket
        self._store_retry = Backoff(policy.idle_wait, STORE_RETRY_MOST_SECONDS)
        # Failures in a row of each job in hand (a full disk, an unexpected error), for backoff.
        self._failures: dict[int, int] = {}
        # Where watching started for each running job in hand (``watch_from``, running seconds):
        # the expectation moves with the gateway's pace, and a job that has reached a window it
        # was once given must not be sent back to sleep. Lost on a restart, which costs at most
        # one sleep.
        self._watching_from: dict[int, float] = {}
        self._last_sweep: datetime | None = None
        # Jobs whose video this watcher is downloading now: their partial files are alive.
        self._downloading: set[int] = set()
        self._downloading_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Watcher(owner={self.owner!r}, running={self.running})"

    # -- running ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Run the watcher in a daemon thread until ``stop``."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="wan-studio-watcher", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Give back every lease at once, then wait for the work in hand to end.

        Another watcher may claim the jobs the moment this returns or even before: a poll or a
        download still under way here cannot record its result, as this watcher no longer holds
        the lease (the next watcher asks again; asking is harmless and a video is billed once).
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._release_every_lease()
            self._thread.join(timeout)
            self._thread = None
            # A claim that raced with the stop signal is given back too.
            self._release_every_lease()

    def _release_every_lease(self) -> None:
        try:
            released = self.store.release_all(self.owner)
        except Exception as error:
            logger.warning(
                "could not give back the leases of this watcher (%s); they expire",
                _in_one_line(error),
            )
            return
        if released:
            logger.info("gave back %d job lease(s) on stopping", released)

    def wake(self) -> None:
        """Look for due jobs now (a job was just submitted or rechecked)."""
        self._wake.set()

    def run_once(self) -> int:
        """Claim the jobs due now and work on each in this thread; return how many.

        For the command line and tests; the thread started by ``start`` does the same
        continuously, several jobs at a time.
        """
        jobs = sorted(self._claim(self._workers), key=self._urgency)
        for job in jobs:
            self._handle(job)
        return len(jobs)

    def run_until_idle(self, *, timeout: float | None = None) -> bool:
        """Work in this thread until no in-flight job of a held key remains.

        Returns
        -------
        bool
            True when idle, False when ``timeout`` seconds passed first or ``stop`` was called.
        """
        ends = None if timeout is None else time.monotonic() + timeout
        while not self._stop.is_set():
            held = set(self._held_keys())
            if not any(job.key_fingerprint in held for job in self.store.in_flight_jobs()):
                return True
            if ends is not None and time.monotonic() >= ends:
                return False
            if self.run_once() == 0:
                self._stop.wait(self._idle_wait(held))
        return False

    def _run(self) -> None:
        try:
            self.remove_stale_part_files()
        except Exception as error:
            logger.warning("could not look for abandoned partial videos: %s", _in_one_line(error))
        # Claimed jobs no worker has taken yet, by id, and a heap of (urgency, id) over them.
        waiting: dict[int, Job] = {}
        most_urgent: list[tuple[float, int]] = []
        store_failures = 0
        with ThreadPoolExecutor(self._workers, thread_name_prefix="wan-studio-job") as pool:
            try:
                while not self._stop.is_set():
                    try:
                        wait = self._dispatch_round(waiting, most_urgent, pool)
                        store_failures = 0
                    except Exception as error:
                        # Most likely the database is locked or down: one line, then wait longer
                        # each time it happens again, so a long outage neither spins nor floods.
                        store_failures += 1
                        wait = self._store_retry.wait(store_failures)
                        logger.warning(
                            "the watcher could not use the job store (%s); trying again in %g s",
                            _in_one_line(error),
                            wait,
                        )
                    self._wake.wait(wait)
                    self._wake.clear()
            finally:
                for job in waiting.values():
                    self._put_back(job)

    def _dispatch_round(
        self,
        waiting: dict[int, Job],
        most_urgent: list[tuple[float, int]],
        pool: ThreadPoolExecutor,
    ) -> float:
        """Claim due jobs, give the most urgent to free workers; return how long to wait then."""
        for job in self._claim(self._queue_room(len(waiting))):
            if job.id not in waiting:
                heapq.heappush(most_urgent, (self._urgency(job), job.id))
            waiting[job.id] = job  # a claim again renews the lease
        while most_urgent and self._active < self._workers:
            _, job_id = heapq.heappop(most_urgent)
            job = waiting.pop(job_id)
            if job.lease_until is not None and job.lease_until <= self._clock():
                continue  # its lease ran out while it waited: claim it afresh
            with self._active_lock:
                self._active += 1
            pool.submit(self._handle_in_pool, job)
        if waiting or self._active >= self._workers:
            # Every worker is busy: a finishing one sets the wake event.
            return self.policy.idle_wait
        return max(self._idle_wait(set(self._held_keys())), _MIN_IDLE_WAIT)

    def _queue_room(self, waiting: int) -> int:
        """How many more jobs to claim now, besides those waiting for a worker or in hand."""
        # Enough to choose the most urgent, never more than the budget serves well within a lease.
        most = int(self.budget.rate_per_second * self.policy.lease_seconds * _QUEUE_LEASE_SHARE)
        return max(max(most, self._workers) - waiting - self._active, 0)

    def _put_back(self, job: Job) -> None:
        try:
            self.store.release(job.id, self.owner, next_poll_at=job.next_poll_at)
        except Exception as error:
            logger.warning(
                "job %s: could not give its lease back (%s); it expires",
                job.id,
                _in_one_line(error),
            )

    def _urgency(self, job: Job) -> float:
        """How near the job is to its expected finish (see ``finish_urgency``); smallest first."""
        now = self._clock()
        if job.started_at is not None:
            running = (now - job.started_at).total_seconds()
        else:
            due = job.next_poll_at or now
            running = max((now - due).total_seconds(), 0.0)
        return finish_urgency(
            self._timing(job), running_seconds=running, expected=self._expected(job)
        )

    def _idle_wait(self, held: Collection[str | None]) -> float:
        due = self.store.next_due_at(key_fingerprints=held)
        if due is None:
            return self.policy.idle_wait
        seconds = (due - self._clock()).total_seconds()
        return min(max(seconds, 0.0), self.policy.idle_wait)

    def _claim(self, limit: int) -> list[Job]:
        self._reject_never_sent()
        if limit <= 0:
            return []
        held = set(self._held_keys())
        if not held:
            return []
        return self.store.claim_due(
            self.owner,
            now=self._clock(),
            lease_seconds=self.policy.lease_seconds,
            limit=limit,
            key_fingerprints=held,
        )

    def _forget(self, job_id: int) -> None:
        self._watching_from.pop(job_id, None)
        self._failures.pop(job_id, None)

    def _forget_ended_jobs(self) -> None:
        """Drop what is remembered of jobs that ended elsewhere (another watcher, a dismissal).

        Only this watcher's own outcomes clear those notes as they happen; without this sweep,
        every job that another worker finished would stay in them for good.
        """
        remembered = set(self._watching_from) | set(self._failures)
        if not remembered:
            return
        try:
            alive = self.store.in_flight_among(remembered)
        except SQLAlchemyError:
            return  # the next sweep tries again; the notes are small
        for job_id in remembered - alive:
            self._forget(job_id)

    def _reject_never_sent(self) -> None:
        """Say "not sent" for jobs whose sender stopped before their turn, whoever's key they had.

        At most once per ``_NEVER_SENT_SWEEP``: each look takes the store's write lock.
        """
        now = self._clock()
        if self._last_sweep is not None and now - self._last_sweep < _NEVER_SENT_SWEEP:
            return
        self._last_sweep = now
        self._forget_ended_jobs()
        try:
            swept = self.store.reject_never_sent(
                written_before=now - timedelta(seconds=UNSENT_GRACE_SECONDS),
                error_code="NotSent",
                explanation=explain_never_sent(),
                finished_at=now,
                next_poll_at=None,
                lease_owner=None,
                lease_until=None,
            )
        except SQLAlchemyError:
            logger.warning("could not look for jobs that were never sent", exc_info=True)
            return
        for job in swept:
            logger.info("job %s: its sender stopped before sending it; marked not sent", job.id)

    def _handle_in_pool(self, job: Job) -> None:
        try:
            self._handle(job)
        except Exception as error:
            # Most likely the store is unreachable; the lease expires and the job is retried.
            logger.warning(
                "job %s: could not record the result of a check (%s); its lease expires and it "
                "is checked again",
                job.id,
                _in_one_line(error),
            )
        finally:
            with self._active_lock:
                self._active -= 1
            self._wake.set()

    # -- one job ---------------------------------------------------------------------------

    def _handle(self, job: Job) -> None:
        try:
            outcome = self._step(job)
        except LeaseLost:
            logger.warning("job %s: another watcher took it over; leaving it to that one", job.id)
            self._forget(job.id)
            return
        except Exception as error:
            failures = self._failed(job.id)
            wait = self._failure_retry.wait(failures)
            if failures == 1 and not isinstance(error, SQLAlchemyError):
                logger.exception("job %s: unexpected error while checking it", job.id)
            logger.warning(
                "job %s: could not check it (%s); trying again in %g s",
                job.id,
                _in_one_line(error),
                wait,
            )
            outcome = _Outcome(
                {}, next_poll_at=self._clock() + timedelta(seconds=wait), failed=True
            )
        else:
            if outcome is None or not outcome.failed:
                self._failures.pop(job.id, None)
        if outcome is None:
            return
        if outcome.status is not None:
            self._watching_from.pop(job.id, None)
            # The final status wins over any progress status noted on the way.
            fields = {name: value for name, value in outcome.fields.items() if name != "status"}
            self.store.finish_with_lease(job.id, self.owner, status=outcome.status, **fields)
        else:
            self.store.release(
                job.id, self.owner, next_poll_at=outcome.next_poll_at, **outcome.fields
            )

    def _step(self, job: Job) -> _Outcome | None:
        now = self._clock()
        if job.status is JobStatus.SUBMITTING and job.submitted_at is None:
            # Written, and its sender stopped before it started sending (a batch's later clip):
            # certainly never sent, so nothing is billed and it can simply be sent again.
            self.store.transition(
                job.id,
                expected=(JobStatus.SUBMITTING,),
                status=JobStatus.REJECTED,
                unsent_only=True,
                error_code="NotSent",
                explanation=explain_never_sent(),
                finished_at=now,
                next_poll_at=None,
                lease_owner=None,
                lease_until=None,
            )
            return None
        if job.status is JobStatus.SUBMITTING:
            # Its sender stopped (or hung) before the gateway answered. Never resend on our own:
            # a compare-and-set, so a late answer that already queued the job wins.
            self.store.transition(
                job.id,
                expected=(JobStatus.SUBMITTING,),
                status=JobStatus.UNCERTAIN,
                explanation=explain_uncertain(None),
                next_poll_at=None,
                lease_owner=None,
                lease_until=None,
            )
            return None
        client = self._client_for_key(job.key_fingerprint)
        if client is None or job.task_id is None:
            # Not ours to poll after all (the key was forgotten): leave it due for whoever has it.
            return _Outcome({}, next_poll_at=job.next_poll_at or now)
        if not self.budget.acquire(stop=self._stop):
            return _Outcome({}, next_poll_at=now)

        polls = job.poll_count + 1
        try:
            snapshot = client.get_task(job.task_id, polling_url=job.polling_url)
        except RateLimitError as error:
            wait = error.retry_after if error.retry_after is not None else self.policy.first_delay
            # The whole account is throttled, not this job: every request of the process waits.
            self.budget.hold(min(wait, self.policy.retry_after_cap))
            return self._unless_past_deadline(job, now, {"poll_count": polls}, retry_after=wait)
        except GatewayError as error:
            logger.warning("job %s: status check failed: %s", job.id, error.message)
            fields = {
                "poll_count": polls,
                "explanation": f"The last status check failed ({error.message}) "
                "Wan Studio keeps trying.",
            }
            return self._unless_past_deadline(job, now, fields)
        # The gateway's times are bounded by when its answer came, not by when this step began: a
        # short job may start and end while the step waits for the budget and the answer.
        answered = self._clock()
        return self._apply(job, snapshot, answered, polls)

    def _apply(self, job: Job, snapshot: TaskSnapshot, now: datetime, polls: int) -> _Outcome:
        status = snapshot.status
        fields: dict[str, Any] = {"poll_count": polls, "explanation": None}
        if status is not TaskStatus.UNKNOWN:
            fields["unknown_since"] = None
        if snapshot.actual_prompt:
            fields["actual_prompt"] = snapshot.actual_prompt
        sent = job.submitted_at or job.created_at
        if job.started_at is None and snapshot.scheduled_time is not None:
            # The gateway's own start time, in any snapshot that has it (a short job may go from
            # queued to done between two polls): the running-time history is built from it.
            fields["started_at"] = _within(snapshot.scheduled_time, sent, now)
        began = fields.get("started_at") or job.started_at or sent

        if status is TaskStatus.PENDING:
            fields["status"] = JobStatus.QUEUED
        elif status in (TaskStatus.RUNNING, TaskStatus.SUSPENDED):
            fields["status"] = JobStatus.RUNNING
            # A contract without scheduled_time: it started by now at the latest.
            fields.setdefault("started_at", job.started_at or now)
        elif status is TaskStatus.SUCCEEDED:
            finished = _within(snapshot.end_time, began, now)
            return self._download(job, snapshot, {**fields, "finished_at": finished})
        elif status in (TaskStatus.FAILED, TaskStatus.CANCELED):
            return _ended_without_video(
                snapshot, fields, began=began, now=now, limits=self.catalog.limits
            )
        else:
            return self._unknown(job, now, fields)
        return self._unless_past_deadline(job, now, fields)

    def _unknown(self, job: Job, now: datetime, fields: dict[str, Any]) -> _Outcome:
        since = job.unknown_since or now
        verdict = unknown_verdict(
            self.policy, submitted_at=job.submitted_at, unknown_since=since, now=now
        )
        if verdict is None:
            fields["unknown_since"] = since
            return self._unless_past_deadline(
                job, now, fields, delay=self.policy.unknown_recheck_delay
            )
        if verdict == UNKNOWN_EXPIRED:
            explanation = explain_lost_expired()
        else:
            explanation = explain_lost(
                polls=self.policy.unknown_confirm_polls,
                seconds=(now - since).total_seconds(),
            )
        return _Outcome(
            {
                **fields,
                "unknown_since": since,
                "error_code": "UNKNOWN",
                "explanation": explanation,
                "finished_at": now,
            },
            status=JobStatus.LOST,
        )

    def _download(self, job: Job, snapshot: TaskSnapshot, fields: dict[str, Any]) -> _Outcome:
        now = self._clock()
        # The gateway made the video, so it is billed whatever happens to the download: the cost
        # is recorded now, once, and kept if the link expires or the disk is full.
        usage = snapshot.usage.billed_seconds if snapshot.usage is not None else None
        billed = usage if usage is not None and usage > 0 else Decimal(job.duration)
        fields["billed_seconds"] = int(billed.to_integral_value(rounding=ROUND_HALF_UP))
        fields["cost_usd"] = cost_for_usage(self.catalog.model(job.model), job.resolution, billed)
        if not snapshot.video_url:
            fields["explanation"] = explain_download_problem("the gateway gave no video link")
            return self._unless_past_deadline(job, now, fields)
        self.store.transition(
            job.id,
            expected=(JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DOWNLOADING),
            status=JobStatus.DOWNLOADING,
            finished_at=fields["finished_at"],
            video_url=snapshot.video_url,
            actual_prompt=snapshot.actual_prompt or job.actual_prompt,
            billed_seconds=fields["billed_seconds"],
            cost_usd=fields["cost_usd"],
        )
        fields["status"] = JobStatus.DOWNLOADING
        fields["video_url"] = snapshot.video_url
        relative = video_relative_path(job.id)
        if self._bucket is not None:
            try:
                if self._bucket.has(relative):
                    # Saved by a watcher whose lease ran out before it could record it: the job
                    # ends on that copy, with nothing downloaded or written again.
                    return _Outcome({**fields, "video_path": relative}, status=JobStatus.SUCCEEDED)
            except OSError as error:
                return self._not_written(job, fields, error)
        if not self.budget.acquire(stop=self._stop):
            return _Outcome(fields, next_poll_at=now)
        destination = self.home / relative
        try:
            self._save_video(job, snapshot.video_url, destination)
        except LinkExpiredError:
            return _Outcome(
                {**fields, "error_code": "LinkExpired", "explanation": explain_expired()},
                status=JobStatus.EXPIRED,
            )
        except GatewayError as error:
            logger.warning("job %s: download failed: %s", job.id, error.message)
            fields["explanation"] = explain_download_problem(error)
            return self._unless_past_deadline(job, now, fields)
        except OSError as error:
            return self._not_written(job, fields, error)
        if not looks_like_mp4(destination):
            destination.unlink(missing_ok=True)
            fields["explanation"] = explain_download_problem("the file was not an MP4 video")
            return self._unless_past_deadline(job, now, fields)
        if self._bucket is not None:
            try:
                video = destination.read_bytes()
            except OSError as error:
                with contextlib.suppress(OSError):
                    destination.unlink(missing_ok=True)
                return self._not_written(job, fields, error)
            # Off the disk before the upload starts, so that a worker killed while uploading
            # leaves no copy behind (the job's next watcher downloads the video again). A copy
            # that cannot be removed is only a leftover: the upload goes ahead.
            try:
                destination.unlink(missing_ok=True)
            except OSError as error:
                logger.warning(
                    "job %s: could not remove the local copy of its video (%s)",
                    job.id,
                    _in_one_line(error),
                )
            try:
                # Written once under the job's name: a second writer of the same job finds it
                # taken and changes nothing, so the bucket never holds two copies.
                self._bucket.put_once(relative, video, content_type="video/mp4")
            except OSError as error:
                return self._not_written(job, fields, error)
        return _Outcome({**fields, "video_path": relative}, status=JobStatus.SUCCEEDED)

    def _save_video(self, job: Job, url: str, destination: Path) -> None:
        """Download under a lease kept alive throughout, stopping early if the disk fills up."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        self._check_room(destination.parent)
        client = self._client_for_key(job.key_fingerprint)
        assert client is not None  # it just answered the poll

        with self._downloading_lock:
            self._downloading.add(job.id)
        try:
            with _LeaseKeeper(self, job) as lease:

                def progress(_written: int) -> None:
                    lease.check()
                    self._check_room(destination.parent)

                client.download(url, destination, progress=progress)
        finally:
            with self._downloading_lock:
                self._downloading.discard(job.id)

    def _check_room(self, folder: Path) -> None:
        if self._disk_free(folder) < DISK_RESERVE_BYTES:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))

    def _not_written(self, job: Job, fields: dict[str, Any], error: OSError) -> _Outcome:
        """A video that could not be written: say so, and try again later while the link lasts.

        The gateway's deadline no longer applies (the video is made); the link's does, and a
        download after it answers "expired".
        """
        failures = self._failed(job.id)
        wait = self._failure_retry.wait(failures)
        if error.errno in _DISK_FULL_ERRNOS:
            logger.warning(
                "job %s: the disk is full, so the video was not saved; trying again in %g s",
                job.id,
                wait,
            )
            explanation = explain_disk_full()
        else:
            logger.warning(
                "job %s: the video could not be written (%s); trying again in %g s",
                job.id,
                _in_one_line(error),
                wait,
            )
            explanation = explain_download_problem(
                f"the videos folder could not be written: {_in_one_line(error)}"
            )
        return _Outcome(
            {**fields, "explanation": explanation},
            next_poll_at=self._clock() + timedelta(seconds=wait),
            failed=True,
        )

    def _failed(self, job_id: int) -> int:
        """Count one more failure in a row of a job and return the count."""
        failures = self._failures.get(job_id, 0) + 1
        self._failures[job_id] = failures
        return failures

    # -- partial downloads -----------------------------------------------------------------

    def remove_stale_part_files(self) -> int:
        """Delete the partial videos that no download will finish; return how many.

        A killed download leaves its ``.part`` file behind. Several processes may share the data
        folder, so a file is kept while a download may still be writing it: one of this watcher,
        or one of another watcher holding a live lease on the job and writing within a lease.
        Files untouched for ``STALE_PART_SECONDS``, or of jobs no longer in flight, go.
        """
        folder = self.home / VIDEOS_FOLDER
        try:
            names = [entry.name for entry in os.scandir(folder)]
        except FileNotFoundError:
            return 0
        now = self._clock()
        removed = 0
        for name in names:
            match = _PART_FILE.match(name)
            if match is None:
                continue
            job_id = int(match.group(1))
            with self._downloading_lock:
                if job_id in self._downloading:
                    continue
            path = folder / name
            try:
                idle = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if idle < STALE_PART_SECONDS:
                job = self.store.get(job_id)
                if job is not None and job.in_flight:
                    leased = job.lease_until is not None and job.lease_until > now
                    if leased or idle < self.policy.lease_seconds:
                        continue
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            logger.info("removed %d abandoned partial video file(s)", removed)
        return removed

    # -- timing ----------------------------------------------------------------------------

    def _unless_past_deadline(
        self,
        job: Job,
        now: datetime,
        fields: dict[str, Any],
        *,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> _Outcome:
        if job.deadline_at is not None and now >= job.deadline_at:
            watched = (job.deadline_at - (job.submitted_at or job.created_at)).total_seconds()
            if fields.get("cost_usd") is not None:
                # The gateway made it; only saving it failed until the deadline.
                explanation = explain_not_saved(watched / 60)
            else:
                explanation = explain_timed_out(watched / 60)
            return _Outcome({**fields, "explanation": explanation}, status=JobStatus.TIMED_OUT)
        if delay is None:
            started_at = fields.get("started_at", job.started_at)
            later = self._later(job, started_at=started_at, retry_after=retry_after)
            return _Outcome(fields, next_poll_at=later)
        return _Outcome(fields, next_poll_at=now + timedelta(seconds=delay))

    def _later(
        self,
        job: Job,
        *,
        started_at: datetime | None = None,
        retry_after: float | None = None,
    ) -> datetime:
        now = self._clock()
        started_at = started_at or job.started_at
        policy, expected = self._timing(job), self._expected(job)
        running = None if started_at is None else (now - started_at).total_seconds()
        watching_from = self._watching_from.get(job.id)
        delay = next_poll_delay(
            policy,
            elapsed_seconds=(now - (job.submitted_at or job.created_at)).total_seconds(),
            running_seconds=running,
            expected=expected,
            retry_after=retry_after,
            watching_from=watching_from,
            rng=self._rng,
        )
        if running is not None and expected.trusted:
            start = watch_from(policy, expected)
            self._watching_from[job.id] = (
                start if watching_from is None else min(start, watching_from)
            )
        return now + timedelta(seconds=delay)

    def _timing(self, job: Job) -> PollPolicy:
        """The timing knobs for this job's gateway."""
        return self._demo_policy if job.is_demo else self.policy

    def _expected(self, job: Job) -> ExpectedRunTime:
        """The running time of similar past jobs on the same gateway, or its prior."""
        return self._estimator.running_time(JobClass.of(job))
