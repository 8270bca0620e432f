"""The Generate form blocked by a spending limit, in a real Chromium against ``streamlit run``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from simulator import RunningSimulator
from studio.records import JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.browser import APP as APP_SCRIPT
from tests.plugins.browser import StreamlitServer, app_environment, app_workdir
from tests.unit.test_store import new_job_fields

pytestmark = pytest.mark.browser

BILLED_KEY = "pz-browser-limit-key-0123456789"


@pytest.fixture
def capped_app(
    tmp_path: Path,
    start_simulator: Callable[..., RunningSimulator],
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """The app billed to a local gateway, $0.85 spent today under a $1 daily limit."""
    gateway = start_simulator(key=BILLED_KEY)
    home = tmp_path / "studio-home"
    with JobStore.open(sqlite_url(home / "studio.db")) as store:
        spent, _ = store.create_job(**new_job_fields(estimate_usd=Decimal("0.85")))
        store.update(spent.id, status=JobStatus.SUCCEEDED, cost_usd=Decimal("0.85"))
    env = app_environment(home=home) | {
        "PIXAZO_API_KEY": BILLED_KEY,
        "PIXAZO_BASE_URL": gateway.url,
        "WAN_STUDIO_DAILY_LIMIT_USD": "1",
    }
    server = StreamlitServer(
        script=APP_SCRIPT,
        workdir=app_workdir(tmp_path),
        env=env,
        log_path=tmp_path / "streamlit.log",
    )
    try:
        server.wait_healthy()
        yield server.url
    finally:
        server.stop()


@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)], ids=["wide", "phone"])
def test_a_price_over_the_limit_blocks_generate_with_the_amount_left_and_the_reset(
    browser: Browser, capped_app: str, screenshot_dir: Path, viewport: tuple[int, int]
) -> None:
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(30_000)
    page: Page = context.new_page()
    try:
        page.goto(capped_app)
        # Wan 2.2 Plus at 1080P, 5 s: $0.750, and $0.15 is left today.
        refusal = page.locator(".st-key-gen-over-limit")
        expect(refusal).to_contain_text(
            "This costs $0.750, more than the $0.15 left today; the daily limit resets at "
            "midnight (in ",
            timeout=60_000,
        )
        expect(page.locator(".st-key-gen-spending")).to_contain_text("$0.15 left today")
        button = page.get_by_role("button", name="Generate video")
        expect(button).to_be_disabled()
        refusal.scroll_into_view_if_needed()
        page.screenshot(path=screenshot_dir / f"spending-limit-blocked-{width}.png")
    finally:
        context.close()
