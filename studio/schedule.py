"""When to ask the gateway about a job again, and how many requests the process may make.

Pure arithmetic plus one small thread-safe token bucket, so the watcher's timing can be tested
without a clock.

How the schedule works: the model's running time for one (model, resolution, duration) varies
far less than the wait in the gateway's queue, and every snapshot from RUNNING on carries the
gateway's ``scheduled_time``, so the moment a job started running is known exactly however late it
is seen. An expected running time (``ExpectedRunTime``) comes from past jobs of the class on the
same gateway, from the demo gateway's known timing model, or from the catalog's guess. It is a
hint, never a promise:

- Queued: polls grow sparser with the wait, but stay within a fifth of the earliest plausible
  end (so the start shows soon and a job cannot start and end between two polls unseen) and
  within ``queued_max_delay``.
- Running on a trusted expectation: sleeps of at most ``longest_sleep`` towards the moment the
  job could plausibly end (``watch_from``: the window where similar jobs ended, opened below the
  fastest of them, and never later than ``early_share`` of the expected time, so a gateway that
  got faster is still seen); then polls at most ``watch_gap`` apart; inside the window, dense
  (``near_finish_delay``) near the median and late in the window, where a poll catches the most
  of the jobs still running, and up to ``window_gap`` apart elsewhere in it; ``watch_gap`` again
  when the job runs late;
  only far past anything expected, and past ``late_floor``, does the interval grow.
- Running on the catalog's guess (a cold start): no sleep on the strength of a guess; polls at
  most ``cold_gap`` apart from the start, closer while the job is young.

``expected_from_samples`` turns past jobs into an expectation (one job is enough) and follows a
change of pace, of the class or of the whole gateway (``gateway_pace``). How far from its median
a job ends is a property of the gateway rather than of one class: the bounds come from the
gateway's jobs of every class, each against the jobs of its class around it
(``ratios_to_neighbours``), so that dozens of jobs, not the ten of one class, set the window.
The expectation moves between polls with the gateway's pace; the watcher passes on where it
started watching a job (``watching_from``), so a job is never sent back to sleep once watched.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta

UNKNOWN_EXPIRED = "expired"
UNKNOWN_CONFIRMED = "confirmed"


@dataclass(frozen=True)
class PollPolicy:
    """Every knob of the watcher's timing, in seconds unless the name says otherwise."""

    first_delay: float = 2.0  # first poll after the submit answer (refusals show at once)
    min_delay: float = 0.5  # never closer than this, whatever else applies
    max_delay: float = 30.0  # longest wait once a job is running far past anything expected
    queued_max_delay: float = 30.0  # longest wait while queued
    queued_growth: float = 1.0  # while queued, wait this share of the time since the submit
    queued_fraction: float = 0.2  # ... and at most this share of the earliest plausible end
    watch_gap: float = 6.0  # the longest wait whenever the job may plausibly have ended
    cold_gap: float = 5.0  # the same on the catalog's guess, when ends are as likely anywhere
    near_finish_delay: float = 2.0  # the shortest interval, inside the finish window
    window_gap: float = 6.5  # the longest interval inside the finish window
    window_left_share: float = 0.5  # in the window, wait at most this share of the time left in it
    window_median_share: float = (
        0.6  # ... and near_finish_delay plus this share of the median's distance
    )
    window_min_lead: float = 4.0  # the window reaches at least this far around their times
    window_pad_share: float = 0.25  # ... and this share of their distance from the median
    window_pad_samples: float = 1.0  # ... or less, this over half the jobs the spread rests on
    early_share: float = 0.8  # watching starts by this share of the expected time at the latest
    longest_sleep: float = 90.0  # longest single sleep on a running job
    late_after: float = 2.0  # past this many times the slowest expected, the interval grows
    late_floor: float = 900.0  # ... but never before the job has run this long
    late_fraction: float = 0.1  # ... to this share of the time beyond it (up to ``max_delay``)
    cold_fraction: float = 0.25  # on the catalog's guess, wait at most this share of the elapsed
    recent_samples: int = 3  # the median of this many latest jobs shows a change of pace
    spread_samples: int = 5  # past jobs needed before their own spread is trusted
    pooled_samples: int = 20  # jobs of the whole gateway needed before their spread is used
    spread_neighbours: int = 7  # ... each measured against the median of this many around it
    default_spread: float = 0.25  # with fewer, jobs end within this share either side
    min_spread: float = 0.03  # never assume a class steadier than this share either side
    history_ttl: float = 30.0  # how long the estimator reuses the times it looked up
    jitter: float = 0.1  # ± share of every delay, so that jobs do not poll in lockstep
    retry_after_cap: float = 300.0  # longest Retry-After honoured as given
    unknown_confirm_polls: int = 3  # UNKNOWN answers needed before a young task counts as lost
    unknown_confirm_seconds: float = 10.0  # ... spread over at least this long
    task_lifetime: float = 24 * 3600.0  # upstream forgets task ids after this
    deadline: float = 30 * 60.0  # stop watching (timed out) this long after the submit
    lease_seconds: float = 60.0  # how long one watcher owns a job it is working on
    submit_grace: float = 120.0  # a submit unanswered this long means its sender died
    idle_wait: float = 1.0  # the watcher's longest sleep when nothing is due

    def scaled(self, factor: float) -> PollPolicy:
        """Return this policy with every duration divided by ``factor`` (for demo mode and tests).

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
            "queued_growth",
            "queued_fraction",
            "window_pad_share",
            "window_pad_samples",
            "window_left_share",
            "window_median_share",
            "early_share",
            "late_after",
            "late_fraction",
            "cold_fraction",
            "recent_samples",
            "spread_samples",
            "pooled_samples",
            "spread_neighbours",
            "default_spread",
            "min_spread",
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

    ``low_seconds`` and ``high_seconds`` bound where such jobs end (from history: the fastest
    and the 90th percentile). ``trusted`` is False for the catalog's guess, which the schedule
    takes as a hint only; True for timings of past jobs and for the demo gateway's known timing
    model.
    ``samples`` counts the past jobs of the class behind it; ``spread_from`` the past jobs the
    bounds rest on (more than ``samples`` when the spread is pooled over the gateway's classes),
    so that the finish window is padded less the better its bounds are known.
    """

    median_seconds: float
    low_seconds: float
    high_seconds: float
    trusted: bool = True
    samples: int = 0
    spread_from: int = 0


