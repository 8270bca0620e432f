"""Variations in Chromium: a batch of four fills its grid with four playable videos at 1440×900,
the form and the batch's line work at 390×844, History lists the batch, and axe-core finds no
serious violation on Generate with the variations control open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_accessibility import serious_violations, settle
from tests.e2e.test_browser import (
    VIDEO_TIMEOUT_MS,
    choose,
    pick,
    picture,
    screenshot,
    upload,
    wait_until_idle,
    widget,
)
from tests.plugins.engine import CATALOG

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000
FLASH = CATALOG.model("wan2.2-i2v-flash")


@contextmanager
def _tab(browser: Browser, url: str, viewport: dict[str, int]) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    tab = context.new_page()
    tab.goto(url)
    expect(tab.get_by_role("heading", name="Generate a video")).to_be_visible()
    yield tab
    context.close()


def _how_many(page: Page, choice: str) -> None:
    """Pick an entry of "How many clips?" and wait until the app has taken it."""
    pick(page, "gen.variations", choice)
    # The run that took the choice has ended, and nothing is fading (axe reads colours).
    settle(page)


def _quick_takes(page: Page, frame: Path) -> None:
    """A frame, the quickest clip (Wan 2.2 Flash at 480P), and four takes."""
    upload(page, frame)
    expect(widget(page, "frame-image").get_by_text("Ready to send.")).to_be_visible()
    wait_until_idle(page)
    pick(page, "gen.model", FLASH.label)
    # The run that puts Flash's options in place has come once its description shows. Waiting
    # for the app to be idle alone can pass before that run starts; a resolution clicked during
    # it is then set back to Flash's default by the run's own answer.
    expect(widget(page, "gen-model-options")).to_contain_text(FLASH.description)
    wait_until_idle(page)
    choose(page, "gen.resolution", "480P")
    _how_many(page, "Several takes (different seeds)")


def test_a_batch_of_four_fills_its_grid_with_four_playable_videos(
    browser: Browser, streamlit_app: str, tmp_path: Path, screenshot_dir: Path
) -> None:
    with _tab(browser, streamlit_app, LAPTOP) as page:
        _quick_takes(page, picture(tmp_path / "balloon.png"))
        estimate = widget(page, "gen-estimate")
        expect(estimate).to_contain_text("Demo, not billed: would cost 4 × $0.085 = $0.340")
        expect(estimate).to_contain_text("4 clips, 20 seconds of video")
        button = widget(page, "gen.submit").get_by_role("button", name="Generate 4 clips")
        expect(button).to_be_in_viewport()
        screenshot(page, "variations-laptop-1-ready", screenshot_dir)

        button.click()
        grid = page.locator('[class*="st-key-batch-grid-"]')
        expect(grid).to_be_visible()
        expect(grid.locator('[class*="st-key-job-card-"]')).to_have_count(4)
        expect(grid.locator('[class*="st-key-job-card-"]').first).to_be_in_viewport()
        screenshot(page, "variations-laptop-2-generating", screenshot_dir)

        videos = grid.locator('[data-testid="stVideo"]')
        expect(videos).to_have_count(4, timeout=VIDEO_TIMEOUT_MS)
        batch = page.locator('[class*="st-key-batch-"]').first
        expect(batch).to_contain_text("4 clips · 4 done")
        expect(batch).to_contain_text("Demo, not billed: would have cost $0.340")
        wait_until_idle(page)
        for index in range(4):
            video = videos.nth(index)
            video.evaluate("async (v) => { v.muted = true; await v.play(); }")
            page.wait_for_function(
                "(v) => v.readyState >= 2 && v.videoWidth > 0 && !v.error && !v.paused",
                arg=video.element_handle(),
            )
        screenshot(page, "variations-laptop-3-done", screenshot_dir)
        # The last card of the grid can be scrolled into the window, player and all.
        last = videos.nth(3)
        last.scroll_into_view_if_needed()
        expect(last).to_be_in_viewport(ratio=1)
        screenshot(page, "variations-laptop-4-last-clip", screenshot_dir)


def test_on_a_phone_the_form_and_the_batch_line_work(
    browser: Browser, streamlit_app: str, tmp_path: Path, screenshot_dir: Path
) -> None:
    with _tab(browser, streamlit_app, PHONE) as page:
        _quick_takes(page, picture(tmp_path / "balloon.png"))
        takes = widget(page, "gen.takes").locator("input")
        takes.fill("2")
        takes.press("Enter")
        button = widget(page, "gen.submit").get_by_role("button", name="Generate 2 clips")
        expect(button).to_be_visible()
        expect(widget(page, "gen-estimate")).to_contain_text("2 × $0.085 = $0.170")
        button.scroll_into_view_if_needed()
        screenshot(page, "variations-phone-1-ready", screenshot_dir)

        button.click()
        batch = page.locator('[class*="st-key-batch-"]').first
        expect(batch).to_contain_text("2 clips")
        expect(page.locator('[class*="st-key-batch-grid-"] [data-testid="stVideo"]')).to_have_count(
            2, timeout=VIDEO_TIMEOUT_MS
        )
        expect(batch).to_contain_text("2 clips · 2 done")
        batch.scroll_into_view_if_needed()
        screenshot(page, "variations-phone-2-done", screenshot_dir)
        wait_until_idle(page)

        page.goto(f"{streamlit_app}/history")
        expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
        page.get_by_text("Made together").click()
        row = page.locator('[class*="st-key-history-batch-"]').first
        expect(row).to_contain_text("Several takes (different seeds)")
        expect(row).to_contain_text("2 clips · 2 done · Demo, not billed: would have cost $0.170")
        # Readable on a phone: nothing in the list is wider than the window.
        assert row.evaluate("(r) => r.scrollWidth <= r.clientWidth + 1")
        row.get_by_role("button", name="Show these clips").click()
        expect(widget(page, "history-table")).to_contain_text("2 jobs, newest first")
        screenshot(page, "variations-phone-3-history", screenshot_dir)


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_generate_with_the_variations_control_open_has_no_serious_violation(
    browser: Browser,
    streamlit_app: str,
    tmp_path: Path,
    screenshot_dir: Path,
    viewport: dict[str, int],
) -> None:
    with _tab(browser, streamlit_app, viewport) as page:
        upload(page, picture(tmp_path / "balloon.png"))
        expect(widget(page, "frame-image").get_by_text("Ready to send.")).to_be_visible()
        found = {}
        for choice in ("Several takes (different seeds)", "A few prompts, one clip each"):
            _how_many(page, choice)
            found[choice] = serious_violations(page)
        _how_many(page, "Compare models (2 or 3)")
        expect(widget(page, "gen.compare_models")).to_be_visible()
        found["models"] = serious_violations(page)
        screenshot(page, f"variations-axe-{viewport['width']}", screenshot_dir)
        assert found == {choice: [] for choice in found}
