"""The watcher's timing: queued, running cold and warm, the estimate, jitter, Retry-After, budget.

Every test drives the pure schedule functions with injected times and counts what a job would see;
none of them waits or reads a clock.
"""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from studio.schedule import (
    UNKNOWN_CONFIRMED,
    UNKNOWN_EXPIRED,
    ExpectedRunTime,
    PollPolicy,
    RequestBudget,
    expected_from_samples,
    finish_urgency,
    finish_window,
    gateway_pace,
    next_poll_delay,
    ratios_to_neighbours,
    shared_budget,
    spread_around,
    unknown_verdict,
    watch_from,
)

STEADY = PollPolicy(jitter=0.0)
STANDARD = PollPolicy()
# Similar past jobs ran 300 s at the median, between 285 and 318 s.
HISTORY = ExpectedRunTime(median_seconds=300, low_seconds=285, high_seconds=318)
# The catalog's guess for Wan 2.2 Plus at 1080P: 288 s, a hint only.
GUESS = spread_around(288, low_share=0.5, high_share=2.0, trusted=False)
# The demo gateway's own timing model for the same class at speed 1: about 21 s, ±6 %.
DEMO_MODEL = spread_around(20.8, low_share=0.94, high_share=1.06, trusted=True)
SDK_SLEEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 5.0)


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


def follow(
    *,
    queued: float,
    runs: float,
    expected: ExpectedRunTime,
    policy: PollPolicy = STANDARD,
    seed: int = 1,
) -> tuple[int, float, list[float]]:
    """Follow one job from its submit: (polls made, seconds its end went unseen, queued gaps)."""
    rng = random.Random(seed)
    now, polls, queued_gaps = policy.first_delay, 0, []
    while True:
        polls += 1
        if now >= queued + runs:
            return polls, now - (queued + runs), queued_gaps
        running = None if now < queued else now - queued
        wait = next_poll_delay(
            policy, elapsed_seconds=now, running_seconds=running, expected=expected, rng=rng
        )
        if running is None:
            queued_gaps.append(wait)
        now += wait


def sdk_polls(total: float) -> int:
    """How many polls the upstream SDK's schedule makes for a job that ends ``total`` s in."""
    now, polls = 0.0, 0
    while True:
        polls += 1
        if now >= total:
            return polls
        now += SDK_SLEEPS[min(polls - 1, len(SDK_SLEEPS) - 1)]


# -- queued ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("expected", [GUESS, HISTORY, DEMO_MODEL], ids=["guess", "history", "demo"])
@pytest.mark.parametrize("elapsed", [0.0, 2.0, 10.0, 60.0, 600.0, 5000.0])
def test_a_queued_job_is_polled_within_a_bounded_time(expected: ExpectedRunTime, elapsed: float):
    wait = delay(running=None, elapsed=elapsed, expected=expected, policy=STANDARD)
    assert wait <= STANDARD.queued_max_delay * (1 + STANDARD.jitter)
    # However long it waits, a job that starts just after a poll cannot end before the next one.
    if expected.trusted:
        assert wait < watch_from(STANDARD, expected)
    else:
        assert wait <= 2 * STANDARD.cold_gap * (1 + STANDARD.jitter)


def test_a_demo_job_is_seen_generating_soon_after_it_starts():
    # The demo gateway's known timing: a 21-s job is polled every couple of seconds while queued
    # (the catalog's 288-s guess for the class would have allowed half a minute).
    polls, unseen, queued_gaps = follow(queued=3.0, runs=21.0, expected=DEMO_MODEL)
    assert max(queued_gaps) <= 0.2 * DEMO_MODEL.median_seconds
    assert unseen <= STANDARD.window_gap * (1 + STANDARD.jitter)
    assert polls <= sdk_polls(24.0)


def test_a_queued_job_polls_grow_sparser_with_its_wait():
    waits = [delay(running=None, elapsed=elapsed) for elapsed in (2, 4, 8, 16, 64)]
    assert waits == sorted(waits)
    assert waits[0] < waits[-1]


# -- running on the catalog's guess (cold) --------------------------------------------------------