def spread_around(
    median_seconds: float, *, low_share: float, high_share: float, trusted: bool
) -> ExpectedRunTime:
    """An expectation from a median and the shares of it that bound most jobs."""
    return ExpectedRunTime(
        median_seconds, median_seconds * low_share, median_seconds * high_share, trusted=trusted
    )


def expected_from_samples(
    policy: PollPolicy,
    recent_first: Sequence[float],
    *,
    fallback: ExpectedRunTime,
    pace: float | None = None,
    pooled_ratios: Sequence[float] = (),
) -> ExpectedRunTime:
    """Turn the running times of past jobs of one class into an expectation for the next.

    Parameters
    ----------
    policy
        The timing knobs (``recent_samples``, ``spread_samples``, ``pooled_samples``, the
        spreads).
    recent_first
        Running times in seconds, the most recent job first.
    fallback
        What to expect with no past job at all (a prior).
    pace
        How the gateway's latest jobs of any class ran against their own classes' medians
        (``gateway_pace``), if known: 0.75 when they all ran a quarter faster than usual.
    pooled_ratios
        The running times of the gateway's past jobs of every class, each over its class's
        median: how far from its median a job on this gateway may end.

    Returns
    -------
    ExpectedRunTime
        Trusted from a single job on, centred on the class's own median. The bounds: with at
        least ``pooled_samples`` pooled ratios, the class's median times their fastest and 90th
        percentile (widened to the class's own fastest and 90th percentile if those lie
        further out): the spread is the gateway's, and dozens of jobs know it far better than
        the few of one class. Without, with enough jobs of the class: the fastest and the 90th
        percentile; with only a few: ``default_spread`` beyond the fastest and the slowest.
        When the latest few jobs of the class, or else the gateway's pace, lie outside the
        middle of that spread, the gateway may have got faster or slower: the expectation moves
        with them, and the bounds cover the spread at both paces.
    """
    times = [seconds for seconds in recent_first if seconds > 0]
    if not times:
        return fallback
    ordered = sorted(times)
    overall = statistics.median(ordered)
    centre = overall
    ratios = sorted(ratio for ratio in pooled_ratios if ratio > 0)
    pooled = len(ratios) >= policy.pooled_samples
    enough = len(times) >= policy.spread_samples
    if enough:
        # The fastest, not a percentile: a few samples hide how early a job can end.
        own_low, own_high = ordered[0], _percentile(ordered, 0.9)
    else:
        own_low = ordered[0] * (1 - policy.default_spread)
        own_high = ordered[-1] * (1 + policy.default_spread)
    low, high, spread_from = own_low, own_high, len(times)
    if pooled and enough:
        # Ten jobs of a class do not pin down its spread; the gateway's dozens do. The class's
        # own fastest still counts: a job of it did end that soon.
        low = min(ordered[0], overall * ratios[0])
        high = overall * _percentile(ratios, 0.9)
        spread_from = max(len(times), len(ratios))
    elif pooled:
        # The median of a few jobs is itself uncertain: keep the wider of the two spreads.
        low = min(low, ordered[0] * ratios[0])
        high = max(high, ordered[-1] * _percentile(ratios, 0.9))
    shift = pace
    if enough:
        latest = statistics.median(times[: policy.recent_samples])
        if abs(latest - overall) > (high - low) / 2:
            shift = latest / overall
    if shift is not None and abs(shift - 1) * overall > (high - low) / 2:
        # Until the history has caught up, cover both the old pace and the new one. The pooled
        # spread mixes both paces by then, so the class's own spread is the one to move.
        centre = overall * shift
        low, high = min(own_low, own_low * shift), max(own_high, own_high * shift)
        spread_from = len(times)
    low = min(low, centre * (1 - policy.min_spread))
    high = max(high, centre * (1 + policy.min_spread))
    return ExpectedRunTime(
        centre, low, high, trusted=True, samples=len(times), spread_from=spread_from
    )


