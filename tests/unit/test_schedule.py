"""The watcher's timing: backoff, tightening near the finish, jitter, Retry-After, budget."""

from __future__ import annotations

import itertools
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from studio.schedule import (
    UNKNOWN_CONFIRMED,
    UNKNOWN_EXPIRED,
    ExpectedRunTime,
    PollPolicy,
    RequestBudget,
    next_poll_delay,
    shared_budget,
    tightening_window,
    unknown_verdict,
)

STEADY = PollPolicy(jitter=0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_backoff_starts_quick_and_grows_to_the_cap():
    delays = [next_poll_delay(STEADY, polls_done=n, elapsed_seconds=0) for n in range(12)]
    assert delays[0] == STEADY.first_delay
    assert delays[1] == pytest.approx(STEADY.first_delay * STEADY.backoff)
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert delays[-1] == STEADY.max_delay
    assert max(delays) == STEADY.max_delay


def test_window_runs_from_before_the_median_to_past_p90():
    start, end = tightening_window(STEADY, ExpectedRunTime(median_seconds=120, p90_seconds=200))
    assert start == 120 - 0.25 * 120
    assert end == 200 + STEADY.near_finish_delay
    # Short jobs still get the minimum lead, never a negative start.
    start, _ = tightening_window(STEADY, ExpectedRunTime(median_seconds=3, p90_seconds=4))
    assert start == 0


def test_polls_tighten_inside_the_expected_finish_window():
    expected = ExpectedRunTime(median_seconds=120, p90_seconds=200)
    inside = next_poll_delay(STEADY, polls_done=10, elapsed_seconds=110, expected=expected)
    after = next_poll_delay(STEADY, polls_done=10, elapsed_seconds=400, expected=expected)
    assert inside == STEADY.near_finish_delay
    assert after == STEADY.max_delay


def test_polls_do_not_overshoot_the_start_of_the_window():
    expected = ExpectedRunTime(median_seconds=120, p90_seconds=200)
    start, _ = tightening_window(STEADY, expected)
    delay = next_poll_delay(STEADY, polls_done=10, elapsed_seconds=start - 4, expected=expected)
    assert delay == pytest.approx(4)
    tiny = next_poll_delay(STEADY, polls_done=10, elapsed_seconds=start - 0.01, expected=expected)
    assert tiny == STEADY.min_delay


def test_without_history_the_plain_backoff_applies():
    assert next_poll_delay(STEADY, polls_done=10, elapsed_seconds=110) == STEADY.max_delay


@pytest.mark.parametrize("polls_done", [0, 3, 20])
def test_jitter_stays_within_its_bounds_and_varies(polls_done: int):
    policy = PollPolicy(jitter=0.2)
    base = next_poll_delay(STEADY, polls_done=polls_done, elapsed_seconds=0)
    rng = random.Random(7)
    delays = [
        next_poll_delay(policy, polls_done=polls_done, elapsed_seconds=0, rng=rng)
        for _ in range(500)
    ]
    assert min(delays) >= base * 0.8
    assert max(delays) <= base * 1.2
    assert len({round(d, 6) for d in delays}) > 100
    assert min(delays) < base < max(delays)


@pytest.mark.parametrize("retry_after", [0.1, 7.0, 45.0])
def test_retry_after_is_always_honoured(retry_after: float):
    rng = random.Random(3)
    for polls_done in range(6):
        delay = next_poll_delay(
            PollPolicy(), polls_done=polls_done, elapsed_seconds=0, retry_after=retry_after, rng=rng
        )
        assert delay >= retry_after
        assert delay >= PollPolicy().min_delay


def test_retry_after_is_capped():
    policy = PollPolicy(retry_after_cap=60, jitter=0.0)
    assert next_poll_delay(policy, polls_done=0, elapsed_seconds=0, retry_after=86400) == 60


def test_scaled_policy_divides_times_and_keeps_ratios():
    fast = PollPolicy().scaled(100)
    assert fast.first_delay == PollPolicy().first_delay / 100
    assert fast.deadline == PollPolicy().deadline / 100
    assert fast.lease_seconds == PollPolicy().lease_seconds / 100
    assert fast.backoff == PollPolicy().backoff
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
