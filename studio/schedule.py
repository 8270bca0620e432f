"""When to ask the gateway about a job again, and how many requests the process may make.

Pure arithmetic plus one small thread-safe token bucket, so the watcher's timing can be tested
without a clock.

How the schedule works: real jobs take 1-10 minutes, but the model's running time for one (model,
resolution, duration) is nearly constant (a fixed number of diffusion steps on the same GPUs); what
varies is the wait in the gateway's queue. Every snapshot from RUNNING on carries the gateway's
``scheduled_time``, so the moment a job started running is known exactly however late it is seen.
So the watcher polls sparsely while a job is queued, then sleeps until shortly before the expected
finish (its start plus the running time of similar past jobs), polls densely in a narrow window
around it, and backs off gradually if the job is late. Without enough history it falls back to a
prior (``PRIOR_*`` below) and to waits capped at a fraction of the time elapsed, so that a job that
ends far earlier than the prior says is not seen very late.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from types import MappingProxyType

UNKNOWN_EXPIRED = "expired"
UNKNOWN_CONFIRMED = "confirmed"

# The prior for running time, before this app has timed enough similar jobs itself. The catalog has
# no timing data, so this is a guess from the gateway's documentation (jobs take 1-5 minutes, now
# and then up to 10; flash is about twice as fast as plus): ``PollPolicy.prior_running_seconds``
# for a plus model at 720P and 5 s, times these factors, in proportion to the duration.
PRIOR_FAST_FACTOR = 0.5  # flash and turbo models
PRIOR_RESOLUTION_FACTOR = MappingProxyType({"480P": 0.6, "720P": 1.0, "1080P": 1.6})
PRIOR_SPREAD = 1.0  # the prior's 90th percentile is this share above its median


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the watcher's timing, in seconds unless the name says otherwise."""

    first_delay: float = 2.0  # first poll after the submit answer (refusals show at once)
    min_delay: float = 0.5  # never closer than this, whatever else applies
    max_delay: float = 30.0  # longest wait once a job is running, however late it is
    queued_max_delay: float = 30.0  # longest wait while queued (a failure there shows this late)
    queued_fraction: float = 0.5  # ... and at most this share of the shortest likely running time
    longest_sleep: float = 120.0  # longest single sleep towards the finish window
    near_finish_delay: float = 2.0  # the interval inside the finish window
    window_min_lead: float = 4.0  # the window opens at least this long before the expected finish
    window_spread_factor: float = 1.0  # ... and this many (p90 - median) spreads before it
    late_fraction: float = 0.2  # past the window, wait at most this share of the lateness
    cold_fraction: float = 0.1  # with only the prior: wait at most this share of the elapsed time
    cold_early_fraction: float = 0.25  # ... and this share before the prior's earliest finish
    prior_earliest_fraction: float = 0.5  # the prior's earliest likely finish, as a share of it
    prior_running_seconds: float = 180.0  # the prior for a plus model at 720P, 5 s
    min_expected_samples: int = 3  # past jobs needed before their times are trusted
    history_ttl: float = 60.0  # how long the watcher reuses the running times it looked up
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
            The same fractions, counts and jitter; shorter times.
        """
        unitless = {
            "queued_fraction",
            "window_spread_factor",
            "late_fraction",
            "cold_fraction",
            "cold_early_fraction",
            "prior_earliest_fraction",
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
    """How long the model runs for a job like this one, from its start to its end, in seconds.

    ``measured`` is True for the running times of similar past jobs, False for the prior.
    """

    median_seconds: float
    p90_seconds: float
    measured: bool = True


def prior_run_time(
    policy: PollPolicy, *, model: str, resolution: str, duration: int
) -> ExpectedRunTime:
    """Return the prior guess of a job's running time (see ``PRIOR_FAST_FACTOR``).

    Parameters
    ----------
    policy
        The timing knobs (``prior_running_seconds``).
    model, resolution, duration
        The job's class; an unknown resolution counts as 720P.

    Returns
    -------
    ExpectedRunTime
        Not ``measured``, with a wide spread.
    """
    fast = model.endswith(("-flash", "-turbo"))
    median = (
        policy.prior_running_seconds
        * (PRIOR_FAST_FACTOR if fast else 1.0)
        * PRIOR_RESOLUTION_FACTOR.get(resolution, 1.0)
        * duration
        / 5
    )
    return ExpectedRunTime(median, median * (1 + PRIOR_SPREAD), measured=False)


def finish_window(policy: PollPolicy, expected: ExpectedRunTime) -> tuple[float, float]:
    """Return when to poll every ``near_finish_delay``, in seconds after the job started running.

    Parameters
    ----------
    policy
        The timing knobs.
    expected
        Running times of similar past jobs.

    Returns
    -------
    tuple of float
        ``(start, end)``: from a lead of one spread (p90 - median, at least
        ``window_min_lead``) before the median until as long after it.
    """
    median = max(expected.median_seconds, 0.0)
    spread = max(expected.p90_seconds - median, 0.0)
    lead = max(policy.window_min_lead, policy.window_spread_factor * spread)
    return max(median - lead, 0.0), median + lead


def earliest_likely_finish(policy: PollPolicy, expected: ExpectedRunTime) -> float:
    """Seconds of running before which a job of this kind is unlikely to end."""
    if expected.measured:
        return finish_window(policy, expected)[0]
    return expected.median_seconds * policy.prior_earliest_fraction


def next_poll_delay(
    policy: PollPolicy,
    *,
    elapsed_seconds: float,
    running_seconds: float | None,
    expected: ExpectedRunTime,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Return how many seconds to wait before the next poll of one job.

    Parameters
    ----------
    policy
        The timing knobs.
    elapsed_seconds
        Seconds since the job was submitted.
    running_seconds
        Seconds since the gateway started running it, None while it is queued.
    expected
        Its running time: from similar past jobs, or the prior.
    retry_after
        The gateway's Retry-After in seconds, if it asked us to slow down.
    rng
        Source of jitter (a seeded ``random.Random`` in tests).

    Returns
    -------
    float
        Queued: a sparse interval (the start time comes back in a later snapshot anyway), short
        enough that the next poll comes before the finish could. Running with history: a sleep
        until the finish window (never past its start), ``near_finish_delay`` inside it, then
        ``late_fraction`` of the lateness. Running on the prior: at most ``cold_fraction`` of the
        elapsed time (``cold_early_fraction`` before the prior's earliest likely finish). Each
        jittered, never below ``min_delay`` and never before a Retry-After.
    """
    rng = rng or random
    earliest = earliest_likely_finish(policy, expected)
    sleep_until = None  # a moment not to overshoot, so jitter only brings it forward
    if running_seconds is None:
        delay = _clamp(policy.queued_fraction * earliest, policy, cap=policy.queued_max_delay)
    elif not expected.measured:
        if running_seconds < earliest:
            cap = max(policy.cold_early_fraction * elapsed_seconds, policy.near_finish_delay)
            sleep_until = earliest - running_seconds
            delay = min(sleep_until, cap)
        else:
            delay = _clamp(policy.cold_fraction * elapsed_seconds, policy, cap=policy.max_delay)
    else:
        start, end = finish_window(policy, expected)
        if running_seconds < start:
            sleep_until = start - running_seconds
            delay = min(sleep_until, policy.longest_sleep)
        elif running_seconds <= end:
            delay = policy.near_finish_delay
        else:
            late = running_seconds - expected.median_seconds
            delay = _clamp(policy.late_fraction * late, policy, cap=policy.max_delay)
    if sleep_until is not None and delay >= sleep_until:
        delay -= rng.uniform(0, policy.jitter * policy.near_finish_delay)
    else:
        delay *= 1 + rng.uniform(-policy.jitter, policy.jitter)
    delay = max(delay, policy.min_delay)
    if retry_after is not None and retry_after > 0:
        # Honour it in full, and spread the herd a little past it rather than before it.
        wait = min(retry_after, policy.retry_after_cap)
        delay = max(delay, wait * (1 + rng.uniform(0, policy.jitter)))
    return delay


