"""Every page passes axe-core's WCAG 2 A and AA rules, in demo and billed mode, laptop and phone.

Each mode gets one app server with a finished job in it, so the job cards, the History table and
the totals are on the pages that axe looks at, not only their empty states.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Page, expect

from simulator import RunningSimulator, start
from tests.e2e.test_browser import wait_until_idle
from tests.plugins.browser import APP, StreamlitServer, app_environment, app_workdir
from tests.plugins.simulator import TEST_KEY, TEST_SPEED

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# The app's pages by their address, with the heading each one opens with.
PAGES = {
    "": "Generate a video",
    "history": "History",
    "compare": "Compare clips",
    "models": "Models & prices",
    "settings": "Settings",
}
WCAG_A_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa"]}}
BLOCKING_IMPACTS = {"serious", "critical"}
# A busy machine can take seconds per rerun.
WAIT_MS = 30_000


@pytest.fixture(autouse=True)
def patient_expectations() -> None:
    """Give every ``expect`` in this module time for a loaded machine."""
    expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def sample_picture(tmp_path: Path) -> Path:
    """A 960×640 landscape with a sun and a balloon."""
    image = Image.new("RGB", (960, 640), (120, 170, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 400, 960, 640), fill=(60, 140, 70))
    draw.ellipse((620, 80, 770, 230), fill=(255, 210, 60))
    draw.ellipse((190, 130, 290, 240), fill=(220, 40, 50))
    path = tmp_path / "landscape.png"
    image.save(path)
    return path


def save_screenshot(page: Page, name: str, folder: Path) -> None:
    """The viewport as ``<name>.png``, for a person to see what axe looked at."""
    page.screenshot(path=folder / f"{name}.png")


@pytest.fixture(scope="module")
def billed_gateway() -> Iterator[RunningSimulator]:
    """A local gateway that takes the test key, standing in for the real one in billed mode."""
    with start(speed=TEST_SPEED, key=TEST_KEY) as running:
        yield running


def start_app(tmp_path: Path, *, extra_env: dict[str, str] | None = None) -> StreamlitServer:
    """``streamlit run app.py`` on a fresh data folder, healthy."""
    env = app_environment(home=tmp_path / "studio-home") | (extra_env or {})
    server = StreamlitServer(
        script=APP, workdir=app_workdir(tmp_path), env=env, log_path=tmp_path / "streamlit.log"
    )
    try:
        server.wait_healthy()
    except RuntimeError:
        server.stop()
        raise
    return server


def make_a_video(page: Page, base_url: str, image: Path) -> None:
    """One job through the Generate page, waited for until its player is there."""
    page.goto(base_url)
    expect(page.get_by_role("heading", name="Generate a video")).to_be_visible()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(image)
    expect(page.get_by_text("Ready to send.")).to_be_visible()
    page.locator(".st-key-gen-submit").get_by_role("button").first.click()
    expect(page.locator('[data-testid="stVideo"]').first).to_be_attached(timeout=90_000)


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical WCAG 2 A/AA violations on the page, one line each.

    axe reads colours as they are at one moment, and text caught fading or moving reads as low
    contrast. So when it finds something, it looks again once the page has settled, and that
    look is the answer: a real problem is still there.
    """
    if not _blocking_violations(page):
        return []
    settle(page)
    return _blocking_violations(page)


def _blocking_violations(page: Page) -> list[str]:
    results = Axe().run(page, options=WCAG_A_AA).response
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["html"][:160] for node in violation["nodes"][:3])
        for violation in results["violations"]
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def settle(page: Page) -> None:
    """Wait until the script's run has ended and nothing on the page is faded or moving."""
    wait_until_idle(page)
    # What the run left behind has gone, and what was faded has finished fading back in; a
    # spinner turns for as long as its job runs, so endless animations do not count.
    expect(page.locator('[data-stale="true"]')).to_have_count(0)
    page.wait_for_function(
        """() => document.getAnimations().every((animation) =>
             animation.playState !== 'running'
             || animation.effect?.getTiming().iterations === Infinity)"""
    )


def check_every_page(
    browser: Browser, base_url: str, *, mode: str, screenshot_dir: Path
) -> dict[str, list[str]]:
    """Open each page at both widths and collect what axe finds, keyed by page and width."""
    found: dict[str, list[str]] = {}
    for width_name, viewport in (("laptop", LAPTOP), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport)
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        for address, heading in PAGES.items():
            page.goto(f"{base_url}/{address}")
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            expect(page.locator('[data-testid="stApp"]')).to_have_attribute(
                "data-test-script-state", "notRunning"
            )
            # Widgets whose code is still loading stand as skeletons: axe must see the real ones.
            expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0)
            name = f"axe-{mode}-{width_name}-{address or 'generate'}"
            save_screenshot(page, name, screenshot_dir)
            if violations := serious_violations(page):
                found[name] = violations
        context.close()
    return found


def test_every_page_in_demo_mode_has_no_serious_violation(
    browser: Browser, tmp_path: Path, sample_picture: Path, screenshot_dir: Path
) -> None:
    server = start_app(tmp_path)
    try:
        context = browser.new_context(viewport=LAPTOP)
        make_a_video(context.new_page(), server.url, sample_picture)
        context.close()
        assert (
            check_every_page(browser, server.url, mode="demo", screenshot_dir=screenshot_dir) == {}
        )
    finally:
        server.stop()


def test_every_page_in_billed_mode_has_no_serious_violation(
    browser: Browser,
    tmp_path: Path,
    sample_picture: Path,
    billed_gateway: RunningSimulator,
    screenshot_dir: Path,
) -> None:
    server = start_app(
        tmp_path,
        extra_env={"PIXAZO_API_KEY": TEST_KEY, "PIXAZO_BASE_URL": billed_gateway.url},
    )
    try:
        context = browser.new_context(viewport=LAPTOP)
        make_a_video(context.new_page(), server.url, sample_picture)
        context.close()
        assert (
            check_every_page(browser, server.url, mode="billed", screenshot_dir=screenshot_dir)
            == {}
        )
    finally:
        server.stop()