def gateway_pace(policy: PollPolicy, ratios_recent_first: Sequence[float]) -> float | None:
    """How fast the gateway's latest jobs ran against their own classes' medians (1: as usual).

    Parameters
    ----------
    policy
        The timing knobs (``recent_samples``).
    ratios_recent_first
        For each latest job of any class, its running time over its class's median, the most
        recent first.

    Returns
    -------
    float or None
        The median of the latest ``recent_samples`` ratios; None with fewer than two.
    """
    latest = [ratio for ratio in ratios_recent_first if ratio > 0][: policy.recent_samples]
    return statistics.median(latest) if len(latest) >= 2 else None


def ratios_to_neighbours(times: Sequence[float], width: int) -> list[float]:
    """Each running time of one class over the median of the ``width`` jobs around it.

    Parameters
    ----------
    times
        Running times of one class in the order the jobs ended. Times of zero or less (a job
        whose start and end fell on one moment) say nothing of a pace and are left out: a
        median of them would be zero.
    width
        How many neighbours (the job itself among them) make the median.

    Returns
    -------
    list of float
        One ratio per positive time, in the same order: how far each job ended from what the
        jobs of its own time took. A change of pace moves the neighbours with the job, so the
        ratios keep to the spread of one pace.
    """
    times = [seconds for seconds in times if seconds > 0]
    width = max(min(width, len(times)), 1)
    ratios = []
    for index, seconds in enumerate(times):
        first = min(max(index - width // 2, 0), len(times) - width)
        ratios.append(seconds / statistics.median(times[first : first + width]))
    return ratios


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    position = fraction * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def finish_window(policy: PollPolicy, expected: ExpectedRunTime) -> tuple[float, float]:
    """Return where similar jobs ended, padded, in seconds after the job started running.

    Parameters
    ----------
    policy
        The timing knobs.
    expected
        The expected running time.

    Returns
    -------
    tuple of float
        ``(start, end)``: from ``low_seconds`` to ``high_seconds``, each widened by a share of
        its distance from the median (a tenth of the jobs end beyond the 90th percentile, and
        the bounds of a few samples are loose), and by at least ``window_min_lead``; the start
        never below zero. The share is ``window_pad_share``, or less when the bounds rest on
        many jobs: the next job falls beyond the extreme of n of them by about 1 / (n + 1) of
        their range, so the pad is ``window_pad_samples`` over half the jobs behind the bounds.
    """
    median, low, high = expected.median_seconds, expected.low_seconds, expected.high_seconds
    share = policy.window_pad_share
    if expected.spread_from > 0:
        share = min(share, policy.window_pad_samples / (expected.spread_from / 2 + 1))
    before = max(policy.window_min_lead, share * (median - low))
    after = max(policy.window_min_lead, share * (high - median))
    return max(low - before, 0.0), high + after


def watch_from(policy: PollPolicy, expected: ExpectedRunTime) -> float:
    """Seconds of running before which the job is not expected to end (0 on a guess).

    The window's start, but never later than ``early_share`` of the expected time: history
    says when similar jobs ended, not that this one cannot end sooner.
    """
    if not expected.trusted:
        return 0.0
    start, _ = finish_window(policy, expected)
    return min(start, policy.early_share * expected.median_seconds)


def next_poll_delay(
    policy: PollPolicy,
    *,
    elapsed_seconds: float,
    running_seconds: float | None,
    expected: ExpectedRunTime,
    retry_after: float | None = None,
    watching_from: float | None = None,
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
        Its expected running time.
    retry_after
        The gateway's Retry-After in seconds, if it asked us to slow down.
    watching_from
        The earliest ``watch_from`` already used for this job, in running seconds, if any. The
        expectation moves with the gateway's pace between polls; a job that has reached a
        window it was once given is watched from there on, never sent back to sleep.
    rng
        Source of jitter (a seeded ``random.Random`` in tests).

    Returns
    -------
    float
        See the module's docstring. Each delay is jittered (a sleep towards a moment not to
        overshoot only ever comes earlier), never below ``min_delay`` and never before a
        Retry-After.
    """
    rng = rng or random
    sleep_until = None  # a moment not to overshoot, so jitter only brings it forward
    if running_seconds is None:
        delay = _queued_delay(policy, elapsed_seconds, expected)
    elif not expected.trusted:
        delay = _cold_delay(policy, elapsed_seconds, running_seconds, expected)
    else:
        earliest = watch_from(policy, expected)
        if watching_from is not None:
            earliest = min(earliest, watching_from)
        if running_seconds < earliest:
            sleep_until = earliest - running_seconds
            delay = min(sleep_until, policy.longest_sleep)
        else:
            delay = _watching_delay(policy, running_seconds, expected)
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


def _queued_delay(policy: PollPolicy, elapsed: float, expected: ExpectedRunTime) -> float:
    # A job that starts just after this poll must not end before the next one: half its earliest
    # plausible end (on a guess, where it could end any time, the watch gap).
    earliest = watch_from(policy, expected)
    if expected.trusted:
        cap = max(policy.queued_fraction * earliest, policy.near_finish_delay)
    else:
        # Any running time is possible, but not one shorter than two polls of a running job.
        cap = 2 * policy.cold_gap
    cap = min(cap, policy.queued_max_delay)
    return min(max(policy.queued_growth * elapsed, policy.near_finish_delay), cap)


def _cold_delay(
    policy: PollPolicy, elapsed: float, running: float, expected: ExpectedRunTime
) -> float:
    if running > _late_from(policy, expected):
        return _late_delay(policy, running, expected)
    return min(max(policy.cold_fraction * elapsed, policy.near_finish_delay), policy.cold_gap)


def _watching_delay(policy: PollPolicy, running: float, expected: ExpectedRunTime) -> float:
    start, end = finish_window(policy, expected)
    if start <= running <= end:
        return _window_delay(policy, running, expected, end)
    if running > _late_from(policy, expected):
        return _late_delay(policy, running, expected)
    return policy.watch_gap


def _window_delay(
    policy: PollPolicy, running: float, expected: ExpectedRunTime, end: float
) -> float:
    # A poll is worth the share of the still-running jobs that end just before it: that share is
    # highest near the median, where most ends lie, and late in the window, where few jobs are
    # left to pay for the polls. Elsewhere in the window the polls spread out to ``window_gap``.
    # The median delay is counted over jobs, so sparse polls where few jobs end cost it little.
    near_median = policy.near_finish_delay + policy.window_median_share * abs(
        running - expected.median_seconds
    )
    late_in_window = policy.window_left_share * (end - running)
    spaced = min(near_median, late_in_window)
    return min(max(spaced, policy.near_finish_delay), policy.window_gap)


def _late_from(policy: PollPolicy, expected: ExpectedRunTime) -> float:
    return max(policy.late_after * expected.high_seconds, policy.late_floor)


def _late_delay(policy: PollPolicy, running: float, expected: ExpectedRunTime) -> float:
    beyond = running - _late_from(policy, expected)
    return min(max(policy.late_fraction * beyond, policy.watch_gap), policy.max_delay)


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
        Its expected running time.

    Returns
    -------
    float
        ``(median - running) / lead``, the lead being half the finish window: +1 at the window's
        start, -1 at its end, smaller still when overdue. Counting in spreads puts a steady
        class's job a few seconds from its finish on a par with a looser class's job that much
        further out.
    """
    start, end = finish_window(policy, expected)
    lead = max((end - start) / 2, policy.window_min_lead)
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