def _clamp(delay: float, policy: PollPolicy, *, cap: float) -> float:
    return min(max(delay, policy.near_finish_delay), cap)


def finish_urgency(
    policy: PollPolicy, *, running_seconds: float, expected: ExpectedRunTime
) -> float:
    """How soon a job should end, in spreads of its class; the watcher serves the smallest first.

    Parameters
    ----------
    policy
        The timing knobs.
    running_seconds
        How long the job has been running, or may have been: for a queued job, how long its
        poll has been overdue (it may have started just after the last one), so that a job
        waiting for a poll under a saturated budget grows urgent instead of starving.
    expected
        Its running time: from similar past jobs, or the prior.

    Returns
    -------
    float
        ``(median - running) / lead``, the lead being half the finish window: +1 at the window's
        start, -1 at its end, smaller still when overdue. Counting in spreads puts a steady
        class's job a few seconds from its finish on a par with a looser class's job that much
        further out.
    """
    spread = max(expected.p90_seconds - expected.median_seconds, 0.0)
    lead = max(policy.window_min_lead, policy.window_spread_factor * spread)
    return (expected.median_seconds - running_seconds) / lead


def unknown_verdict(
    policy: PollPolicy,
    *,
    submitted_at: datetime | None,
    unknown_since: datetime,
    now: datetime,
) -> str | None:
    """Decide whether an UNKNOWN answer is final (docs/gateway.md: suspicious right after a submit).

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
