"""Spending limits: where they come from, their periods, and the Studio refusing what would go over.

The Studio tests run billed jobs against the local simulator; the store's own check, and submits
racing for the last dollars, are in test_spend_reservation.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import simulator
import studio.service
from studio.limits import (
    PeriodSpend,
    SpendingLimit,
    SpendingLimitReached,
    day_and_month,
    limit_money,
    local_zone,
    until_words,
)
from studio.records import BILLED, DEMO, JobStatus
from studio.service import Studio
from studio.settings import Settings, SettingsError
from studio.store import JobStore
from tests.plugins.engine import (
    CATALOG,
    ENGINE_KEY,
    FAST_POLICY,
    finished,
    first_frame,
    quick_draft,
    settings_for,
    wait_until,
)
from tests.unit.test_store import database_url  # noqa: F401 - fixture

BERLIN = ZoneInfo("Europe/Berlin")
QUICK_PRICE = Decimal("0.135")  # quick_draft: Wan 2.1 Turbo, 480P, 3 s × $0.045/s


# -- periods and words ----------------------------------------------------------------------


def test_the_day_the_clocks_go_forward_is_23_hours_and_the_next_starts_at_local_midnight():
    # 29 March 2026, Berlin: 02:00 CET becomes 03:00 CEST. Noon local is 10:00 UTC.
    day, month = day_and_month(datetime(2026, 3, 29, 10, 0, tzinfo=UTC), BERLIN)

    assert day.start.astimezone(UTC) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    assert day.end.astimezone(UTC) == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert month.start.astimezone(UTC) == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    assert month.end.astimezone(UTC) == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    # Five real hours before the next midnight, whatever the wall clock did in between.
    assert until_words(day.end, now=day.end - timedelta(hours=5)) == "in 5 h"
    assert until_words(day.end, now=day.start) == "in 23 h"


def test_the_day_the_clocks_go_back_is_25_hours():
    day, _month = day_and_month(datetime(2026, 10, 25, 1, 30, tzinfo=UTC), BERLIN)
    assert day.start.astimezone(UTC) == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert day.end.astimezone(UTC) - day.start.astimezone(UTC) == timedelta(hours=25)


def test_december_ends_on_the_first_of_january():
    _day, month = day_and_month(datetime(2026, 12, 31, 22, 0, tzinfo=UTC), BERLIN)
    assert month.end == datetime(2027, 1, 1, tzinfo=BERLIN)
    spend = PeriodSpend(period=month, cap=Decimal("100"), committed=Decimal("99.6"))
    words = spend.left_and_reset_words(now=datetime(2026, 12, 28, 23, 0, tzinfo=UTC))
    assert words == "$0.40 left this month; the monthly limit resets on 1 January (in 3 days)"


def test_todays_totals_start_at_midnight_with_the_offset_midnight_had(
    monkeypatch: pytest.MonkeyPatch,
):
    # At noon on the day the clocks go forward, midnight was still an hour ahead of UTC, not two.
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()  # the process's own clock too, not only the variable
    try:
        start = studio.service._local_midnight(datetime(2026, 3, 29, 10, 0, tzinfo=UTC))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert start.astimezone(UTC) == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("5", "$5.00"),
        ("0.4", "$0.40"),
        ("1234.5", "$1,234.50"),
        ("0.065", "$0.065"),
        ("0", "$0.00"),
    ],
)
def test_limit_money_shows_cents_and_a_tenth_of_a_cent_only_when_there_is_one(
    amount: str, shown: str
):
    assert limit_money(Decimal(amount)) == shown


def test_the_daily_limit_says_what_is_left_and_when_it_resets():
    day, _month = day_and_month(datetime(2026, 6, 10, 12, 0, tzinfo=UTC), BERLIN)
    spend = PeriodSpend(period=day, cap=Decimal("5"), committed=Decimal("4.60"))
    now = day.end - timedelta(hours=5)

    assert spend.left_and_reset_words(now) == (
        "$0.40 left today; the daily limit resets at midnight (in 5 h)"
    )
    assert (spend.percent, spend.near_limit) == (92, True)
    assert not spend.fits(Decimal("0.45"))
    reached = SpendingLimitReached(
        period=day, cap=Decimal("5"), committed=Decimal("4.60"), asked=Decimal("0.45")
    )
    assert reached.words(now) == (
        "This costs $0.450, more than the $0.40 left today; the daily limit resets at midnight "
        "(in 5 h)."
    )
    assert str(reached).endswith(").")


def test_the_warning_starts_at_80_percent():
    day, _month = day_and_month(datetime(2026, 6, 10, 12, 0, tzinfo=UTC), BERLIN)
    assert PeriodSpend(period=day, cap=Decimal("5"), committed=Decimal("4.00")).near_limit
    assert not PeriodSpend(period=day, cap=Decimal("5"), committed=Decimal("3.999")).near_limit


# -- settings ---------------------------------------------------------------------------------


def test_limits_come_from_the_environment_before_secrets(tmp_path: Path):
    secrets = {"pixazo": {"daily_limit_usd": 3.5, "monthly_limit_usd": "80"}}
    env = {"WAN_STUDIO_HOME": str(tmp_path), "WAN_STUDIO_DAILY_LIMIT_USD": " 5 "}

    settings = Settings.from_environment(env, secrets)

    assert settings.daily_limit_usd == Decimal("5.00")
    assert settings.monthly_limit_usd == Decimal("80.00")
    only_secrets = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)}, secrets)
    assert only_secrets.daily_limit_usd == Decimal("3.50")
    unset = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)})
    assert (unset.daily_limit_usd, unset.monthly_limit_usd) == (None, None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("five", "'five' is not a number"),
        ("-1", "'-1' is below zero"),
        ("2.505", "'2.505' has more than two decimals"),
        ("nan", "'nan' is not a number"),
        ("1e9", "'1e9' is more than 1,000,000 dollars"),
    ],
)
def test_a_bad_limit_stops_the_start_and_says_which_setting(
    tmp_path: Path, value: str, problem: str
):
    env = {"WAN_STUDIO_HOME": str(tmp_path), "WAN_STUDIO_MONTHLY_LIMIT_USD": value}
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(env)
    assert str(caught.value) == (
        "WAN_STUDIO_MONTHLY_LIMIT_USD must be an amount in US dollars from 0 up to 1,000,000 "
        f"with at most two decimals, such as 25 or 12.50; {problem}."
    )
    secrets = {"pixazo": {"daily_limit_usd": value}}
    with pytest.raises(SettingsError, match=r"^daily_limit_usd under \[pixazo\] in .streamlit"):
        Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)}, secrets)


# -- the store keeps the limits set on the Settings page ---------------------------------------


def test_a_scopes_limit_is_kept_replaced_and_cleared(database_url: str):  # noqa: F811
    with JobStore.open(database_url) as store:
        assert store.spending_limit("team") == SpendingLimit()
        store.set_spending_limit("team", SpendingLimit(daily_usd=Decimal("5.00")))
        store.set_spending_limit("someone", SpendingLimit(monthly_usd=Decimal("1")))
        assert store.spending_limit("team") == SpendingLimit(daily_usd=Decimal("5.00"))

        store.set_spending_limit(
            "team", SpendingLimit(daily_usd=Decimal("2.50"), monthly_usd=Decimal("40"))
        )
        assert store.spending_limit("team") == SpendingLimit(Decimal("2.50"), Decimal("40"))
        store.set_spending_limit("team", SpendingLimit())
        assert store.spending_limit("team") == SpendingLimit()
        assert store.spending_limit("someone") == SpendingLimit(monthly_usd=Decimal("1"))


# -- the Studio -------------------------------------------------------------------------------


@pytest.fixture
def open_capped(
    tmp_path: Path, engine_gateway: simulator.RunningSimulator
) -> Iterator[Callable[..., Studio]]:
    """Opens billed Studios on the test's simulator, with caps fixed by the deployment if given."""
    opened: list[Studio] = []

    def open_one(**caps: Decimal) -> Studio:
        settings = settings_for(tmp_path / "data", api_key=ENGINE_KEY, base_url=engine_gateway.url)
        engine = Studio.open(replace(settings, **caps), catalog=CATALOG, poll_policy=FAST_POLICY)
        opened.append(engine)
        return engine

    yield open_one
    for engine in opened:
        engine.close()


