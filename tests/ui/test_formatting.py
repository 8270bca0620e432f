"""Times and waits as a person reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from components.formatting import local_time, time_left
from components.job_cards import TYPICAL_WAIT, TypicalWait, typical_wait_text
from studio.records import BILLED, DEMO

BERLIN_WINTER = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 11:00 in the viewer's zone


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 26, 9, 10, tzinfo=UTC), "Today 10:10"),
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "Today 00:30"),  # the viewer's day counts
        (datetime(2026, 11, 25, 17, 2, tzinfo=UTC), "Yesterday 18:02"),
        (datetime(2026, 11, 24, 8, 15, tzinfo=UTC), "Nov 24, 09:15"),
        (datetime(2025, 12, 31, 8, 15, tzinfo=UTC), "Dec 31, 2025, 09:15"),
        (None, "—"),
    ],
)
def test_local_time_says_the_day(moment: datetime | None, expected: str) -> None:
    assert local_time(moment, zone=BERLIN_WINTER, now=NOW) == expected


def test_local_time_in_a_sentence_lowers_relative_days() -> None:
    moment = datetime(2026, 11, 25, 17, 2, tzinfo=UTC)
    assert local_time(moment, zone=BERLIN_WINTER, now=NOW, in_sentence=True) == "yesterday 18:02"


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


def test_typical_waits_read_plainly() -> None:
    assert typical_wait_text(TYPICAL_WAIT[DEMO]) == "Usually under a minute"
    assert typical_wait_text(TYPICAL_WAIT[BILLED]) == "Usually 1–5 minutes, sometimes up to 10"
    assert typical_wait_text(TypicalWait(usual_from=0, usual_to=180)) == "Usually under 3 minutes"
