"""Everything that depends on the wall clock takes a clock: "today" near midnight, in any zone."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

import studio.store
from components.formatting import local_time
from studio.records import BILLED, JobStatus
from studio.store import JobStore

NEW_YORK = ZoneInfo("America/New_York")  # UTC-5 in January: its midnight is 05:00 UTC
# Local midnight between 14 and 15 January in New York, and moments around it.
MIDNIGHT = datetime(2026, 1, 15, 5, 0, tzinfo=UTC)
LATE_EVENING = MIDNIGHT - timedelta(minutes=55)  # 23:05 on the 14th, local
JUST_AFTER = MIDNIGHT + timedelta(seconds=10)  # 00:00:10 on the 15th, local


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@pytest.fixture
def new_york_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is New York for this test ("today" starts at local midnight)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _finished_job(store: JobStore, created: datetime, cost: str, monkeypatch) -> None:
    # Its own context: undoing the whole monkeypatch would also undo the test's time zone.
    with monkeypatch.context() as at_creation:
        at_creation.setattr(studio.store, "_utcnow", fixed(created))
        job, _ = _create(store, created, cost)
    store.update(job.id, status=JobStatus.SUCCEEDED, billed_seconds=5, cost_usd=Decimal(cost))


def _create(store: JobStore, created: datetime, cost: str):
    return store.create_job(
        submission_id=f"job-{created.isoformat()}",
        mode=BILLED,
        session_id="s",
        model="wan2.2-i2v-flash",
        resolution="480P",
        duration=5,
        prompt="a fox in the snow",
        negative_prompt="",
        prompt_extend=False,
        watermark=False,
        seed=1,
        image_sha256="a" * 64,
        image_source="fox.png",
        last_frame_sha256=None,
        estimate_usd=Decimal(cost),
        output_width=832,
        output_height=480,
        key_fingerprint=None,
        request_json=None,
    )


def test_todays_totals_start_at_local_midnight_of_the_given_clock(
    new_york_process: None, open_studio, store_of, monkeypatch: pytest.MonkeyPatch
):
    engine = open_studio(start_watcher=False)
    _finished_job(store_of(engine), LATE_EVENING, "0.085", monkeypatch)
    _finished_job(store_of(engine), JUST_AFTER, "0.2", monkeypatch)

    # Half a minute before midnight both jobs were made "today" (the 14th, local time).
    before = engine.totals("s", now=fixed(MIDNIGHT - timedelta(seconds=30))).today.billed
    assert (before.videos, before.cost_usd) == (2, Decimal("0.285"))
    # Half a minute after, only the one made after midnight; a UTC day would still count both.
    after = engine.totals("s", now=fixed(MIDNIGHT + timedelta(seconds=30))).today.billed
    assert (after.videos, after.cost_usd) == (1, Decimal("0.2"))
    # All time does not care what day it is.
    assert engine.totals("s", now=fixed(MIDNIGHT)).all_time.billed.videos == 2


@pytest.mark.parametrize(
    ("moment", "now", "label"),
    [
        # Ten seconds before the viewer's midnight, seen twenty seconds after it: yesterday.
        (MIDNIGHT - timedelta(seconds=10), MIDNIGHT + timedelta(seconds=20), "Yesterday 23:59"),
        (MIDNIGHT + timedelta(seconds=5), MIDNIGHT + timedelta(seconds=20), "Today 00:00"),
        # Seen just before midnight, the same moment was today.
        (MIDNIGHT - timedelta(seconds=10), MIDNIGHT - timedelta(seconds=1), "Today 23:59"),
        # Two local days back at 23:59: a date, not "Yesterday".
        (
            MIDNIGHT - timedelta(days=1, seconds=10),
            MIDNIGHT + timedelta(seconds=1),
            "Jan 13, 23:59",
        ),
    ],
)
def test_today_and_yesterday_follow_the_viewers_midnight(
    moment: datetime, now: datetime, label: str
):
    assert local_time(moment, zone=NEW_YORK, now=now) == label
