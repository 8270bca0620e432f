"""No dead ends on Generate: frames kept aside, one way in for every image, Enter fetches a link."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from streamlit.testing.v1 import AppTest

from tests.plugins.images import animated, image_bytes
from tests.ui.conftest import APP, texts, upload
from tests.ui.test_generate import assert_plain_words

KEYFRAMES = "wan2.1-kf2v-plus"
FLASH = "wan2.2-i2v-flash"


def _keyframe_draft(app: AppTest) -> AppTest:
    app.selectbox(key="gen.model").set_value(KEYFRAMES).run()
    upload(app, image_bytes(640, 480, "JPEG"), name="start.jpg", mime="image/jpeg")
    app.file_uploader(key="gen.last_frame.upload").set_value(
        ("end.jpg", image_bytes(640, 480, "PNG"), "image/png")
    )
    return app.run()


def test_a_last_frame_is_kept_aside_for_a_first_frame_model_and_never_blocks(
    app: AppTest,
) -> None:
    _keyframe_draft(app)
    assert not app.button(key="gen.submit").disabled

    app.selectbox(key="gen.model").set_value(FLASH).run()
    said = texts(app)
    assert "end.jpg" not in said  # no last frame on screen for a first-frame model
    assert "animates a first frame only" not in said
    assert "Before you can generate" not in said
    assert not app.button(key="gen.submit").disabled

    # Back on Keyframes, the last frame is where it was.
    app.selectbox(key="gen.model").set_value(KEYFRAMES).run()
    assert "end.jpg · PNG" in texts(app)
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_the_uploader_takes_any_file_and_reads_its_content(app: AppTest) -> None:
    # A type filter would make the browser refuse a GIF with only an icon and a tooltip.
    assert list(app.file_uploader(key="gen.image.upload").proto.type) == []
    upload(app, b"%PDF-1.7 not a picture", name="brief.pdf", mime="application/pdf")
    assert len(app.error) == 1
    said = app.error[0].value
    assert said.startswith("This file is a PDF document, which cannot be used as a first frame.")
    assert_plain_words(said)
    assert not app.exception


def test_an_animated_gif_upload_is_converted_with_a_note(app: AppTest) -> None:
    upload(app, animated("GIF", width=640, height=480), name="loop.gif", mime="image/gif")
    said = texts(app)
    assert "loop.gif · GIF · 640×480 px" in said
    assert "This is an animation; only its first frame is used." in said
    assert "The video service does not accept GIF images" in said
    assert_plain_words(said.replace("loop.gif", "the file"))
    app.button(key="gen.image.fix").click().run()
    said = texts(app)
    assert "Ready to send. What was changed:" in said
    assert "Converted GIF to" in said
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


@pytest.fixture
def trusted_server(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, studio_home: Path
) -> HTTPServer:
    """A local image server the app trusts, as an internal image host would be."""
    monkeypatch.setenv("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", f"{httpserver.host}:{httpserver.port}")
    return httpserver


def test_enter_in_the_link_field_fetches_the_link(trusted_server: HTTPServer) -> None:
    trusted_server.expect_request("/loop.gif").respond_with_data(
        animated("GIF", width=640, height=480), content_type="image/gif"
    )
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    # Enter commits the field's new value: no click on Fetch.
    at.text_input(key="gen.image.link").set_value(trusted_server.url_for("/loop.gif")).run()
    said = texts(at)
    assert "loop.gif · GIF · 640×480 px" in said
    assert "This is an animation; only its first frame is used." in said
    assert len(trusted_server.log) == 1
    assert not at.exception


def test_a_link_and_an_upload_have_the_same_size_limit(trusted_server: HTTPServer) -> None:
    # One byte over the uploader's 25 MB (25,000,000 bytes): the link is refused in the same words.
    trusted_server.expect_request("/huge.png").respond_with_data(
        b"\x89PNG\r\n\x1a\n" + bytes(25_000_000 - 7), content_type="image/png"
    )
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert "Files up to 25 MB." in at.file_uploader(key="gen.image.upload").help
    at.text_input(key="gen.image.link").set_value(trusted_server.url_for("/huge.png")).run()
    assert len(at.error) == 1
    said = at.error[0].value
    assert said.startswith("The image at this link is larger than 25 MB")
    assert_plain_words(said)
    assert not at.exception
