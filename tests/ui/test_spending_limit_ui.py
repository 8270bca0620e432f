"""The spending limit on the Generate form, in the sidebar and on the Settings page."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from simulator import RunningSimulator
from studio import explain
from studio.limits import TEAM_SCOPE, SpendingLimit
from studio.records import BILLED, JobStatus
from studio.service import Studio
from studio.store import JobStore, sqlite_url
from tests.plugins.images import SHIPPED_LIMITS as LIMITS
from tests.plugins.images import image_bytes
from tests.ui.conftest import APP, JobMaker, as_read, texts, upload

BILLED_KEY = "pz-limit-test-key-0123456789"
FLASH_480P = "$0.085"  # Wan 2.2 Flash, 480P, 5 s


@pytest.fixture
def billed_app(
    studio_home: Path,
    start_simulator: Callable[..., RunningSimulator],
    monkeypatch: pytest.MonkeyPatch,
) -> AppTest:
    """The app in billed mode against a local gateway that takes ``BILLED_KEY``."""
    gateway = start_simulator(key=BILLED_KEY)
    monkeypatch.setenv("PIXAZO_API_KEY", BILLED_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", gateway.url)
    return AppTest.from_file(str(APP), default_timeout=30).run()


@pytest.fixture
def billed_store(studio_home: Path, billed_app: AppTest) -> JobStore:
    opened = JobStore.open(sqlite_url(studio_home / "studio.db"))
    yield opened
    opened.close()


def _spent(store: JobStore, home: Path, cost: str, status: JobStatus = JobStatus.SUCCEEDED):
    return JobMaker(store=store, home=home).make(mode=BILLED, cost=cost, status=status)


def _ready_form(at: AppTest) -> AppTest:
    """A valid image and Wan 2.2 Flash at 480P: $0.085."""
    upload(at, image_bytes(640, 480, "JPEG"), name="hills.jpg", mime="image/jpeg")
    at.selectbox(key="gen.model").set_value("wan2.2-i2v-flash").run()
    at.segmented_control(key="gen.resolution").set_value("480P").run()
    at.text_area(key="gen.prompt").set_value("clouds drift over the hills").run()
    return at


def test_the_form_and_the_sidebar_show_what_is_left(
    billed_app: AppTest, billed_store: JobStore, studio_home: Path
) -> None:
    billed_store.set_spending_limit(
        TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("5"), monthly_usd=Decimal("100"))
    )
    _spent(billed_store, studio_home, "1.20")
    at = _ready_form(billed_app)

    said = texts(at)
    assert "$3.80 left today · $98.80 left this month" in said
    assert "spent or on its way" not in said
    assert not at.button(key="gen.submit").disabled
    assert not at.exception
    # The sidebar, as a page opened now draws it.
    fresh = AppTest.from_file(str(APP), default_timeout=30).run()
    sidebar = as_read("\n".join(str(caption.value) for caption in fresh.sidebar.caption))
    assert "Limit: $3.80 left today · $98.80 left this month" in sidebar


def test_at_80_percent_the_form_warns(
    billed_app: AppTest, billed_store: JobStore, studio_home: Path
) -> None:
    billed_store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("5")))
    _spent(billed_store, studio_home, "3.00")
    _spent(billed_store, studio_home, "1.10", status=JobStatus.RUNNING)  # in flight counts too
    at = _ready_form(billed_app)

    [warning] = at.get("warning")
    assert texts(at).count("82 % of today's limit of $5.00 is spent or on its way: ") == 1
    assert "$0.90 left today; the daily limit resets at midnight (in " in texts(at)
    assert "82 %" in str(warning.value)
    assert not at.button(key="gen.submit").disabled
    assert not at.exception


def test_a_price_over_what_is_left_blocks_generate_with_the_amount_and_the_reset(
    billed_app: AppTest, billed_store: JobStore, studio_home: Path
) -> None:
    billed_store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("5")))
    _spent(billed_store, studio_home, "4.95")
    at = _ready_form(billed_app)

    assert at.button(key="gen.submit").disabled
    [error] = at.get("error")
    assert (
        texts(at).count(
            f"This costs {FLASH_480P}, more than the $0.05 left today; the daily limit resets at "
            "midnight (in "
        )
        == 1
    )
    assert "\\$0.05" in str(error.value)  # said as money, not read as a formula
    # A cheaper choice fits: the form says so at once.
    billed_store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("5.05")))
    at.run()
    assert not at.button(key="gen.submit").disabled
    assert not at.get("error")
    assert not at.exception


def test_when_another_tab_spends_the_last_dollars_first_the_store_refuses_and_writes_nothing(
    billed_app: AppTest,
    billed_store: JobStore,
    studio_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    billed_store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("1")))
    _spent(billed_store, studio_home, "0.90")
    at = _ready_form(billed_app)
    assert not at.button(key="gen.submit").disabled  # $0.10 left, $0.085 asked

    # Another tab's job is written right after this run read what is left, before its submit.
    read_left = Studio.spending_status

    def read_then_another_tab_spends(self: Studio, mode: str):
        status = read_left(self, mode)
        if billed_store.count_jobs() == 1:
            _spent(billed_store, studio_home, "0.05", status=JobStatus.QUEUED)
        return status

    monkeypatch.setattr(Studio, "spending_status", read_then_another_tab_spends)
    at.button(key="gen.submit").click().run()

    assert billed_store.count_jobs() == 2  # the first and the other tab's; none from this click
    said = texts(at)
    assert (
        f"This costs {FLASH_480P}, more than the $0.05 left today; the daily limit resets at "
        "midnight (in "
    ) in said
    assert "). Nothing was sent or billed." in said
    assert "your video is on its way" not in " ".join(str(toast.value) for toast in at.toast)
    assert not at.exception


def test_demo_mode_shows_no_limit(app: AppTest, store: JobStore) -> None:
    store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("0")))
    at = _ready_form(app)
    assert "left today" not in texts(at)
    assert not at.button(key="gen.submit").disabled
    assert not at.exception


# -- Settings ---------------------------------------------------------------------------------


def _settings(at: AppTest) -> AppTest:
    return at.switch_page("pages/settings.py").run()


def test_limits_are_set_saved_and_cleared_on_the_settings_page(
    app: AppTest, store: JobStore
) -> None:
    at = _settings(app)
    assert at.number_input(key="settings.daily_limit").label == "Daily limit (US dollars)"
    assert at.number_input(key="settings.monthly_limit").value is None

    at.number_input(key="settings.daily_limit").set_value(5.0)
    at.number_input(key="settings.monthly_limit").set_value(120.5)
    at.button(key="settings.save_limits").click().run()

    assert store.spending_limit(TEAM_SCOPE) == SpendingLimit(Decimal("5.00"), Decimal("120.50"))
    assert "Saved. Billed spend is capped at $5.00 a day and $120.50 a month." in texts(at)

    at.number_input(key="settings.daily_limit").set_value(None)
    at.button(key="settings.save_limits").click().run()
    assert store.spending_limit(TEAM_SCOPE) == SpendingLimit(monthly_usd=Decimal("120.50"))
    assert not at.exception


def test_a_limit_with_a_fraction_of_a_cent_is_refused_and_nothing_is_saved(
    app: AppTest, store: JobStore
) -> None:
    at = _settings(app)
    at.number_input(key="settings.daily_limit").set_value(2.505)
    at.button(key="settings.save_limits").click().run()

    assert store.spending_limit(TEAM_SCOPE) == SpendingLimit()
    assert (
        "The daily limit can have at most two decimals (whole cents), such as 12.50. "
        "Nothing was saved."
    ) in texts(at)
    assert not at.exception


def test_a_monthly_limit_below_the_daily_one_is_saved_and_explained(
    app: AppTest, store: JobStore
) -> None:
    at = _settings(app)
    at.number_input(key="settings.daily_limit").set_value(10.0)
    at.number_input(key="settings.monthly_limit").set_value(4.0)
    at.button(key="settings.save_limits").click().run()

    assert store.spending_limit(TEAM_SCOPE) == SpendingLimit(Decimal("10"), Decimal("4"))
    [info] = [
        str(element.value) for element in at.info if "monthly limit is below" in str(element.value)
    ]
    assert "the monthly limit is what stops spending" in info
    assert not at.exception


def test_a_limit_fixed_by_the_deployment_is_shown_not_offered(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAN_STUDIO_DAILY_LIMIT_USD", "5")
    at = _settings(AppTest.from_file(str(APP), default_timeout=30).run())

    assert not [box for box in at.number_input if box.key == "settings.daily_limit"]
    assert at.number_input(key="settings.monthly_limit")
    said = texts(at)
    assert "Daily limit:** $5.00 — fixed for this installation" in said
    # Only the administrators' part names the setting.
    limits_part = at.main.get_by_key("settings-limits")
    assert "WAN_STUDIO" not in " ".join(
        str(node.value) for node in limits_part if isinstance(getattr(node, "value", None), str)
    )
    assert "fixed for this installation" in " ".join(
        str(node.value) for node in limits_part if isinstance(getattr(node, "value", None), str)
    )
    admin = [block for block in at.expander if "administrators" in block.label]
    assert "WAN_STUDIO_DAILY_LIMIT_USD" in str(admin[0].markdown[0].value)
    assert not at.exception


def test_try_again_over_the_limit_says_why_and_sends_nothing(
    billed_app: AppTest, billed_store: JobStore, studio_home: Path
) -> None:
    session = "5f1e2d3c-4b5a-4968-8776-655443322110"
    failed = JobMaker(store=billed_store, home=studio_home).make(
        mode=BILLED,
        cost="0.085",
        status=JobStatus.FAILED,
        session_id=session,
        model="wan2.2-i2v-flash",
        explanation=explain.explain_failure("InternalError", None, limits=LIMITS),
    )
    _spent(billed_store, studio_home, "0.95")
    billed_store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("1")))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = session
    at.run()
    at.button(key=f"job.{failed.id}.try-again").click().run()

    assert billed_store.count_jobs() == 2
    [toast] = [as_read(str(toast.value)) for toast in at.toast]
    assert toast.startswith(
        "This costs $0.085, more than the $0.05 left today; the daily limit resets at midnight"
    )
    assert toast.endswith(")."), toast
    assert not at.exception


def test_what_saving_said_is_shown_once(app: AppTest, store: JobStore) -> None:
    at = _settings(app)
    at.number_input(key="settings.daily_limit").set_value(3.0)
    at.button(key="settings.save_limits").click().run()
    assert "Saved. Billed spend is capped at $3.00 a day." in texts(at)

    at.run()
    assert "Saved." not in texts(at)
    assert at.number_input(key="settings.daily_limit").value == 3.0
    assert not at.exception
