"""When to ask the gateway about a job again, and how many requests the process may make.

Pure arithmetic plus one small thread-safe token bucket, so the watcher's timing can be tested
without a clock. Real jobs take 1-10 minutes: the schedule starts quick (fast failures and short
jobs are noticed at once), backs off, and polls tightly again around the finish time that similar
past jobs suggest.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

UNKNOWN_EXPIRED = "expired"
UNKNOWN_CONFIRMED = "confirmed"


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the watcher's timing, in seconds unless the name says otherwise."""

    first_delay: float = 2.0  # first poll after the submit answer
    backoff: float = 1.5  # each poll waits this much longer than the one before
    max_delay: float = 20.0  # ... up to this
    min_delay: float = 0.5  # never closer than this, whatever else applies
    near_finish_delay: float = 3.0  # the interval while a finish is expected
    near_finish_lead_fraction: float = 0.25  # start tightening this share of the median early
    near_finish_min_lead: float = 5.0  # ... and at least this early
    min_expected_samples: int = 3  # past jobs needed before their times are trusted
    jitter: float = 0.15  # ± share of every delay, so that jobs do not poll in lockstep
    retry_after_cap: float = 300.0  # longest Retry-After honoured as given
    unknown_confirm_polls: int = 3  # UNKNOWN answers needed before a young task counts as lost
    unknown_confirm_seconds: float = 10.0  # ... spread over at least this long
    task_lifetime: float = 24 * 3600.0  # upstream forgets task ids after this
    deadline: float = 30 * 60.0  # stop watching (timed out) this long after the submit
    lease_seconds: float = 60.0  # how long one watcher owns a job it is working on
    submit_grace: float = 120.0  # a submit unanswered this long means its sender died
    idle_wait: float = 1.0  # the watcher's longest sleep when nothing is due

    def scaled(self, factor: float) -> PollPolicy:
        """Return this policy with every duration divided by ``factor`` (for tests and benches).

        Parameters
        ----------
        factor
            How much faster time runs, e.g. the simulator's ``speed``.

        Returns
        -------
        PollPolicy
            The same ratios, counts and jitter; shorter times.
        """
        unitless = {
            "backoff",
            "near_finish_lead_fraction",
            "min_expected_samples",
            "jitter",
            "unknown_confirm_polls",
        }
        changes = {
            f.name: getattr(self, f.name) / factor for f in fields(self) if f.name not in unitless
        }
        return replace(self, **changes)

    @property
    def unknown_recheck_delay(self) -> float:
        """The interval between polls while an UNKNOWN answer is being confirmed."""
        return self.unknown_confirm_seconds / max(self.unknown_confirm_polls - 1, 1)


@dataclass(frozen=True)
class ExpectedRunTime:
    """How long similar past jobs took from submit to finish."""

    median_seconds: float
    p90_seconds: float


def tightening_window(policy: PollPolicy, expected: ExpectedRunTime) -> tuple[float, float]:
    """Return when (seconds after the submit) to poll at ``near_finish_delay``.

    Parameters
    ----------
    policy
        The timing knobs.
    expected
        Run times of similar past jobs.

    Returns
    -------
    tuple of float
        ``(start, end)``: from a lead before the median until just past the 90th percentile.
    """
    median = max(expected.median_seconds, 0.0)
    lead = max(policy.near_finish_min_lead, policy.near_finish_lead_fraction * median)
    start = max(median - lead, 0.0)
    end = max(expected.p90_seconds, median) + policy.near_finish_delay
    return start, end