def send(engine: Studio, *, api_key: str | None = None, **changes: object):
    return engine.submit(
        quick_draft(**changes), submission_id=str(uuid.uuid4()), session_id="s", api_key=api_key
    )


def test_a_job_that_would_go_over_is_refused_before_anything_is_written_or_sent(
    open_capped: Callable[..., Studio], request_log, tmp_path: Path
):
    engine = open_capped()
    engine.set_spending_limit(SpendingLimit(daily_usd=Decimal("0.30")))
    for _ in range(2):
        assert send(engine).status is JobStatus.QUEUED
    submits = request_log.count("/generateImageToVideo")
    assert submits == 2
    images = sorted((tmp_path / "data" / "images").rglob("*"))

    with pytest.raises(SpendingLimitReached) as refused:
        send(engine, image=first_frame(shade=77))  # an image not kept yet

    assert str(refused.value).startswith(
        "This costs $0.135, more than the $0.03 left today; the daily limit resets at midnight (in "
    )
    assert engine.count_history() == 2
    assert request_log.count("/generateImageToVideo") == submits
    assert sorted((tmp_path / "data" / "images").rglob("*")) == images
    status = engine.spending_status(BILLED)
    assert status is not None
    (today,) = status.periods
    assert (today.cap, today.committed, today.left) == (
        Decimal("0.30"),
        QUICK_PRICE * 2,
        Decimal("0.03"),
    )
    assert (today.percent, today.near_limit) == (90, True)
    assert today.resets_at.tzinfo is not None
    assert status.blocking(QUICK_PRICE) == today


