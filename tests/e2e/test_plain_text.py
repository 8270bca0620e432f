"""In a real Chromium, a hostile prompt and gateway message are text: no image, link or colour.

The job is written into the data folder of ``streamlit run app.py`` before the page opens; the
Generate page shows it as this session's card and History shows it opened.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from studio.images import ImageLibrary
from studio.records import BILLED, JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.images import image_bytes, prepare_image

pytestmark = pytest.mark.browser

SESSION_ID = "8c1f5e2a-3b4d-4e6f-8a9b-0c1d2e3f4a5b"
PIXEL = "http://127.0.0.1:9/pixel.png"
HOSTILE = f"![x]({PIXEL}) [link](https://example.com) :red[red] **bold** <b>html</b>"
GATEWAY_SAYS = "[Top up here](https://example.com/pay) :green[paid]"


@pytest.fixture
def hostile_job(streamlit_app: str, tmp_path: Path) -> int:
    """A failed job of ``SESSION_ID`` whose prompt, image name and gateway message attack."""
    home = tmp_path / "studio-home"
    prepared = prepare_image(image_bytes(640, 400, "JPEG"), filename="frame.jpg")
    sha = ImageLibrary(home).save(prepared.data, format=prepared.format)
    store = JobStore.open(sqlite_url(home / "studio.db"))
    try:
        job, _ = store.create_job(
            submission_id=str(uuid.uuid4()),
            mode=BILLED,
            session_id=SESSION_ID,
            model="wan2.2-i2v-flash",
            resolution="480P",
            duration=5,
            prompt=HOSTILE,
            negative_prompt="",
            prompt_extend=False,
            watermark=False,
            seed=1,
            image_sha256=sha,
            image_source="[me](https://example.com).jpg",
            last_frame_sha256=None,
            estimate_usd=Decimal("0.1"),
            output_width=832,
            output_height=512,
            key_fingerprint=None,
            request_json=None,
        )
        store.update(
            job.id,
            status=JobStatus.FAILED,
            error_code="InvalidParameter",
            error_message=GATEWAY_SAYS,
        )
    finally:
        store.close()
    return job.id


@pytest.fixture
def page(browser: Browser, streamlit_app: str, hostile_job: int) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 2200})
    context.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    tab = context.new_page()
    yield tab
    context.close()


def main_text(page: Page) -> str:
    """What a reader sees in the main area; the invisible word joiners are left out."""
    return page.locator('[data-testid="stMain"]').inner_text().replace("\u2060", "")


def _assert_shown_as_text(page: Page) -> None:
    main = page.locator('[data-testid="stMain"]')
    shown = main_text(page)
    assert HOSTILE in shown
    assert GATEWAY_SAYS in shown
    assert page.locator(f'img[src="{PIXEL}"]').count() == 0
    assert page.locator('a[href^="https://example.com"]').count() == 0
    assert main.locator("b, strong").filter(has_text="html").count() == 0
    assert main.locator("strong").filter(has_text="bold").count() == 0


def test_a_hostile_prompt_is_text_on_the_card_and_in_history(
    page: Page, streamlit_app: str, hostile_job: int
) -> None:
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))

    page.goto(f"{streamlit_app}/?session={SESSION_ID}")
    card = page.locator(f".st-key-job-card-{hostile_job}")
    expect(card.get_by_text("The video service said", exact=False)).to_be_visible()
    _assert_shown_as_text(page)

    page.goto(f"{streamlit_app}/history?session={SESSION_ID}")
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    page.locator(".st-key-hist-open").get_by_role("combobox").click()
    page.get_by_role("option").first.click()
    expect(page.locator(".st-key-history-open").get_by_text("Prompt", exact=True)).to_be_visible()
    _assert_shown_as_text(page)
    assert "[me](https://example.com).jpg" in main_text(page)
    assert not [url for url in asked if url.startswith(PIXEL)]