def next_poll_delay(
    policy: PollPolicy,
    *,
    polls_done: int,
    elapsed_seconds: float,
    expected: ExpectedRunTime | None = None,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Return how many seconds to wait before the next poll of one job.

    Parameters
    ----------
    policy
        The timing knobs.
    polls_done
        Polls already made for this job (0 right after the submit).
    elapsed_seconds
        Seconds since the job was submitted.
    expected
        Run times of similar past jobs, or None when there are too few.
    retry_after
        The gateway's Retry-After in seconds, if it asked us to slow down.
    rng
        Source of jitter (a seeded ``random.Random`` in tests).

    Returns
    -------
    float
        The delay: exponential backoff from ``first_delay`` to ``max_delay``, tightened inside the
        expected-finish window (and shortened so as not to overshoot its start), jittered, never
        below ``min_delay`` and never before a Retry-After.
    """
    rng = rng or random
    delay = min(policy.first_delay * policy.backoff ** max(polls_done, 0), policy.max_delay)
    if expected is not None:
        start, end = tightening_window(policy, expected)
        if start <= elapsed_seconds < end:
            delay = min(delay, policy.near_finish_delay)
        elif elapsed_seconds < start:
            delay = min(delay, start - elapsed_seconds)
    delay *= 1 + rng.uniform(-policy.jitter, policy.jitter)
    delay = max(delay, policy.min_delay)
    if retry_after is not None and retry_after > 0:
        # Honour it in full, and spread the herd a little past it rather than before it.
        wait = min(retry_after, policy.retry_after_cap)
        delay = max(delay, wait * (1 + rng.uniform(0, policy.jitter)))
    return delay


def unknown_verdict(
    policy: PollPolicy,
    *,
    submitted_at: datetime | None,
    unknown_since: datetime,
    now: datetime,
) -> str | None:
    """Decide whether an UNKNOWN answer is final (GATEWAY.md §3: suspicious right after a submit).

    Parameters
    ----------
    policy
        The timing knobs.
    submitted_at
        When the task was submitted (None if never recorded).
    unknown_since
        When UNKNOWN was first seen in the current run of UNKNOWN answers.
    now
        The time of the current UNKNOWN answer.

    Returns
    -------
    str or None
        ``UNKNOWN_EXPIRED`` when the task is older than the gateway keeps tasks,
        ``UNKNOWN_CONFIRMED`` when UNKNOWN has persisted for ``unknown_confirm_seconds`` (the
        watcher polls at ``unknown_recheck_delay`` meanwhile, so that spans the required polls),
        None to keep checking.
    """
    if submitted_at is not None and now - submitted_at >= timedelta(seconds=policy.task_lifetime):
        return UNKNOWN_EXPIRED
    if now - unknown_since >= timedelta(seconds=policy.unknown_confirm_seconds):
        return UNKNOWN_CONFIRMED
    return None


class RequestBudget:
    """A token bucket shared by every poll and download of one process.

    With the default burst of one, requests are spaced at least ``1 / rate`` seconds apart, so no
    second holds more than ``rate`` of them. ``hold`` stops all requests for a while (a 429 answer
    means the whole account is throttled, not one job).
    """

    def __init__(
        self,
        rate_per_second: float = 10.0,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("the request budget needs a positive rate and a burst of at least 1")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = clock()
        self._held_until = self._updated
        self._granted = 0

    @property
    def granted(self) -> int:
        """How many requests the budget has allowed so far."""
        return self._granted

    def try_acquire(self) -> float:
        """Take a token if one is free now.

        Returns
        -------
        float
            0.0 when a token was taken; otherwise the seconds to wait before trying again.
        """
        with self._lock:
            now = self._clock()
            self._tokens = min(
                self.burst, self._tokens + (now - self._updated) * self.rate_per_second
            )
            self._updated = now
            if now < self._held_until:
                return self._held_until - now
            # A hair of tolerance: refills are float sums, and 0.999999 tokens is a whole one.
            if self._tokens >= 1 - 1e-9:
                self._tokens = max(self._tokens - 1, 0.0)
                self._granted += 1
                return 0.0
            return (1 - self._tokens) / self.rate_per_second

    def acquire(self, *, stop: threading.Event | None = None) -> bool:
        """Block until a token is taken; return False instead if ``stop`` is set meanwhile."""
        while True:
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if stop is None:
                time.sleep(wait)
            elif stop.wait(wait):
                return False

    def hold(self, seconds: float) -> None:
        """Allow no request for the next ``seconds`` (longer holds already in place win)."""
        with self._lock:
            self._held_until = max(self._held_until, self._clock() + seconds)


_shared_budgets: dict[float, RequestBudget] = {}
_shared_budgets_lock = threading.Lock()


def shared_budget(rate_per_second: float) -> RequestBudget:
    """The one budget of this process for a given rate, shared by every Studio and watcher in it.

    Parameters
    ----------
    rate_per_second
        Requests allowed per second (the ``WAN_STUDIO_REQUEST_BUDGET`` setting).

    Returns
    -------
    RequestBudget
        The same object on every call with the same rate.
    """
    with _shared_budgets_lock:
        budget = _shared_budgets.get(rate_per_second)
        if budget is None:
            budget = _shared_budgets[rate_per_second] = RequestBudget(rate_per_second)
        return budget
