"""A run of the app sums the running totals once, however many places show them."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from studio.service import Studio


@pytest.mark.parametrize("page", ["pages/generate.py", "pages/history.py"])
def test_the_page_and_the_sidebar_share_one_reading_of_the_totals(
    app: AppTest, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    readings: list[str | None] = []
    totals = Studio.totals

    def counted(studio: Studio, session_id: str | None, **options):
        readings.append(session_id)
        return totals(studio, session_id, **options)

    monkeypatch.setattr(Studio, "totals", counted)
    app.switch_page(page).run()
    readings.clear()

    app.run()

    assert len(readings) == 1
    assert not app.exception
