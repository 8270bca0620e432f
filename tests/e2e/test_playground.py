"""The Generate page as a playground, in Chromium at laptop, small laptop and phone sizes.

After the click the new job's card is on screen without scrolling; a portrait clip fits the window
with its controls; on a phone the mode and the running total are said under the title, the sidebar
closes after choosing a page, and History lists jobs without a table that scrolls sideways. A job
that ends while the user is on another page says so there, and in the tab's title. Screenshots of
each step go to the run's screenshot folder (outside the source tree).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.test_browser import (
    VIDEO_TIMEOUT_MS,
    choose,
    generate_button,
    pick,
    picture,
    screenshot,
    upload,
    wait_until_idle,
    widget,
)

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
SMALL_LAPTOP = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}
# Streamlit closes its sidebar after a page is chosen on a device whose browser says it is a
# phone; a narrow desktop window keeps it open.
PHONE_BROWSER = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)


@contextmanager
def _tab(
    browser: Browser, url: str, viewport: dict[str, int], *, user_agent: str | None = None
) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport, user_agent=user_agent)  # type: ignore[arg-type]
    context.set_default_timeout(20_000)
    expect.set_options(timeout=20_000)
    tab = context.new_page()
    tab.goto(url)
    expect(tab.get_by_role("heading", name="Generate a video")).to_be_visible(timeout=30_000)
    yield tab
    context.close()


def _quick_clip(page: Page, frame: Path) -> None:
    """A portrait frame and the quickest clip: Turbo, 480P, 3 s."""
    upload(page, frame)
    expect(widget(page, "frame-image").get_by_text("Ready to send.")).to_be_visible()
    wait_until_idle(page)
    pick(page, "gen.model", "Wan 2.1 Turbo")
    expect(widget(page, "gen.duration").get_by_role("radio", name="3 s")).to_be_visible()
    wait_until_idle(page)
    choose(page, "gen.resolution", "480P")
    choose(page, "gen.duration", "3 s")


# A card's border and inner padding (1 rem) may sit under an edge of the window while all of its
# content shows: when the page is scrolled to its end, the sticky result column can be pushed up
# by a few pixels.
CARD_PADDING_PX = 16


def _within_window(page: Page, element: Locator, *, slack: float = 0) -> None:
    """The element's box is inside the window (give or take ``slack`` px), without scrolling."""
    box = element.bounding_box()
    window = page.viewport_size
    assert box is not None
    assert window is not None
    assert box["y"] >= -slack, box
    assert box["y"] + box["height"] <= window["height"] + slack, (box, window)
    assert box["x"] >= -slack, box
    assert box["x"] + box["width"] <= window["width"] + slack, (box, window)


# Counts every change to the page that leaves a job card in a result column that does not stay
# in view: the column must keep its place from the card's first moment to its last.
_WATCH_THE_RESULT_COLUMN = """
() => {
  window.resultColumnLetGo = 0;
  window.resultColumnSeen = 0;
  const check = () => {
    const column = document.querySelector('[data-testid="stColumn"]:has(.st-key-gen-result)');
    const card = document.querySelector('[class*="st-key-job-card-"]');
    if (column && card) {
      window.resultColumnSeen += 1;
      if (getComputedStyle(column).position !== "sticky") window.resultColumnLetGo += 1;
    }
  };
  new MutationObserver(check).observe(document.body, {
    childList: true, subtree: true, attributes: true, characterData: true,
  });
}
"""