@pytest.mark.parametrize("running", [0.0, 5.0, 30.0, 100.0, 288.0, 400.0, 576.0, 860.0])
def test_on_the_guess_a_running_job_is_never_left_longer_than_the_cold_gap(running: float):
    # The guess is a hint: the job may end at any time, so nothing waits for it.
    assert delay(running=running, expected=GUESS) <= STEADY.cold_gap


def test_a_job_past_its_prior_is_polled_densely():
    for running in (GUESS.median_seconds + extra for extra in (1, 30, 120, 288, 500)):
        assert delay(running=running, expected=GUESS) <= STEADY.cold_gap
    # Only far past anything expected, and past a quarter of an hour, does the interval grow.
    assert delay(running=1500, expected=GUESS) > STEADY.cold_gap


@pytest.mark.parametrize("runs", [15.0, 27.0, 45.0, 90.0, 300.0, 580.0])
def test_a_cold_job_is_seen_on_time_however_wrong_the_guess(runs: float):
    polls = []
    for seed in range(5):
        made, unseen, _ = follow(queued=6.0, runs=runs, expected=GUESS, seed=seed)
        assert unseen <= STANDARD.cold_gap * (1 + STANDARD.jitter)
        polls.append(made)
    # No more than the upstream SDK's schedule, on average (the jitter varies single jobs).
    assert sum(polls) / len(polls) <= sdk_polls(6.0 + runs)


# -- running with history (warm) -----------------------------------------------------------------


def test_window_spans_past_jobs_padded_by_a_share_of_their_spread():
    start, end = finish_window(STEADY, HISTORY)
    assert start == pytest.approx(285 - STEADY.window_min_lead)  # 0.25 x 15 s is under the lead
    assert end == pytest.approx(318 + STEADY.window_pad_share * 18)
    loose = ExpectedRunTime(median_seconds=300, low_seconds=180, high_seconds=420)
    assert finish_window(STEADY, loose) == pytest.approx((150, 450))
    assert finish_window(STEADY, ExpectedRunTime(3, 2.9, 3.1))[0] == 0


def test_watching_starts_early_enough_for_a_gateway_that_got_faster():
    # Past jobs all took 285-318 s, but the job may end sooner: watching starts by 80 %.
    assert watch_from(STEADY, HISTORY) == pytest.approx(STEADY.early_share * 300)
    assert watch_from(STEADY, GUESS) == 0.0


def test_the_first_check_after_running_is_bounded():
    long_history = ExpectedRunTime(median_seconds=900, low_seconds=880, high_seconds=920)
    assert delay(running=0, expected=long_history) == STEADY.longest_sleep
    sleep_to = watch_from(STEADY, HISTORY)
    assert delay(running=sleep_to - 50) == pytest.approx(50)
    jittery = PollPolicy()
    rng = random.Random(5)
    sleeps = [delay(running=sleep_to - 50, policy=jittery, rng=rng) for _ in range(200)]
    assert max(sleeps) <= 50  # jitter never pushes a sleep past the moment to watch from
    assert min(sleeps) >= 50 - jittery.jitter * jittery.near_finish_delay


def test_polls_are_denser_in_the_window_and_at_the_watch_gap_around_it():
    start, end = finish_window(STEADY, HISTORY)
    inside = [delay(running=r) for r in (start, HISTORY.median_seconds, end)]
    assert all(STEADY.near_finish_delay <= wait <= STEADY.window_gap for wait in inside)
    assert delay(running=watch_from(STEADY, HISTORY) + 1) == STEADY.watch_gap
    late = [delay(running=end + extra) for extra in (1, 100, 300)]
    assert late == [STEADY.watch_gap] * 3


# A loose class: past jobs ended anywhere from 180 to 420 s, 300 s at the median.
LOOSE = ExpectedRunTime(median_seconds=300, low_seconds=180, high_seconds=420)


