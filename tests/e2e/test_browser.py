"""A new user's first visit, in a real Chromium against ``streamlit run app.py`` in demo mode.

Upload a picture, pick a model and options, generate, watch the video really play, then find the
job and its totals in History. Screenshots of every page go to a new folder in the system's
temporary folder (the run ends by printing where) for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

pytestmark = pytest.mark.browser
# Registers the browser fixtures and their failure-log hook for this module.

# Tall enough that a whole page fits: Streamlit scrolls inside its own container, so a
# full-page screenshot would only capture the viewport.
VIEWPORT = {"width": 1400, "height": 2200}
PROMPT = "A slow push-in on the red balloon as the sun rises"
# From the click to a playable 3 s demo clip; generous for a busy CI machine.
VIDEO_TIMEOUT_MS = 60_000


@pytest.fixture
def page(browser: Browser, streamlit_app: str) -> Iterator[Page]:
    """A fresh browser tab on the app's first page."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)  # a busy machine can take seconds per rerun
    tab = context.new_page()
    tab.goto(streamlit_app)
    expect(tab.get_by_role("heading", name="Generate a video")).to_be_visible()
    yield tab
    context.close()


def picture(path: Path, *, size: tuple[int, int] = (960, 640)) -> Path:
    """A landscape with a sky, hills, a sun and a balloon, so the video has visible motion."""
    width, height = size
    image = Image.new("RGB", size, (120, 170, 230))
    draw = ImageDraw.Draw(image)
    for step in range(0, height // 2, 8):
        draw.rectangle((0, step, width, step + 8), fill=(120 + step // 4, 170, 230 - step // 6))
    draw.ellipse((width * 0.65, height * 0.12, width * 0.8, height * 0.35), fill=(255, 210, 60))
    draw.polygon(
        [
            (0, height),
            (0, height * 0.6),
            (width * 0.4, height * 0.45),
            (width, height * 0.7),
            (width, height),
        ],
        fill=(60, 140, 70),
    )
    draw.ellipse((width * 0.2, height * 0.2, width * 0.3, height * 0.38), fill=(220, 40, 50))
    draw.line(
        (width * 0.25, height * 0.38, width * 0.26, height * 0.55), fill=(40, 40, 40), width=3
    )
    image.save(path)
    return path


def widget(page: Page, key: str) -> Locator:
    """The element of a widget or container by its key (``gen.model`` → ``.st-key-gen-model``)."""
    return page.locator(f".st-key-{key.replace('.', '-')}")


def generate_button(page: Page) -> Locator:
    """The Generate video button."""
    return widget(page, "gen.submit").get_by_role("button", name="Generate video")


def upload(page: Page, path: Path) -> None:
    """Drop a file into the first frame's uploader."""
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(path)


def choose(page: Page, key: str, option: str) -> None:
    """Pick an option of a segmented control and wait until the app has taken it."""
    button = widget(page, key).get_by_role("radio", name=option, exact=True)
    button.click()
    expect(button).to_have_attribute("aria-checked", "true")
    wait_until_idle(page)


def pick(page: Page, key: str, option: str) -> Locator:
    """Open the select box of widget ``key`` and pick ``option``; returns the select box.

    A list that a run redraws while it is open closes again (a CI run once waited 20 s for an
    option that never showed): so it is opened again, up to three times, until the option shows.
    """
    box = widget(page, key).get_by_role("combobox")
    entry = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        box.scroll_into_view_if_needed()
        box.click()
        try:
            entry.click(timeout=5_000)
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")  # closed, should it be open after all
            continue
        expect(box).to_have_value(option)
        return box
    raise AssertionError(f"the list of {key} never offered {option!r}")


def wait_until_idle(page: Page) -> None:
    """Wait until the script has finished its run (only on pages with no ticking fragment)."""
    expect(page.locator('[data-testid="stApp"]')).to_have_attribute(
        "data-test-script-state", "notRunning"
    )


def open_page(page: Page, title: str) -> None:
    """Follow a link of the sidebar navigation and wait for the page's title."""
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    wait_until_idle(page)


def screenshot(page: Page, name: str, folder: Path) -> None:
    """Save the whole tall viewport as ``<folder>/<name>.png`` once its pictures have loaded."""
    page.wait_for_function("() => [...document.images].every((i) => i.complete && i.naturalWidth)")
    page.screenshot(path=folder / f"{name}.png")


def test_upload_generate_play_and_find_it_in_history(
    page: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    upload(page, picture(tmp_path / "balloon.png"))
    frame = widget(page, "frame-image")
    expect(frame.get_by_text("Ready to send.")).to_be_visible()
    expect(frame.get_by_text("balloon.png · PNG · 960×640 px")).to_be_visible()

    pick(page, "gen.model", "Wan 2.1 Turbo")
    # Only Turbo offers 3 s: once it shows, the run that reset the options for Turbo has come.
    expect(widget(page, "gen.duration").get_by_role("radio", name="3 s")).to_be_visible()
    wait_until_idle(page)
    choose(page, "gen.resolution", "480P")
    choose(page, "gen.duration", "3 s")
    prompt = widget(page, "gen.prompt").locator("textarea")
    prompt.fill(PROMPT)
    prompt.press("Tab")  # a text area sends its value when it loses focus
    expect(widget(page, "gen-prompts")).to_contain_text(f"{800 - len(PROMPT)} characters left")

    estimate = widget(page, "gen-estimate")
    expect(estimate).to_contain_text("Demo, not billed: would cost $0.135 · 3 s × $0.045/s")
    expect(estimate).to_contain_text(re.compile(r"\d+×\d+ px, 3 s"))
    expect(generate_button(page)).to_be_enabled()
    wait_until_idle(page)
    screenshot(page, "generate-before", screenshot_dir)

    generate_button(page).click()
    cards = page.locator('[class*="st-key-job-card-"]')
    expect(cards).to_have_count(1)
    card = cards.first
    expect(card).to_contain_text(PROMPT)
    expect(card).to_contain_text("Wan 2.1 Turbo · 480P · 3 s")
    video = card.locator('[data-testid="stVideo"]')
    expect(video).to_be_attached(timeout=VIDEO_TIMEOUT_MS)
    expect(card).to_contain_text("Done")
    # When the job ends, the page runs once more to update the sidebar; play after that run.
    expect(widget(page, "sidebar-totals")).to_contain_text("This session: 1 video, would have")
    wait_until_idle(page)

    video.evaluate("async (v) => { v.muted = true; await v.play(); }")
    page.wait_for_function(
        "(v) => v.readyState >= 2 && v.videoWidth > 0 && !v.error", arg=video.element_handle()
    )
    started_at = video.evaluate("(v) => v.currentTime")
    page.wait_for_function(
        "([v, start]) => v.currentTime >= start + 0.5 && !v.paused",
        arg=[video.element_handle(), started_at],
        timeout=10_000,
    )
    assert video.evaluate("(v) => Math.round(v.duration)") == 3
    expect(card.get_by_role("button", name="Download video")).to_be_visible()
    screenshot(page, "generate-after", screenshot_dir)

    open_page(page, "History")
    table = widget(page, "history-table")
    expect(table.locator('[data-testid="stDataFrame"]')).to_be_visible()
    # The grid draws on a canvas but keeps an accessible copy of its cells in the page.
    expect(table).to_contain_text(PROMPT)
    expect(table).to_contain_text("Wan 2.1 Turbo")
    totals = widget(page, "history-totals")
    for slice_name in ("This session", "Today", "All time"):
        expect(totals.get_by_test_id("stMetric").filter(has_text=slice_name)).to_contain_text(
            "1 demo video"
        )
    jobs = widget(page, "hist.open").get_by_role("combobox")
    jobs.click()
    expect(page.get_by_role("option", name=re.compile(re.escape(PROMPT)))).to_have_count(1)
    page.keyboard.press("Escape")
    screenshot(page, "history", screenshot_dir)

    open_page(page, "Models & prices")
    expect(widget(page, "prices-table")).to_contain_text("Wan 2.1 Turbo")
    expect(widget(page, "prices-table")).to_contain_text("3–5\u00a0s")
    expect(widget(page, "prices-notes")).to_contain_text("that is Pixazo's price")
    screenshot(page, "models-and-prices", screenshot_dir)

    open_page(page, "Settings")
    expect(page.get_by_text("Demo mode").first).to_be_visible()
    paths = widget(page, "settings-paths")
    expect(paths.locator("code").filter(has_text="https://gateway.pixazo.ai")).to_have_count(1)
    expect(paths.locator('a[href*="gateway"], a[href*="127.0.0.1"]')).to_have_count(0)
    screenshot(page, "settings", screenshot_dir)


def test_invalid_images_get_a_clear_message_and_no_generate(
    page: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list: eggs, milk, bread\n")
    upload(page, not_an_image)
    frame = widget(page, "frame-image")
    expect(frame).to_contain_text("This file is not an image this app can read")
    expect(generate_button(page)).to_be_disabled()
    expect(widget(page, "gen-blockers")).to_contain_text("Add a first frame")
    screenshot(page, "generate-not-an-image", screenshot_dir)

    upload(page, picture(tmp_path / "tiny.png", size=(200, 150)))
    expect(frame).to_contain_text(
        "200×150 px: the video service needs at least 360 px on each side."
    )
    expect(frame.get_by_role("button", name="Fix it")).to_be_visible()
    expect(frame.get_by_text("Ready to send.")).to_have_count(0)
    expect(generate_button(page)).to_be_disabled()
    expect(widget(page, "gen-blockers")).to_contain_text("Your first frame needs a fix")
    # The preview is never blown up past the picture's own size.
    preview = frame.locator('[data-testid="stImage"] img')
    expect(preview).to_be_visible()
    page.wait_for_function("(i) => i.complete && i.naturalWidth", arg=preview.element_handle())
    assert preview.evaluate("(i) => i.getBoundingClientRect().width <= i.naturalWidth")
    screenshot(page, "generate-too-small", screenshot_dir)
