"""Prompts, image names and gateway messages read as typed: no link, image, colour or HTML."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from studio.records import BILLED, JobStatus
from tests.plugins.images import jpeg, png
from tests.ui.conftest import APP, JobMaker, as_read, upload
from tests.ui.test_formatting import assert_no_link_or_shortcode

SESSION_ID = "2a9e4c61-7b3d-4f58-9e0a-1c2d3e4f5a6b"
HOSTILE = (
    "![x](http://127.0.0.1:9/pixel.png) [link](https://example.com) :red[red] **bold** <b>html</b>"
)
GATEWAY_SAYS = "[Top up here](https://example.com/pay) :green[:material/check: ok] $x^2$"
_ELEMENTS = ("markdown", "caption", "info", "warning", "error", "success", "toast")


def _bodies(at: AppTest) -> list[str]:
    """The Markdown source of every text element on the page, as sent to the browser."""
    return [str(element.value) for kind in _ELEMENTS for element in at.get(kind)]


# Elements that show their text as it is and never read Markdown.
_AS_TYPED = ("text", "code")


def _showing(at: AppTest, text: str) -> list[str]:
    """The Markdown bodies that read as ``text``; the text must be on the page, in one of them
    or in an element that shows text as typed."""
    found = [body for body in _bodies(at) if text in as_read(body)]
    as_typed = [element for kind in _AS_TYPED for element in at.get(kind) if text in element.value]
    assert found or as_typed, f"{text!r} is not on the page"
    return found


def assert_plain(body: str) -> None:
    """No Markdown construct is left in ``body``: every one is escaped to literal text."""
    # Links, images, colours, HTML and LaTeX start with one of these; escaped, none can.
    assert not re.search(r"(?<!\\)[\[\]<>$]", body), body
    assert "**bold**" not in body, body
    # Bare addresses and shortcodes are found in the text after its escapes are read.
    assert_no_link_or_shortcode(body)


def _session_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = SESSION_ID
    return at.run()


def test_a_job_card_shows_the_prompt_and_the_gateway_message_as_typed(jobs: JobMaker) -> None:
    jobs.make(
        mode=BILLED,
        status=JobStatus.FAILED,
        session_id=SESSION_ID,
        prompt=HOSTILE,
        error_code="InvalidParameter",
        error_message=GATEWAY_SAYS,
    )
    at = _session_app()
    for body in _showing(at, HOSTILE) + _showing(at, GATEWAY_SAYS):
        assert_plain(body)
    assert not at.exception


def test_an_opened_history_job_shows_its_texts_as_typed(app: AppTest, jobs: JobMaker) -> None:
    image_name = "[me](https://example.com) :red[x].png"
    job = jobs.make(
        mode=BILLED,
        status=JobStatus.FAILED,
        prompt=HOSTILE,
        negative_prompt="**never** [this](https://example.com)",
        image_source=image_name,
        explanation=f"The gateway said: {GATEWAY_SAYS}",
    )
    app.switch_page("pages/history.py").run()
    app.selectbox(key="hist.open").set_value(job.id).run()
    for text in (HOSTILE, "**never** [this](https://example.com)", image_name, GATEWAY_SAYS):
        for body in _showing(app, text):
            assert_plain(body)
    assert not app.exception


def test_the_gateway_s_improved_prompt_is_shown_as_typed(app: AppTest, jobs: JobMaker) -> None:
    job = jobs.make(prompt="a calm sea", actual_prompt=HOSTILE)
    app.switch_page("pages/history.py").run()
    app.selectbox(key="hist.open").set_value(job.id).run()
    for body in _showing(app, HOSTILE):
        assert_plain(body)
    assert not app.exception


def test_an_uploaded_image_name_is_shown_as_typed(app: AppTest) -> None:
    name = "[pay](javascript:alert) :red[x] **b** <i>.png"
    upload(app, png(), name=name, mime="image/png")
    for body in _showing(app, name):
        assert_plain(body)
    assert not app.exception


def test_an_image_name_repeated_in_the_wrong_extension_note_is_shown_as_typed(
    app: AppTest,
) -> None:
    # A JPEG named .png: the note that says so repeats the name.
    name = "![x](http://127.0.0.1:9/pixel.png) [link](https://example.com) :red[x].png"
    upload(app, jpeg(), name=name, mime="image/png")
    notes = [body for body in _showing(app, name) if "but is really a JPEG image" in body]
    assert notes, "the wrong-extension note is not on the page"
    for body in notes:
        assert_plain(body)
    assert not app.exception