def test_in_the_window_polls_are_densest_near_the_median_and_late_in_it():
    start, end = finish_window(STEADY, LOOSE)
    assert delay(running=LOOSE.median_seconds, expected=LOOSE) == STEADY.near_finish_delay
    assert delay(running=end - 1, expected=LOOSE) == STEADY.near_finish_delay
    # Far from the median and early in the window, few jobs end between two polls.
    assert delay(running=start + 1, expected=LOOSE) == STEADY.window_gap
    assert delay(running=(LOOSE.median_seconds + end) / 2, expected=LOOSE) == STEADY.window_gap
    approaching = [delay(running=r, expected=LOOSE) for r in (200, 240, 270, 290, 300)]
    assert approaching == sorted(approaching, reverse=True)
    assert approaching[0] > approaching[-1]


def test_a_loose_class_is_watched_with_fewer_polls_than_even_spacing_for_the_same_median():
    # Ends spread evenly over what the history says. Polls 6 s apart from the window's start give
    # a 3-s median delay; polls shaped by where the ends lie give as much for fewer.
    rng = random.Random(3)
    ends = [rng.uniform(LOOSE.low_seconds, LOOSE.high_seconds) for _ in range(200)]
    followed = [
        follow(queued=20, runs=runs, expected=LOOSE, seed=seed) for seed, runs in enumerate(ends)
    ]
    delays = sorted(unseen for _, unseen, _ in followed)
    assert delays[len(delays) // 2] <= 3.0
    assert delays[-1] <= STANDARD.window_gap * (1 + STANDARD.jitter)
    start = watch_from(STANDARD, LOOSE)
    even = sum((runs - start) / 6.0 for runs in ends) / len(ends)
    # What both schedules share: the queued polls and the sleeps up to the window's start.
    before = follow(queued=20, runs=start, expected=LOOSE)[0]
    shaped = sum(polls for polls, _, _ in followed) / len(followed) - before
    assert shaped < even


def test_with_history_a_job_is_seen_soon_after_it_ends_with_few_polls():
    for seed in range(5):
        polls, unseen, _ = follow(queued=20, runs=305, expected=HISTORY, seed=seed)
        assert unseen <= STANDARD.window_gap * (1 + STANDARD.jitter)
        assert polls <= sdk_polls(325) / 3


@pytest.mark.parametrize("share", [0.8, 0.9, 1.25, 2.0])
def test_a_job_off_its_history_is_still_seen_within_the_watch_gap(share: float):
    for seed in range(5):
        _, unseen, _ = follow(queued=20, runs=300 * share, expected=HISTORY, seed=seed)
        assert unseen <= STANDARD.watch_gap * (1 + STANDARD.jitter)


def test_a_job_that_reached_its_window_is_never_sent_back_to_sleep():
    # The gateway's pace dipped: similar jobs were expected at 230 s, so watching started by
    # 184 s. Then the pace swung back and the expectation with it: its window opens at 285 s.
    dipped = ExpectedRunTime(median_seconds=230, low_seconds=215, high_seconds=245)
    restored = HISTORY
    entered = watch_from(STEADY, dipped)
    assert entered < 200 < watch_from(STEADY, restored)
    # Told nothing, the schedule sleeps the job again, past anything a job that dipped ends at.
    assert delay(running=200, expected=restored) > STEADY.window_gap * 4
    # Told where watching started, it keeps watching however the expectation moves.
    for running in (entered, 200.0, 240.0, 280.0):
        wait = delay(running=running, expected=restored, watching_from=entered)
        assert wait <= STEADY.watch_gap
    # A window not reached yet is still slept towards (its start only ever comes earlier).
    assert delay(running=100, expected=restored, watching_from=entered) == pytest.approx(
        entered - 100
    )


def test_a_job_whose_expectation_swings_is_seen_on_time_when_the_watcher_remembers():
    # The expectation alternates between the dipped and the restored pace at every poll, and
    # the job ends at 205 s, inside the dipped window, before the restored one opens.
    dipped = ExpectedRunTime(median_seconds=230, low_seconds=215, high_seconds=245)
    for seed in range(5):
        rng = random.Random(seed)
        now, watching, polls = 0.0, None, 0
        while now < 205:
            polls += 1
            expected = dipped if polls % 2 else HISTORY
            now += next_poll_delay(
                STANDARD,
                elapsed_seconds=now + 20,
                running_seconds=now,
                expected=expected,
                watching_from=watching,
                rng=rng,
            )
            start = watch_from(STANDARD, expected)
            watching = start if watching is None else min(watching, start)
        assert now - 205 <= STANDARD.watch_gap * (1 + STANDARD.jitter)


def test_the_job_nearest_its_expected_finish_goes_first():
    def urgency(running: float, expected: ExpectedRunTime = HISTORY) -> float:
        return finish_urgency(STEADY, running_seconds=running, expected=expected)

    # A queued job whose poll has just fallen due counts as just started.
    overdue, due_soon, just_started, queued = (urgency(r) for r in (340, 295, 5, 0))
    assert overdue < -1 < 0 < due_soon < 1 < just_started < queued
    # Nearness counts in spreads: 4 s before the median of a steady class is about as near as a
    # minute before it for a loose one.
    steady = ExpectedRunTime(median_seconds=40, low_seconds=39.5, high_seconds=40.5)
    loose = ExpectedRunTime(median_seconds=300, low_seconds=240, high_seconds=360)
    assert urgency(280, loose) < urgency(36, steady) < urgency(200, loose)


# -- the expectation from past jobs ---------------------------------------------------------------


def test_without_past_jobs_the_prior_is_used():
    assert expected_from_samples(STANDARD, [], fallback=GUESS) is GUESS


def test_a_single_past_job_already_sets_a_trusted_expectation():
    expected = expected_from_samples(STANDARD, [40.0], fallback=GUESS)
    assert expected.trusted
    assert expected.samples == 1
    assert expected.median_seconds == 40.0
    assert expected.low_seconds == pytest.approx(40 * (1 - STANDARD.default_spread))
    assert expected.high_seconds == pytest.approx(40 * (1 + STANDARD.default_spread))


def test_enough_past_jobs_give_their_median_the_fastest_and_their_90th_percentile():
    times = [100.0, 104.0, 96.0, 110.0, 90.0, 102.0, 98.0, 100.0, 106.0, 94.0]
    expected = expected_from_samples(STANDARD, times, fallback=GUESS)
    assert expected.median_seconds == 100.0
    assert expected.low_seconds == 90.0
    assert expected.high_seconds == pytest.approx(106.4)


def test_a_class_that_changed_pace_moves_the_expectation_and_covers_both():
    older = [100.0, 101.0, 99.0, 100.0, 102.0, 98.0, 100.0]
    faster = [75.0, 76.0, 74.0]
    expected = expected_from_samples(STANDARD, faster + older, fallback=GUESS)
    assert expected.median_seconds == pytest.approx(75, abs=1)
    assert expected.low_seconds < 75 < 100 < expected.high_seconds
    # One quick job alone is jitter, not a new pace.
    one = expected_from_samples(STANDARD, [75.0, 101.0, 99.0, *older], fallback=GUESS)
    assert one.median_seconds == 100.0


def test_the_gateway_pace_moves_a_class_that_has_not_caught_up():
    steady = [100.0, 101.0, 99.0, 100.0, 102.0, 98.0, 100.0]
    as_usual = expected_from_samples(STANDARD, steady, fallback=GUESS, pace=1.01)
    assert as_usual.median_seconds == 100.0
    slower = expected_from_samples(STANDARD, steady, fallback=GUESS, pace=1.25)
    assert slower.median_seconds == pytest.approx(125)
    assert slower.low_seconds == 98.0  # a job at the old pace is still watched for
    assert gateway_pace(STANDARD, [0.75]) is None
    assert gateway_pace(STANDARD, [0.75, 0.74, 1.0, 1.0]) == 0.75


# The gateway's jobs of every class, each over its class's median: 70 of them, ±40 %.
POOLED = [0.6 + 0.8 * index / 69 for index in range(70)]


def test_the_gateways_pooled_spread_bounds_a_class_around_its_own_median():
    # Ten jobs of the class happen to lie close together; the gateway's seventy say how far
    # from its median a job really ends.
    times = [100.0, 104.0, 96.0, 110.0, 90.0, 102.0, 98.0, 100.0, 106.0, 94.0]
    own = expected_from_samples(STANDARD, times, fallback=GUESS)
    pooled = expected_from_samples(STANDARD, times, fallback=GUESS, pooled_ratios=POOLED)
    assert pooled.median_seconds == own.median_seconds == 100.0
    assert pooled.low_seconds == pytest.approx(60)
    assert pooled.high_seconds == pytest.approx(100 * (0.6 + 0.8 * 0.9))
    assert (pooled.spread_from, own.spread_from) == (70, 10)
    # Too few jobs on the gateway: the class's own spread stands.
    few = expected_from_samples(STANDARD, times, fallback=GUESS, pooled_ratios=POOLED[:10])
    assert (few.low_seconds, few.high_seconds) == (own.low_seconds, own.high_seconds)


def test_a_class_with_few_jobs_keeps_the_wider_of_its_default_and_the_pooled_spread():
    expected = expected_from_samples(STANDARD, [100.0, 104.0], fallback=GUESS, pooled_ratios=POOLED)
    assert expected.median_seconds == 102.0
    assert expected.low_seconds == pytest.approx(100 * 0.6)  # wider than 75 % of the fastest
    assert expected.high_seconds == pytest.approx(104 * 1.32)  # wider than 125 % of the slowest


def test_a_spread_known_from_many_jobs_is_padded_less():
    few = ExpectedRunTime(median_seconds=300, low_seconds=180, high_seconds=420, spread_from=4)
    many = replace(few, spread_from=70)
    assert finish_window(STEADY, few) == pytest.approx((150, 450))  # a quarter of each side
    start, end = finish_window(STEADY, many)
    assert 170 < start < 180
    assert 420 < end < 430
    assert watch_from(STEADY, many) > watch_from(STEADY, few)


def test_a_change_of_pace_does_not_pass_for_a_spread():
    # Six jobs at 75 s, then six at 100 s: each within 2 % of the jobs of its own time.
    times = [75.0, 76.0, 74.0, 75.0, 75.0, 75.0, 100.0, 101.0, 99.0, 100.0, 100.0, 100.0]
    ratios = ratios_to_neighbours(times, 5)
    assert len(ratios) == len(times)
    assert all(0.97 <= ratio <= 1.03 for ratio in ratios)
    assert ratios_to_neighbours([40.0, 60.0], 5) == [0.8, 1.2]


def test_jobs_that_took_no_time_are_no_measure_of_a_spread():
    # Started and ended within one tick of the gateway's clock: a median of such jobs is zero.
    assert ratios_to_neighbours([0.0, 0.0, 0.0, 40.0, 0.0, 60.0], 5) == [0.8, 1.2]
    assert ratios_to_neighbours([0.0, 0.0, 0.0], 5) == []


def test_when_the_pace_changes_the_class_keeps_its_own_spread_to_move():
    # A gateway that got a quarter slower: its pooled ratios mix both paces, which would widen
    # every window twice over; the class's own spread is moved to cover both paces instead.
    steady = [100.0, 101.0, 99.0, 100.0, 102.0, 98.0, 100.0]
    mixed = [1.0] * 40 + [1.25] * 20
    slower = expected_from_samples(STANDARD, steady, fallback=GUESS, pace=1.25, pooled_ratios=mixed)
    assert slower.median_seconds == pytest.approx(125)
    assert slower.low_seconds == 98.0
    assert slower.high_seconds < 130  # not 1.25 x the pooled 1.25: 156 s
    assert slower.spread_from == len(steady)


# -- jitter, Retry-After, scaling -----------------------------------------------------------------


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
    assert fast.watch_gap == PollPolicy().watch_gap / 100
    assert fast.late_fraction == PollPolicy().late_fraction
    assert fast.early_share == PollPolicy().early_share
    assert fast.jitter == PollPolicy().jitter
    assert fast.unknown_confirm_polls == PollPolicy().unknown_confirm_polls
    assert fast.window_left_share == PollPolicy().window_left_share
    assert fast.window_median_share == PollPolicy().window_median_share
    assert fast.window_pad_samples == PollPolicy().window_pad_samples
    assert fast.pooled_samples == PollPolicy().pooled_samples


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
