"""What a job's card says it is doing, how long it usually takes, and how far along it is; and
the one run-time estimator behind both the cards and the watcher's schedule."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from studio.catalog import default_catalog
from studio.demo import demo_running_seconds
from studio.expectations import (
    MAX_PROGRESS,
    JobClass,
    RunTimeEstimator,
    TypicalWait,
    progress,
    stage,
    time_left,
)
from studio.migrations import jobs
from studio.records import BILLED, DEMO, JobStatus
from studio.schedule import PollPolicy
from studio.store import JobStore, sqlite_url
from tests.unit.test_store import bulk_row

SENT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PLUS_1080 = ("wan2.2-i2v-plus", "1080P", 5)
POLICY = PollPolicy()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore.open(sqlite_url(tmp_path / "studio.db")) as opened:
        yield opened


def estimator_for(store: JobStore, *, demo_speed: float = 1.0, clock: Clock | None = None):
    return RunTimeEstimator(
        store=store,
        catalog=default_catalog(),
        policy=POLICY,
        demo_speed=demo_speed,
        clock=clock or Clock(),
    )


def add_successes(
    store: JobStore, *, mode: str, running: list[float], queued: float = 10.0, first: int = 0
) -> None:
    """Past successes of Wan 2.2 Plus 1080P, the last one in ``running`` the most recent."""
    rows = []
    for index, seconds in enumerate(running):
        submitted = SENT + timedelta(hours=index)
        started = submitted + timedelta(seconds=queued)
        rows.append(
            bulk_row(
                first + index,
                mode=mode,
                model=PLUS_1080[0],
                resolution=PLUS_1080[1],
                duration=PLUS_1080[2],
                status=JobStatus.SUCCEEDED,
                submitted_at=submitted,
                started_at=started,
                finished_at=started + timedelta(seconds=seconds),
            )
        )
    with store.engine.begin() as conn:
        conn.execute(sa.insert(jobs), rows)


def test_typical_waits_read_plainly() -> None:
    assert TypicalWait(usual_from=0, usual_to=25).describe() == "Usually under a minute"
    assert TypicalWait(usual_from=0, usual_to=180).describe() == "Usually under 3 minutes"
    assert (
        TypicalWait(usual_from=60, usual_to=300, longest=600).describe()
        == "Usually 1–5 minutes, sometimes up to 10"
    )
    assert (
        TypicalWait(usual_from=30, usual_to=50, longest=130).describe()
        == "Usually under a minute, sometimes up to 2 minutes"
    )
    # A longest that rounds to the usual end says nothing more.
    assert TypicalWait(usual_from=0, usual_to=40, longest=50).describe() == "Usually under a minute"


def test_without_history_the_wait_comes_from_each_gateways_prior(store: JobStore) -> None:
    estimator = estimator_for(store)
    billed = estimator.typical_wait(JobClass(BILLED, *PLUS_1080))
    demo = estimator.typical_wait(JobClass(DEMO, *PLUS_1080))
    # The catalog's 288-s guess plus its queue guess, against the demo gateway's 21-s model.
    assert billed.describe() == "Usually 3–5 minutes, sometimes up to 10"
    assert demo.describe() == "Usually under a minute"
    assert billed.usual_to > demo.usual_to


def test_a_billed_job_starts_on_the_catalogs_guess_as_a_hint_only(store: JobStore) -> None:
    expected = estimator_for(store).running_time(JobClass(BILLED, *PLUS_1080))
    assert expected.median_seconds == default_catalog().prior_running_seconds(*PLUS_1080) == 288
    assert not expected.trusted
    assert expected.samples == 0


@pytest.mark.parametrize("speed", [1.0, 10.0])
def test_a_demo_job_starts_on_the_demo_gateways_timing_at_its_speed(
    store: JobStore, speed: float
) -> None:
    expected = estimator_for(store, demo_speed=speed).running_time(JobClass(DEMO, *PLUS_1080))
    seconds, jitter = demo_running_seconds(
        default_catalog(), model=PLUS_1080[0], resolution=PLUS_1080[1], duration=5, speed=speed
    )
    assert expected.median_seconds == pytest.approx(seconds)
    assert expected.median_seconds == pytest.approx(20.8 / speed, rel=0.01)
    assert expected.trusted
    assert expected.high_seconds == pytest.approx(seconds * (1 + jitter))


def test_timings_of_the_two_gateways_never_mix(store: JobStore) -> None:
    add_successes(store, mode=BILLED, running=[290, 300, 310, 305, 295, 300])
    estimator = estimator_for(store)
    billed = estimator.running_time(JobClass(BILLED, *PLUS_1080))
    demo = estimator.running_time(JobClass(DEMO, *PLUS_1080))
    assert billed.median_seconds == 300
    assert billed.samples == 6
    assert demo.samples == 0
    assert demo.median_seconds < 30  # the demo gateway's own model, not the billed history


def test_a_single_past_job_already_informs_the_estimate(store: JobStore) -> None:
    add_successes(store, mode=BILLED, running=[40.0])
    estimator = estimator_for(store)
    expected = estimator.running_time(JobClass(BILLED, *PLUS_1080))
    assert expected.median_seconds == 40.0
    assert expected.trusted


def test_the_estimate_reads_the_store_again_after_its_reuse_period(store: JobStore) -> None:
    clock = Clock()
    estimator = estimator_for(store, clock=clock)
    job_class = JobClass(BILLED, *PLUS_1080)
    assert estimator.running_time(job_class).samples == 0
    add_successes(store, mode=BILLED, running=[120.0])
    clock.now = POLICY.history_ttl / 2
    assert estimator.running_time(job_class).samples == 0  # reused
    clock.now = POLICY.history_ttl
    assert estimator.running_time(job_class).samples == 1


def test_the_gateways_pace_moves_every_class(store: JobStore) -> None:
    # Plus 1080P ran about 300 s; then three jobs of another class ran at three quarters of
    # their usual time: the gateway got faster, and Plus 1080P is expected faster too.
    add_successes(store, mode=BILLED, running=[300, 302, 298, 301, 299, 300])
    flash = []
    for index, seconds in enumerate([100, 101, 99, 100, 100, 75, 76, 74]):
        finished = SENT + timedelta(days=1, minutes=10 * index)
        flash.append(
            bulk_row(
                100 + index,
                model="wan2.2-i2v-flash",
                resolution="480P",
                status=JobStatus.SUCCEEDED,
                submitted_at=finished - timedelta(seconds=seconds + 5),
                started_at=finished - timedelta(seconds=seconds),
                finished_at=finished,
            )
        )
    with store.engine.begin() as conn:
        conn.execute(sa.insert(jobs), flash)
    expected = estimator_for(store).running_time(JobClass(BILLED, *PLUS_1080))
    assert expected.median_seconds == pytest.approx(300 * 75 / 100, rel=0.02)
    assert expected.low_seconds < 225 < 300 < expected.high_seconds


def add_flash_successes(store: JobStore, *, mode: str, running: list[float], first: int) -> None:
    """Past successes of Wan 2.2 Flash 480P on one gateway, a day later, ten minutes apart."""
    rows = []
    for index, seconds in enumerate(running):
        finished = SENT + timedelta(days=1, minutes=10 * index)
        rows.append(
            bulk_row(
                first + index,
                mode=mode,
                model="wan2.2-i2v-flash",
                resolution="480P",
                status=JobStatus.SUCCEEDED,
                submitted_at=finished - timedelta(seconds=seconds + 5),
                started_at=finished - timedelta(seconds=seconds),
                finished_at=finished,
            )
        )
    with store.engine.begin() as conn:
        conn.execute(sa.insert(jobs), rows)


def test_the_spread_is_pooled_over_the_gateways_classes(store: JobStore) -> None:
    # Ten Plus 1080P jobs happened to lie within 2 % of 300 s; forty Flash jobs on the same
    # gateway ran from 60 % to 140 % of their median: a Plus job may end as far from its own.
    add_successes(store, mode=BILLED, running=[300, 302, 298, 301, 299, 300, 303, 297, 300, 301])
    spread = [100 * (0.6 + 0.8 * index / 39) for index in range(40)]
    random.Random(4).shuffle(spread)
    # The latest three ran as usual: the gateway's pace has not changed.
    add_flash_successes(store, mode=BILLED, running=[*spread, 99, 100, 101], first=100)
    # The demo gateway's jobs are its own: they widen nothing on the billed one.
    add_flash_successes(store, mode=DEMO, running=[10, 90] * 20, first=200)
    expected = estimator_for(store).running_time(JobClass(BILLED, *PLUS_1080))
    assert expected.median_seconds == 300.0  # the class's own median
    assert expected.low_seconds < 300 * 0.75  # not 297 s, the class's own fastest
    assert expected.high_seconds > 300 * 1.2  # not 303 s
    assert expected.spread_from == 53
    demo = estimator_for(store).running_time(JobClass(DEMO, "wan2.2-i2v-flash", "480P", 5))
    assert demo.spread_from == 40  # only its own gateway's jobs


def test_jobs_that_took_no_time_do_not_stop_the_estimate(store: JobStore) -> None:
    # A fast gateway reported start and end in the same second for most of a class's jobs: the
    # median of their neighbours is zero, which once stopped every estimate (and so the watcher).
    add_successes(store, mode=BILLED, running=[300, 302, 298, 301, 299, 300, 303, 297, 300, 301])
    add_flash_successes(store, mode=BILLED, running=[0.0] * 12 + [40.0, 60.0], first=100)
    expected = estimator_for(store).running_time(JobClass(BILLED, *PLUS_1080))
    assert expected.median_seconds == 300.0
    flash = estimator_for(store).running_time(JobClass(BILLED, "wan2.2-i2v-flash", "480P", 5))
    assert flash.median_seconds == 50.0  # from the two jobs that did take time
    assert flash.samples == 2


def test_expected_finish_counts_from_the_start_once_known(store: JobStore) -> None:
    add_successes(store, mode=BILLED, running=[60.0, 60.0, 60.0], queued=30.0)
    estimator = estimator_for(store)
    queued = replace(
        _job_template(store), status=JobStatus.QUEUED, submitted_at=SENT, started_at=None
    )
    running = replace(queued, status=JobStatus.RUNNING, started_at=SENT + timedelta(seconds=100))
    assert estimator.expected_finish(queued) == SENT + timedelta(seconds=90)
    assert estimator.expected_finish(running) == SENT + timedelta(seconds=160)
    assert estimator.expected_finish(replace(queued, mode=DEMO)) is None  # no demo history


def _job_template(store: JobStore):
    return store.list_jobs(limit=1)[0]


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (JobStatus.SUBMITTING, "Sending it to the video service"),
        (JobStatus.QUEUED, "Waiting its turn at the video service"),
        (JobStatus.RUNNING, "The model is making your video"),
        (JobStatus.DOWNLOADING, "Saving the finished video"),
    ],
)
def test_in_flight_stages_say_what_is_happening(status: JobStatus, words: str) -> None:
    assert status.in_flight
    assert stage(status) == words


def test_every_in_flight_status_has_its_own_words_and_ended_ones_their_label() -> None:
    for status in JobStatus:
        if status.in_flight:
            assert stage(status) != status.label, status
        else:
            assert stage(status) == status.label, status


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1, "about 5 s left"),
        (41, "about 40 s left"),
        (58, "about 1 min left"),
        (150, "about 2 min left"),
        (600, "about 10 min left"),
    ],
)
def test_time_left_is_rounded(seconds: float, expected: str) -> None:
    assert time_left(seconds) == expected


def test_no_expected_finish_gives_no_progress() -> None:
    assert progress(started=SENT, expected_finish=None, now=SENT) is None
    # An expected finish at or before the start says nothing useful either.
    assert progress(started=SENT, expected_finish=SENT, now=SENT + timedelta(seconds=5)) is None


def test_progress_before_the_expected_finish_says_the_time_left() -> None:
    estimate = progress(
        started=SENT,
        expected_finish=SENT + timedelta(seconds=120),
        now=SENT + timedelta(seconds=80),
    )
    assert estimate is not None
    assert estimate.fraction == pytest.approx(2 / 3)
    assert estimate.text == "About 40 s left"


def test_progress_just_after_the_expected_finish_says_any_moment() -> None:
    estimate = progress(
        started=SENT,
        expected_finish=SENT + timedelta(seconds=100),
        now=SENT + timedelta(seconds=120),
    )
    assert estimate is not None
    assert estimate.text == "Should be ready any moment"
    assert estimate.fraction == MAX_PROGRESS  # never a full bar before the video is saved


def test_progress_long_overdue_says_it_is_still_going() -> None:
    estimate = progress(
        started=SENT,
        expected_finish=SENT + timedelta(seconds=100),
        now=SENT + timedelta(seconds=151),
    )
    assert estimate is not None
    assert estimate.text == "Taking longer than usual; it is still going"
    assert estimate.fraction == MAX_PROGRESS


def test_progress_never_goes_below_zero() -> None:
    # The clocks of the app and of the store can disagree by a little.
    estimate = progress(
        started=SENT, expected_finish=SENT + timedelta(seconds=60), now=SENT - timedelta(seconds=2)
    )
    assert estimate is not None
    assert estimate.fraction == 0.0
