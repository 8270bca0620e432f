"""A page's address opened first thing on a freshly started server opens that page in the app.

Before the app has run once, Streamlit runs a page's file alone (its older pages-folder mode):
no sidebar totals, no mode badge, Streamlit's own page list. A bookmark or a shared Compare link
right after a restart must look like every other visit.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(
    ("address", "heading"), [("history", "History"), ("models", "Models & prices")]
)
def test_a_first_visit_straight_to_a_page_gets_the_whole_app(
    browser: Browser, streamlit_app: str, address: str, heading: str
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(30_000)
    try:
        tab = context.new_page()
        tab.goto(f"{streamlit_app}/{address}")

        expect(tab.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        sidebar = tab.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Demo mode — nothing is billed")).to_be_visible()
        expect(sidebar.get_by_role("link", name="Models & prices")).to_be_visible()
        expect(tab.get_by_text("Page not found")).to_have_count(0)
        assert tab.url.rstrip("/").endswith(f"/{address}") or f"/{address}?" in tab.url
    finally:
        context.close()
