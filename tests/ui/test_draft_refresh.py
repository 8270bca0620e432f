"""A browser refresh keeps the draft: frames, prompt and options come back from the store."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from studio.store import JobStore, sqlite_url
from tests.plugins.images import image_bytes
from tests.ui.conftest import APP, texts, upload


def _refreshed(session_id: str) -> AppTest:
    """A new browser session on the same address, as a reload makes."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = session_id
    return at.run()


def test_a_refresh_brings_back_frames_prompt_and_options(app: AppTest, studio_home: Path) -> None:
    app.selectbox(key="gen.model").set_value("wan2.1-kf2v-plus").run()
    upload(app, image_bytes(500, 300, "PNG"), name="small.png", mime="image/png")
    app.button(key="gen.image.fix").click().run()
    app.file_uploader(key="gen.last_frame.upload").set_value(
        ("end.jpg", image_bytes(640, 480, "JPEG"), "image/jpeg")
    )
    app.run()
    app.text_area(key="gen.prompt").set_value("the lantern flickers").run()
    app.toggle(key="gen.random_seed").set_value(False).run()
    app.number_input(key="gen.seed").set_value(4242).run()
    session_id = app.query_params["session"]

    again = _refreshed(session_id)
    said = texts(again)
    assert again.selectbox(key="gen.model").value == "wan2.1-kf2v-plus"
    assert again.text_area(key="gen.prompt").value == "the lantern flickers"
    assert again.toggle(key="gen.random_seed").value is False
    assert again.number_input(key="gen.seed").value == 4242
    assert "small.png · PNG · 500×300 px" in said
    assert "Ready to send. What was changed:" in said  # the fix is applied again
    assert "end.jpg · JPEG · 640×480 px" in said
    assert not again.button(key="gen.submit").disabled
    assert not again.exception


def test_another_address_starts_empty_and_nothing_is_written_for_an_unchanged_form(
    app: AppTest, studio_home: Path
) -> None:
    app.text_area(key="gen.prompt").set_value("only in this session").run()
    fresh = AppTest.from_file(str(APP), default_timeout=30).run()
    assert fresh.text_area(key="gen.prompt").value == ""
    assert "only in this session" not in texts(fresh)

    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        with store.engine.connect() as conn:
            kept = conn.execute(sa.text("select session_id, body from drafts")).all()
    finally:
        store.close()
    by_session = dict(kept)
    assert "only in this session" in by_session[app.query_params["session"]]
    assert not app.exception