@pytest.mark.parametrize(("viewport", "name"), [(LAPTOP, "1440x900"), (SMALL_LAPTOP, "1280x720")])
def test_the_new_card_is_on_screen_after_the_click_and_a_portrait_clip_fits(
    browser: Browser,
    streamlit_app: str,
    tmp_path: Path,
    screenshot_dir: Path,
    viewport: dict[str, int],
    name: str,
) -> None:
    with _tab(browser, streamlit_app, viewport) as page:
        _quick_clip(page, picture(tmp_path / "portrait.png", size=(640, 960)))
        screenshot(page, f"playground-{name}-1-ready", screenshot_dir)
        generate_button(page).scroll_into_view_if_needed()
        page.evaluate(_WATCH_THE_RESULT_COLUMN)
        generate_button(page).click()

        card = page.locator('[class*="st-key-job-card-"]')
        expect(card).to_have_count(1)
        expect(card).to_contain_text("Wan 2.1 Turbo · 480P · 3 s")
        _within_window(page, card, slack=CARD_PADDING_PX)
        screenshot(page, f"playground-{name}-2-clicked", screenshot_dir)

        video = card.locator("video")
        expect(video).to_be_attached(timeout=VIDEO_TIMEOUT_MS)
        expect(card).to_contain_text("took")
        wait_until_idle(page)
        page.wait_for_function("(v) => v.videoHeight > 0", arg=video.element_handle())
        # A portrait clip: its player, controls at its bottom edge included, fits the window.
        _within_window(page, video)
        box = video.bounding_box()
        assert box is not None
        assert box["height"] > box["width"]
        expect(card.get_by_role("button", name="Download video")).to_be_visible()
        screenshot(page, f"playground-{name}-3-done", screenshot_dir)
        # The watch saw the card in its column (so its selectors still match the page) ...
        assert page.evaluate("window.resultColumnSeen") > 0
        # ... and never in a column that scrolled away.
        assert page.evaluate("window.resultColumnLetGo") == 0


def test_a_phone_shows_the_mode_and_reaches_pages_without_a_sidebar_in_the_way(
    browser: Browser, streamlit_app: str, tmp_path: Path, screenshot_dir: Path
) -> None:
    with _tab(browser, streamlit_app, PHONE, user_agent=PHONE_BROWSER) as page:
        mode_line = widget(page, "mode-line")
        expect(mode_line).to_contain_text("Demo mode, nothing is billed")
        _within_window(page, mode_line)
        expect(page.locator('[data-testid="stSidebarContent"]')).not_to_be_in_viewport()
        screenshot(page, "phone-1-generate", screenshot_dir)

        _quick_clip(page, picture(tmp_path / "portrait.png", size=(640, 960)))
        generate_button(page).scroll_into_view_if_needed()
        generate_button(page).click()
        card = page.locator('[class*="st-key-job-card-"]')
        expect(card.locator("video")).to_be_attached(timeout=VIDEO_TIMEOUT_MS)
        wait_until_idle(page)
        expect(mode_line).to_contain_text("this session: 1 video, would have cost $0.135")
        screenshot(page, "phone-2-done", screenshot_dir)

        page.locator('[data-testid="stExpandSidebarButton"]').click()
        links = page.locator('[data-testid="stSidebarNavLink"]')
        expect(links.first).to_be_in_viewport()
        screenshot(page, "phone-3-sidebar-open", screenshot_dir)
        links.filter(has_text="History").click()
        expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
        wait_until_idle(page)
        # The sidebar closed by itself: the page is there to read.
        expect(links.first).not_to_be_in_viewport()
        expect(widget(page, "mode-line")).to_be_in_viewport()

        # A list a phone reads without sideways scrolling, in place of the wide table.
        expect(widget(page, "history-wide")).to_be_hidden()
        row = widget(page, "history-narrow").locator('[class*="st-key-history-row-"]')
        expect(row).to_have_count(1)
        expect(row).to_contain_text("Wan 2.1 Turbo · Done · free (demo)")
        row_box = row.bounding_box()
        assert row_box is not None
        assert row_box["x"] + row_box["width"] <= PHONE["width"]
        screenshot(page, "phone-4-history", screenshot_dir)


def test_a_job_that_ends_on_another_page_says_so_there_and_in_the_title(
    browser: Browser, streamlit_app: str, tmp_path: Path, screenshot_dir: Path
) -> None:
    with _tab(browser, streamlit_app, LAPTOP) as page:
        _quick_clip(page, picture(tmp_path / "landscape.png"))
        generate_button(page).click()
        expect(page.locator('[class*="st-key-job-card-"]')).to_have_count(1)
        page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Models & prices").click()
        expect(page.get_by_role("heading", name="Models & prices", exact=True)).to_be_visible()

        toast = page.locator('[data-testid="stToast"]').filter(has_text="Your video is ready")
        expect(toast).to_be_visible(timeout=VIDEO_TIMEOUT_MS)
        expect(page).to_have_title("✓ Done · Wan Studio")
        screenshot(page, "elsewhere-1-done-toast", screenshot_dir)

        # The user's next step clears the mark.
        page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="History").click()
        expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
        expect(page).to_have_title("Wan Studio")