def test_demo_jobs_never_count_and_demo_mode_has_no_limit(
    open_studio: Callable[..., Studio],
):
    engine = open_studio(start_watcher=False)
    engine.set_spending_limit(SpendingLimit(daily_usd=Decimal("0")))

    job = send(engine)

    assert job.mode == DEMO
    assert engine._spend_guard(DEMO) is None
    assert engine.spending_status(DEMO) is None
    assert engine.spending_status(BILLED).periods[0].committed == Decimal("0")


def test_without_a_cap_there_is_no_guard(open_capped: Callable[..., Studio]):
    engine = open_capped()
    assert engine._spend_guard(BILLED) is None
    assert engine.spending_status(BILLED) is None


def test_a_refused_or_failed_job_releases_its_reservation_and_a_made_one_costs_its_price(
    open_capped: Callable[..., Studio],
):
    engine = open_capped()
    engine.set_spending_limit(SpendingLimit(daily_usd=Decimal("0.20")))
    refused = send(engine, api_key=f"{ENGINE_KEY}+rate_limit:endpoint=submit:retry_after=0.01")
    assert refused.status is JobStatus.REJECTED
    failed = send(engine, api_key=f"{ENGINE_KEY}+fail_task:code=DataInspectionFailed")
    with pytest.raises(SpendingLimitReached):  # held while it runs
        send(engine)
    assert wait_until(finished(engine, failed)).status is JobStatus.FAILED

    made = send(engine)
    assert wait_until(finished(engine, made)).status is JobStatus.SUCCEEDED

    (today,) = engine.spending_status(BILLED).periods
    assert today.committed == QUICK_PRICE
    assert engine.count_history() == 3


def test_a_cap_fixed_by_the_deployment_wins_over_the_one_kept(
    open_capped: Callable[..., Studio],
):
    engine = open_capped(monthly_limit_usd=Decimal("0.10"))
    engine.set_spending_limit(SpendingLimit(daily_usd=Decimal("3"), monthly_usd=Decimal("50")))

    assert engine.spending_limit() == SpendingLimit(Decimal("3"), Decimal("0.10"))
    assert engine.kept_spending_limit() == SpendingLimit(Decimal("3"), Decimal("50"))
    with pytest.raises(SpendingLimitReached) as refused:
        send(engine)
    assert "$0.10 left this month; the monthly limit resets on 1 " in str(refused.value)
    assert engine.count_history() == 0


def test_the_servers_zone_is_taken_by_name_from_tz_with_its_clock_changes(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert local_zone() == BERLIN
    # A rule written out is no name: the offset in force now stands in for it.
    monkeypatch.setenv("TZ", "XYZ-3")
    assert local_zone().utcoffset(None) is not None


def test_a_job_whose_sending_is_uncertain_holds_its_price_until_it_is_dismissed(
    open_capped: Callable[..., Studio],
):
    engine = open_capped()
    engine.set_spending_limit(SpendingLimit(daily_usd=Decimal("0.20")))
    unsure = send(engine, api_key=f"{ENGINE_KEY}+server_error:endpoint=submit")
    assert unsure.status is JobStatus.UNCERTAIN
    # It may have reached the gateway and be billed: its price stays reserved.
    with pytest.raises(SpendingLimitReached):
        send(engine)

    engine.dismiss(unsure.id)

    assert send(engine).status is JobStatus.QUEUED
