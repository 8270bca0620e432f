"""No dead ends on Generate, in Chromium: a kept-aside last frame, a GIF upload, Enter on a link,
and a reload that keeps the draft. Screenshots of each step go to the screenshot folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from pytest_httpserver import HTTPServer

from tests.e2e.test_browser import (
    VIEWPORT,
    generate_button,
    pick,
    picture,
    screenshot,
    upload,
    wait_until_idle,
    widget,
)
from tests.plugins.browser import APP, StreamlitServer, app_environment, app_workdir

pytestmark = pytest.mark.browser


def _tab(browser: Browser, url: str) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    tab = context.new_page()
    tab.goto(url)
    expect(tab.get_by_role("heading", name="Generate a video")).to_be_visible()
    yield tab
    context.close()


@pytest.fixture
def page(browser: Browser, streamlit_app: str) -> Iterator[Page]:
    """A fresh browser tab on the app's first page."""
    yield from _tab(browser, streamlit_app)


def _choose_model(page: Page, label: str) -> None:
    pick(page, "gen.model", label)
    wait_until_idle(page)


def _animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (640, 480), colour) for colour in ("red", "lime", "blue")]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_switching_away_from_keyframes_never_blocks(
    page: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    upload(page, picture(tmp_path / "start.png"))
    expect(widget(page, "frame-image").get_by_text("Ready to send.")).to_be_visible()
    _choose_model(page, "Wan 2.1 Keyframes")
    last = widget(page, "frame-last_frame")
    last.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        picture(tmp_path / "end.png")
    )
    expect(last.get_by_text("end.png · PNG")).to_be_visible()
    expect(generate_button(page)).to_be_enabled()
    screenshot(page, "keyframes-both-frames", screenshot_dir)

    _choose_model(page, "Wan 2.2 Flash")
    expect(widget(page, "frame-last_frame")).to_have_count(0)
    expect(page.get_by_text("animates a first frame only")).to_have_count(0)
    expect(generate_button(page)).to_be_enabled()
    screenshot(page, "keyframes-switched-to-flash", screenshot_dir)

    _choose_model(page, "Wan 2.1 Keyframes")
    expect(widget(page, "frame-last_frame").get_by_text("end.png · PNG")).to_be_visible()
    expect(generate_button(page)).to_be_enabled()


def test_a_gif_upload_is_converted_with_a_note(
    page: Page, tmp_path: Path, screenshot_dir: Path
) -> None:
    uploader = widget(page, "gen.image.upload")
    expect(uploader).to_contain_text("25MB per file")  # Streamlit's own words for the limit
    expect(widget(page, "frame-image")).to_contain_text("Files up to 25 MB.")
    upload(page, _animated_gif(tmp_path / "loop.gif"))
    frame = widget(page, "frame-image")
    expect(frame.get_by_text("loop.gif · GIF · 640×480 px")).to_be_visible()
    expect(frame.get_by_text("This is an animation; only its first frame is used.")).to_be_visible()
    screenshot(page, "gif-upload", screenshot_dir)
    frame.get_by_role("button", name="Fix it").click()
    expect(frame.get_by_text("Converted GIF to", exact=False)).to_be_visible()
    expect(generate_button(page)).to_be_enabled()
    screenshot(page, "gif-converted", screenshot_dir)


@pytest.fixture
def app_trusting(tmp_path: Path, httpserver: HTTPServer) -> Iterator[str]:
    """The app, trusting a local image server (as an internal image host would be)."""
    env = app_environment(home=tmp_path / "studio-home")
    env["WAN_STUDIO_TRUSTED_IMAGE_HOSTS"] = f"{httpserver.host}:{httpserver.port}"
    server = StreamlitServer(
        script=APP, workdir=app_workdir(tmp_path), env=env, log_path=tmp_path / "streamlit.log"
    )
    try:
        server.wait_healthy()
        yield server.url
    finally:
        server.stop()


def test_enter_in_the_link_field_fetches_the_link(
    browser: Browser,
    app_trusting: str,
    httpserver: HTTPServer,
    tmp_path: Path,
    screenshot_dir: Path,
) -> None:
    httpserver.expect_request("/hills.png").respond_with_data(
        picture(tmp_path / "hills.png").read_bytes(), content_type="image/png"
    )
    for page in _tab(browser, app_trusting):
        frame = widget(page, "frame-image")
        frame.get_by_role("tab", name="Link").click()
        link = widget(page, "gen.image.link").locator("input")
        link.fill(httpserver.url_for("/hills.png"))
        link.press("Enter")
        expect(frame.get_by_text("hills.png · PNG · 960×640 px")).to_be_visible()
        expect(frame.get_by_text("Ready to send.")).to_be_visible()
        assert len(httpserver.log) == 1
        screenshot(page, "link-fetched-on-enter", screenshot_dir)


def test_a_reload_keeps_the_draft(page: Page, tmp_path: Path, screenshot_dir: Path) -> None:
    upload(page, picture(tmp_path / "balloon.png"))
    expect(widget(page, "frame-image").get_by_text("Ready to send.")).to_be_visible()
    _choose_model(page, "Wan 2.1 Turbo")
    prompt = widget(page, "gen.prompt").locator("textarea")
    prompt.fill("the balloon drifts up")
    prompt.press("Tab")  # a text area sends its value when it loses focus
    expect(widget(page, "gen-prompts")).to_contain_text(f"{800 - 21} characters left")
    wait_until_idle(page)
    address = page.url
    assert "session=" in address

    page.reload()
    expect(page.get_by_role("heading", name="Generate a video")).to_be_visible()
    assert page.url == address
    expect(widget(page, "gen.prompt").locator("textarea")).to_have_value("the balloon drifts up")
    expect(widget(page, "gen.model").get_by_role("combobox")).to_have_value("Wan 2.1 Turbo")
    expect(
        widget(page, "frame-image").get_by_text("balloon.png · PNG · 960×640 px")
    ).to_be_visible()
    expect(generate_button(page)).to_be_enabled()
    screenshot(page, "after-reload", screenshot_dir)
