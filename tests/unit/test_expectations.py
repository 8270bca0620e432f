"""What a job's card says it is doing, how long it usually takes, and how far along it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from studio import expectations
from studio.expectations import MAX_PROGRESS, TypicalWait, progress, stage, time_left, typical_wait
from studio.records import BILLED, DEMO, JobStatus

SENT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_typical_waits_read_plainly() -> None:
    assert typical_wait(DEMO).describe() == "Usually under a minute"
    assert typical_wait(BILLED).describe() == "Usually 1–5 minutes, sometimes up to 10"
    assert TypicalWait(usual_from=0, usual_to=180).describe() == "Usually under 3 minutes"


def test_every_mode_has_a_typical_wait_and_billed_jobs_take_longer() -> None:
    assert set(expectations.TYPICAL_WAIT) == {BILLED, DEMO}
    assert typical_wait(BILLED).usual_to > typical_wait(DEMO).usual_to
    with pytest.raises(KeyError):
        typical_wait("free")


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
