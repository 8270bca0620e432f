"""The watcher's timing: queued, the finish window, the prior, jitter, Retry-After, budget."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from studio.schedule import (
    PRIOR_FAST_FACTOR,
    UNKNOWN_CONFIRMED,
    UNKNOWN_EXPIRED,
    ExpectedRunTime,
    PollPolicy,
    RequestBudget,
    finish_urgency,
    finish_window,
    next_poll_delay,
    prior_run_time,
    shared_budget,
    unknown_verdict,
)

STEADY = PollPolicy(jitter=0.0)
# Similar past jobs ran 300 s at the median, 318 s at the 90th percentile.
HISTORY = ExpectedRunTime(median_seconds=300, p90_seconds=318)
PRIOR = prior_run_time(STEADY, model="wan2.2-i2v-plus", resolution="720P", duration=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def delay(
    *,
    running: float | None,
    elapsed: float | None = None,
    expected: ExpectedRunTime = HISTORY,
    policy: PollPolicy = STEADY,
    **options: object,
) -> float:
    """The next delay for a job queued 20 s and then running ``running`` seconds."""
    if elapsed is None:
        elapsed = 20 + (running or 0)
    return next_poll_delay(
        policy, elapsed_seconds=elapsed, running_seconds=running, expected=expected, **options
    )


def simulate(
    *, ends_at: float, expected: ExpectedRunTime, queued: float = 20.0, seed: int = 1
) -> tuple[int, float]:
    """Follow one job from its first poll: (polls made, seconds its end went unseen)."""
    rng = random.Random(seed)
    policy = PollPolicy()
    now, polls = policy.first_delay, 0
    while True:
        polls += 1
        if now >= queued + ends_at:
            return polls, now - (queued + ends_at)
        running = None if now < queued else now - queued
        now += next_poll_delay(
            policy, elapsed_seconds=now, running_seconds=running, expected=expected, rng=rng
        )


def test_window_is_one_spread_either_side_of_the_median():
    assert finish_window(STEADY, HISTORY) == (282, 318)
    # Very steady classes still get the minimum lead; short ones never a negative start.
    steady = ExpectedRunTime(median_seconds=300, p90_seconds=300.5)
    assert finish_window(STEADY, steady) == (300 - STEADY.window_min_lead, 304)
    assert finish_window(STEADY, ExpectedRunTime(median_seconds=3, p90_seconds=3.1))[0] == 0


def test_a_running_job_sleeps_until_the_window_but_never_past_its_start():
    start, _ = finish_window(STEADY, HISTORY)
    assert delay(running=start - 50) == pytest.approx(50)
    assert delay(running=0) == STEADY.longest_sleep  # a failure is still seen within minutes
    jittery = PollPolicy()
    rng = random.Random(5)
    sleeps = [delay(running=start - 50, policy=jittery, rng=rng) for _ in range(200)]
    assert max(sleeps) <= 50
    assert min(sleeps) >= 50 - jittery.jitter * jittery.near_finish_delay


def test_polls_are_dense_inside_the_window_and_back_off_gradually_when_late():
    start, end = finish_window(STEADY, HISTORY)
    assert delay(running=start) == STEADY.near_finish_delay
    assert delay(running=end) == STEADY.near_finish_delay
    late = [delay(running=HISTORY.median_seconds + late) for late in (20, 40, 80, 160, 1000)]
    assert late == sorted(late)
    assert late[0] == pytest.approx(STEADY.late_fraction * 20)
    assert late[-1] == STEADY.max_delay


def test_a_queued_job_is_polled_sparsely_but_before_it_could_finish():
    start, _ = finish_window(STEADY, HISTORY)
    queued = delay(running=None)
    assert queued == STEADY.queued_max_delay
    # Whenever it starts after a poll, the next poll comes before its window opens.
    assert queued <= STEADY.queued_fraction * start
    short = ExpectedRunTime(median_seconds=20, p90_seconds=21)
    assert delay(running=None, expected=short) == pytest.approx(
        STEADY.queued_fraction * finish_window(STEADY, short)[0]
    )


def test_prior_follows_the_model_the_tier_and_the_duration():
    plus = prior_run_time(STEADY, model="wan2.2-i2v-plus", resolution="720P", duration=5)
    flash = prior_run_time(STEADY, model="wan2.2-i2v-flash", resolution="720P", duration=5)
    turbo = prior_run_time(STEADY, model="wan2.1-i2v-turbo", resolution="480P", duration=3)
    big = prior_run_time(STEADY, model="wan2.2-i2v-plus", resolution="1080P", duration=5)
    assert plus.median_seconds == STEADY.prior_running_seconds
    assert flash.median_seconds == plus.median_seconds * PRIOR_FAST_FACTOR
    assert turbo.median_seconds < flash.median_seconds < plus.median_seconds < big.median_seconds
    assert not plus.measured
    assert plus.p90_seconds > plus.median_seconds


@pytest.mark.parametrize("running", [0, 10, 60, 89, 90, 150, 400, 2000])
def test_on_the_prior_no_wait_exceeds_a_fraction_of_the_elapsed_time(running: float):
    elapsed = 20 + running
    earliest = PRIOR.median_seconds * STEADY.prior_earliest_fraction
    fraction = STEADY.cold_early_fraction if running < earliest else STEADY.cold_fraction
    wait = delay(running=running, expected=PRIOR)
    assert wait <= max(fraction * elapsed, STEADY.near_finish_delay)
    assert wait <= STEADY.max_delay
    assert wait >= STEADY.near_finish_delay or running + wait == pytest.approx(earliest)


def test_with_history_a_job_is_seen_soon_after_it_ends_with_few_polls():
    polls, unseen = simulate(ends_at=305, expected=HISTORY)
    assert unseen <= PollPolicy().near_finish_delay * (1 + PollPolicy().jitter)
    # The upstream SDK's schedule would poll about 68 times over these 327 s.
    assert polls <= 68 / 3
    # A job far off its history is still seen, at most a fraction of its lateness late.
    polls, unseen = simulate(ends_at=600, expected=HISTORY)
    assert unseen <= PollPolicy().late_fraction * 300 * (1 + PollPolicy().jitter)


def test_on_the_prior_an_early_finish_is_not_seen_very_late():
    for ends_at in (15, 40, 100, 400):
        _, unseen = simulate(ends_at=ends_at, expected=PRIOR)
        assert unseen <= 0.3 * (20 + ends_at) + 1


def test_the_job_nearest_its_expected_finish_goes_first():
    def urgency(running: float, expected: ExpectedRunTime = HISTORY) -> float:
        return finish_urgency(STEADY, running_seconds=running, expected=expected)

    # A queued job whose poll has just fallen due counts as just started.
    overdue, due_soon, just_started, queued = (urgency(r) for r in (330, 290, 5, 0))
    assert overdue < -1 < 0 < due_soon < 1 < just_started < queued
    # At the edges of its finish window a job scores -1 and +1, whatever its class's spread.
    start, end = finish_window(STEADY, HISTORY)
    assert (urgency(end), urgency(start)) == (pytest.approx(-1), pytest.approx(1))
    # Four seconds before the median of a steady class is as near as 18 s for HISTORY's class.
    steady = ExpectedRunTime(median_seconds=40, p90_seconds=40.5)
    assert urgency(36, steady) == pytest.approx(urgency(282))
    assert urgency(37, steady) < urgency(282)


@pytest.mark.parametrize("running", [None, 0.0, 290.0, 400.0])
def test_jitter_stays_within_its_bounds_and_varies(running: float | None):
    policy = PollPolicy(jitter=0.2)
    base = delay(running=running)
    rng = random.Random(7)
    delays = [delay(running=running, policy=policy, rng=rng) for _ in range(500)]
    assert min(delays) >= base * 0.8
    assert max(delays) <= base * 1.2
    assert len({round(d, 6) for d in delays}) > 100


@pytest.mark.parametrize("retry_after", [0.1, 7.0, 45.0])
def test_retry_after_is_always_honoured(retry_after: float):
    rng = random.Random(3)
    for running in (None, 0.0, 290.0, 1000.0):
        wait = delay(running=running, policy=PollPolicy(), retry_after=retry_after, rng=rng)
        assert wait >= retry_after
        assert wait >= PollPolicy().min_delay


def test_retry_after_is_capped():
    policy = PollPolicy(retry_after_cap=60, jitter=0.0)
    assert delay(running=290, policy=policy, retry_after=86400) == 60


def test_scaled_policy_divides_times_and_keeps_ratios():
    fast = PollPolicy().scaled(100)
    assert fast.first_delay == PollPolicy().first_delay / 100
    assert fast.deadline == PollPolicy().deadline / 100
    assert fast.lease_seconds == PollPolicy().lease_seconds / 100
    assert fast.prior_running_seconds == PollPolicy().prior_running_seconds / 100
    assert fast.late_fraction == PollPolicy().late_fraction
    assert fast.cold_fraction == PollPolicy().cold_fraction
    assert fast.jitter == PollPolicy().jitter
    assert fast.unknown_confirm_polls == PollPolicy().unknown_confirm_polls


def test_unknown_is_final_only_after_it_persists_or_the_task_is_old():
    policy = PollPolicy(unknown_confirm_seconds=10)
    submitted = datetime(2025, 7, 27, 12, 0, tzinfo=UTC)
    first_seen = submitted + timedelta(seconds=2)
    keep = unknown_verdict(
        policy,
        submitted_at=submitted,
        unknown_since=first_seen,
        now=first_seen + timedelta(seconds=5),
    )
    assert keep is None
    confirmed = unknown_verdict(
        policy,
        submitted_at=submitted,
        unknown_since=first_seen,
        now=first_seen + timedelta(seconds=10),
    )
    assert confirmed == UNKNOWN_CONFIRMED
    old = submitted + timedelta(hours=25)
    assert (
        unknown_verdict(policy, submitted_at=submitted, unknown_since=old, now=old)
        == UNKNOWN_EXPIRED
    )


def test_unknown_rechecks_span_the_required_polls():
    policy = PollPolicy(unknown_confirm_seconds=10, unknown_confirm_polls=3)
    # First sighting, then two more at this interval reach the confirmation time.
    assert policy.unknown_recheck_delay * (policy.unknown_confirm_polls - 1) == 10


def test_budget_spaces_requests_at_its_rate():
    clock = FakeClock()
    budget = RequestBudget(10, clock=clock)
    assert budget.try_acquire() == 0
    wait = budget.try_acquire()
    assert wait == pytest.approx(0.1)
    clock.advance(0.05)
    assert budget.try_acquire() == pytest.approx(0.05)
    clock.advance(0.05)
    assert budget.try_acquire() == 0
    assert budget.granted == 2


def test_budget_never_grants_more_than_its_rate_in_any_second():
    clock = FakeClock()
    budget = RequestBudget(10, clock=clock)
    grants: list[float] = []
    for _ in range(10_000):
        if budget.try_acquire() == 0:
            grants.append(clock.now)
        clock.advance(0.013)
    assert len(grants) > 500
    for index, start in enumerate(grants):
        in_window = [t for t in grants[index : index + 20] if t < start + 1.0]
        assert len(in_window) <= 10


def test_idle_time_does_not_store_a_burst_beyond_the_limit():
    clock = FakeClock()
    budget = RequestBudget(10, burst=3, clock=clock)
    clock.advance(3600)
    granted = sum(1 for _ in range(10) if budget.try_acquire() == 0)
    assert granted == 3


def test_hold_stops_every_request_until_it_ends():
    clock = FakeClock()
    budget = RequestBudget(10, clock=clock)
    budget.hold(5)
    assert budget.try_acquire() == pytest.approx(5)
    budget.hold(1)  # a shorter hold does not cut the longer one short
    clock.advance(4.9)
    assert budget.try_acquire() > 0
    clock.advance(0.1)
    assert budget.try_acquire() == 0


def test_acquire_gives_up_when_stopped():
    clock = FakeClock()
    budget = RequestBudget(1, clock=clock)
    budget.hold(3600)
    stop = threading.Event()
    stop.set()
    assert budget.acquire(stop=stop) is False


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (10, 0.5)])
def test_budget_refuses_nonsense(rate: float, burst: float):
    with pytest.raises(ValueError, match="budget"):
        RequestBudget(rate, burst=burst)


def test_the_process_shares_one_budget_per_rate():
    assert shared_budget(7.0) is shared_budget(7.0)
    assert shared_budget(7.0) is not shared_budget(8.0)
    assert shared_budget(7.0).rate_per_second == 7.0
