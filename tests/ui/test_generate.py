"""The Generate page: options follow the model, blockers are clear, one click is one job."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from streamlit.testing.v1 import AppTest

from components.motion_ideas import usable_motion_ideas
from studio import ideas, images
from studio.ideas import default_motion_ideas
from studio.records import JobFilter, JobStatus
from studio.store import JobStore
from tests.plugins.engine import count_draft_checks
from tests.plugins.images import image_bytes, rgba_png
from tests.ui.conftest import APP, JobMaker, as_read, run_until, texts, upload


def _ready_form(app: AppTest) -> AppTest:
    """A valid image and the quickest model: Wan 2.2 Flash at 480P."""
    upload(app, image_bytes(640, 480, "JPEG"), name="hills.jpg", mime="image/jpeg")
    app.selectbox(key="gen.model").set_value("wan2.2-i2v-flash").run()
    app.segmented_control(key="gen.resolution").set_value("480P").run()
    app.text_area(key="gen.prompt").set_value("clouds drift over the hills").run()
    return app


def test_options_follow_the_chosen_model(app: AppTest) -> None:
    resolution = app.segmented_control(key="gen.resolution")
    assert app.selectbox(key="gen.model").value == "wan2.2-i2v-plus"
    assert resolution.options == ["480P", "1080P"]
    assert resolution.value == "1080P"
    assert "Demo, not billed: would cost $0.750 · 5 s × $0.150/s" in texts(app)

    app.selectbox(key="gen.model").set_value("wan2.1-i2v-turbo").run()
    assert app.segmented_control(key="gen.resolution").options == ["480P", "720P"]
    assert app.segmented_control(key="gen.resolution").value == "720P"
    assert app.segmented_control(key="gen.duration").options == ["3 s", "4 s", "5 s"]
    app.segmented_control(key="gen.duration").set_value(3).run()
    app.segmented_control(key="gen.resolution").set_value("480P").run()
    assert "only one that makes 3- or 4-second clips" in texts(app)
    assert "would cost $0.135 · 3 s × $0.045/s" in texts(app)

    # A model without 3-second clips puts length and resolution back to its own defaults.
    app.selectbox(key="gen.model").set_value("wan2.2-i2v-flash").run()
    assert app.segmented_control(key="gen.duration").value == 5
    assert app.segmented_control(key="gen.resolution").value == "720P"
    assert "Demo, not billed: would cost $0.225 · 5 s × $0.045/s" in texts(app)
    assert not app.exception


def test_a_keyframe_model_asks_for_a_last_frame(app: AppTest) -> None:
    app.selectbox(key="gen.model").set_value("wan2.1-kf2v-plus").run()
    assert app.file_uploader(key="gen.last_frame.upload").label == "Drop an image here, or browse"
    upload(app, image_bytes(640, 480, "JPEG"), name="start.jpg", mime="image/jpeg")
    assert app.button(key="gen.submit").disabled
    assert "needs a last frame as well as a first frame" in texts(app)
    assert not app.exception


def test_without_an_image_the_button_is_disabled_and_says_why(app: AppTest) -> None:
    assert app.button(key="gen.submit").disabled
    assert "Add a first frame: upload an image or paste a link." in texts(app)
    assert not app.exception


def test_a_small_image_is_explained_and_fixed_in_one_click(app: AppTest) -> None:
    upload(app, image_bytes(500, 300, "PNG"), name="tiny.png", mime="image/png")
    said = texts(app)
    assert "300 px high: the video service needs at least 360 px on each side." in said
    assert "Scale up to 600×360 px" in said
    assert app.button(key="gen.submit").disabled
    # The image is there, waiting for its fix: the blocker says so, not "add a first frame".
    assert "Your first frame needs a fix: click “Fix it”, or choose another image." in said
    assert "Add a first frame" not in said

    app.button(key="gen.image.fix").click().run()
    said = texts(app)
    assert "Ready to send. What was changed:" in said
    assert "600×360 px" in said
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The file name of every image read from its header (previews pass none)."""
    seen: list[str | None] = []
    read_header = images._read_header

    def counting(data: bytes, *, filename: str | None) -> object:
        seen.append(filename)
        return read_header(data, filename=filename)

    monkeypatch.setattr(images, "_read_header", counting)
    return seen


def test_an_upload_is_decoded_once_whether_it_is_ready_or_needs_a_fix(
    app: AppTest, reads: list[str | None]
) -> None:
    upload(app, image_bytes(640, 480, "JPEG"), name="ready.jpg", mime="image/jpeg")
    assert "Ready to send." in texts(app)
    assert reads.count("ready.jpg") == 1

    app.button(key="gen.image.remove").click().run()
    upload(app, image_bytes(500, 300, "PNG"), name="tiny.png", mime="image/png")
    app.button(key="gen.image.fix").click().run()
    assert "Ready to send. What was changed:" in texts(app)
    # The fix was made from the decode that checked the image: clicking it reads nothing again.
    assert reads.count("tiny.png") == 1
    assert not app.exception


def test_the_draft_is_checked_once_per_run(app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    _ready_form(app)
    checks = count_draft_checks(monkeypatch)
    app.text_area(key="gen.prompt").set_value("x" * 801).run()
    assert len(checks) == 1
    assert app.button(key="gen.submit").disabled
    app.text_area(key="gen.prompt").set_value("clouds").run()
    assert len(checks) == 2
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_the_job_records_the_price_and_size_the_form_showed(app: AppTest, store: JobStore) -> None:
    upload(app, image_bytes(750, 1000, "JPEG"), name="tall.jpg", mime="image/jpeg")
    app.selectbox(key="gen.model").set_value("wan2.2-i2v-flash").run()
    shown = texts(app)
    assert "would cost $0.225 · 5 s × $0.045/s" in shown
    assert "816×1104 px, 5 s" in shown
    app.button(key="gen.submit").click().run()
    (job,) = store.list_jobs()
    assert (job.estimate_usd, job.output_width, job.output_height) == (
        Decimal("0.225"),
        816,
        1104,
    )
    assert not app.exception


def test_an_image_no_fix_can_save_says_to_choose_another(app: AppTest) -> None:
    upload(app, image_bytes(2400, 200, "PNG"), name="strip.png", mime="image/png")
    said = texts(app)
    assert "too long and thin" in said
    assert not [button for button in app.button if button.key == "gen.image.fix"]
    assert "Your first frame cannot be sent as it is: choose another image." in said
    assert "Add a first frame" not in said
    assert app.button(key="gen.submit").disabled
    assert not app.exception


def test_the_upload_box_states_the_gateway_limits(app: AppTest) -> None:
    rules = (
        "Files up to 25 MB. The video service takes JPEG, PNG, BMP or WEBP images up to 10.4 MB "
        "and 360–2000 px per side; other images (GIF, TIFF, larger or heavier ones) can usually "
        "be fixed here in one click."
    )
    assert rules in texts(app)
    assert rules in app.file_uploader(key="gen.image.upload").help
    assert not app.exception


def test_transparency_is_fixed_and_said(app: AppTest) -> None:
    upload(app, rgba_png(640, 480), name="cutout.png", mime="image/png")
    assert "transparency" in texts(app)
    app.button(key="gen.image.fix").click().run()
    assert "Ready to send" in texts(app)
    assert not app.exception


# What plain words never contain: a traceback, an exception's name, an errno, a MIME type, a model
# id or an environment variable's name.
_NOT_PLAIN = (
    re.compile(r"Traceback"),
    re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z0-9]*)+(?:Error|Exception)\b"),
    re.compile(r"Errno|errno"),
    re.compile(r"\b(?:image|video|application|text)/[a-z0-9.+-]+", re.IGNORECASE),
    re.compile(r"\bwan2\.\d-"),
    re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b"),
)


def assert_plain_words(said: str) -> None:
    """Fail when a message shown to the user carries technical tokens instead of words."""
    for pattern in _NOT_PLAIN:
        assert not pattern.search(said), f"{pattern.pattern!r} found in {said!r}"


def test_a_file_that_is_not_an_image_gets_a_plain_message(app: AppTest) -> None:
    upload(app, b"this is not a picture at all", name="notes.png", mime="image/png")
    assert len(app.error) == 1
    said = app.error[0].value
    assert "not an image" in said
    assert "JPEG, PNG, BMP or WEBP" in said
    assert_plain_words(said)
    assert app.button(key="gen.submit").disabled
    assert not app.exception


def test_a_prompt_over_the_limit_blocks_the_button(app: AppTest) -> None:
    _ready_form(app)
    assert not app.button(key="gen.submit").disabled
    app.text_area(key="gen.prompt").set_value("x" * 801).run()
    said = texts(app)
    assert "1 character too many" in said
    assert "The prompt is 801 characters; the limit is 800." in said
    assert app.button(key="gen.submit").disabled
    app.text_area(key="gen.prompt").set_value("x" * 800).run()
    assert "0 characters left" in texts(app)
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_a_fixed_seed_and_a_new_seed(app: AppTest) -> None:
    assert app.toggle(key="gen.random_seed").value is True
    app.toggle(key="gen.random_seed").set_value(False).run()
    seed = app.number_input(key="gen.seed")
    first = seed.value
    assert 0 <= first <= 2147483647
    app.button(key="gen.new_seed").click().run()
    assert app.number_input(key="gen.seed").value != first
    assert not app.exception


def test_the_form_survives_a_visit_to_another_page(app: AppTest) -> None:
    _ready_form(app)
    app.toggle(key="gen.watermark").set_value(True).run()
    app.switch_page("pages/models.py").run()
    app.switch_page("pages/generate.py").run()
    assert app.selectbox(key="gen.model").value == "wan2.2-i2v-flash"
    assert app.segmented_control(key="gen.resolution").value == "480P"
    assert app.text_area(key="gen.prompt").value == "clouds drift over the hills"
    assert app.toggle(key="gen.watermark").value is True
    assert "hills.jpg" in texts(app)
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_one_click_makes_one_job_that_plays_when_done(app: AppTest, store: JobStore) -> None:
    _ready_form(app)
    app.button(key="gen.submit").click().run()
    # Reruns, and a second click on the same form right away, send nothing more.
    app.run()
    app.button(key="gen.submit").click().run()
    assert store.count_jobs() == 1
    job = store.list_jobs()[0]
    assert job.model == "wan2.2-i2v-flash"
    assert job.resolution == "480P"
    assert job.prompt == "clouds drift over the hills"
    assert job.is_demo

    run_until(app, lambda at: any(video.proto.url for video in at.get("video")))
    done = store.get(job.id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert "Done" in texts(app)
    assert app.download_button(key=f"job.{job.id}.download").label == "Download video"
    assert "Demo, not billed: would have cost $0.085 · 5 s × $0.017/s" in texts(app)
    assert store.count_jobs() == 1
    assert not app.exception

    # AppTest drops sidebar updates on reruns, so a fresh browser session reads the totals.
    fresh = AppTest.from_file(str(APP), default_timeout=30).run()
    sidebar = as_read("\n".join(element.value for element in fresh.sidebar.markdown))
    assert "Demo mode — nothing is billed" in sidebar
    assert "All time: 1 video, would have cost $0.085" in sidebar
    assert "Billed spend" not in sidebar  # nothing billed, and the app is in demo mode
    assert not fresh.exception


def test_a_submit_that_fails_after_writing_its_job_is_retried_without_a_second_job(
    app: AppTest, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.service import Studio

    submit = Studio.submit
    failures = []

    def submit_then_fail(self: Studio, *args: object, **kwargs: object) -> object:
        job = submit(self, *args, **kwargs)
        if not failures:  # the first time only: the store fails once the job is written
            failures.append(kwargs["submission_id"])
            raise RuntimeError("the store went away after writing")
        return job

    monkeypatch.setattr(Studio, "submit", submit_then_fail)
    _ready_form(app)
    app.button(key="gen.submit").click().run()
    assert app.exception  # the failure reached the page
    assert store.count_jobs() == 1
    # The click is not used up: the next run sends the same id and finds the job just made.
    assert failures == [app.session_state["_gen.pending_submission"]]
    app.run()
    assert store.count_jobs() == 1
    assert store.list_jobs()[0].submission_id == failures[0]
    assert "_gen.pending_submission" not in app.session_state
    app.run()
    assert store.count_jobs() == 1


def test_a_link_from_a_trusted_host_is_fetched(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/frame.png").respond_with_data(
        image_bytes(640, 480, "PNG"), content_type="image/png"
    )
    monkeypatch.setenv("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", f"{httpserver.host}:{httpserver.port}")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.text_input(key="gen.image.link").set_value(httpserver.url_for("/frame.png"))
    at.button(key="gen.image.fetch").click().run()
    said = texts(at)
    assert "frame.png · PNG · 640×480 px" in said
    assert "Ready to send." in said
    assert "Add a first frame" not in said
    assert not at.exception


def test_a_link_to_this_machine_is_refused_in_plain_words(
    app: AppTest, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/frame.png").respond_with_data(
        image_bytes(640, 480, "PNG"), content_type="image/png"
    )
    app.text_input(key="gen.image.link").set_value(httpserver.url_for("/frame.png"))
    app.button(key="gen.image.fetch").click().run()
    assert len(app.error) == 1
    said = app.error[0].value
    assert "only the standard web ports (80 and 443)" in said
    # The one setting named is the one that lets such a link through, on purpose.
    assert_plain_words(said.replace("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", "the trusted hosts"))
    assert app.button(key="gen.submit").disabled
    assert not httpserver.log  # refused before any request left
    assert not app.exception


def test_an_uncertain_job_offers_a_choice_and_dismiss_settles_it(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    session_id = app.query_params["session"]
    lost = jobs.make(status=JobStatus.UNCERTAIN, session_id=session_id, prompt="lost answer")
    sent_again = jobs.make(status=JobStatus.UNCERTAIN, session_id=session_id, prompt="try again")
    app.run()
    app.button(key=f"job.{lost.id}.open").click().run()
    assert app.button(key=f"job.{lost.id}.resend").label == "Send again (may be billed twice)"
    app.button(key=f"job.{lost.id}.dismiss").click().run()
    dismissed = store.get(lost.id)
    assert dismissed is not None
    assert dismissed.status is JobStatus.CANCELED

    app.button(key=f"job.{sent_again.id}.open").click().run()
    app.button(key=f"job.{sent_again.id}.resend").click().run()
    assert store.count_jobs(JobFilter(session_id=session_id)) == 3
    newest = store.list_jobs(JobFilter(session_id=session_id), limit=1)[0]
    assert newest.prompt == "try again"
    assert newest.id not in (lost.id, sent_again.id)
    replaced = store.get(sent_again.id)
    assert replaced is not None
    assert replaced.status is JobStatus.CANCELED
    assert "try again" in texts(app)  # the new job is in focus
    app.button(key=f"job.{sent_again.id}.open").click().run()
    assert f"Sent again as job {newest.id}" in texts(app)
    assert not app.exception


def test_a_browser_refresh_keeps_the_session_jobs(studio_home: Path, jobs: JobMaker) -> None:
    session_id = "0b7c6a52-2d7e-4f0e-9a53-3c1f4d5e6a7b"
    job = jobs.make(session_id=session_id, prompt="still here after a refresh")
    jobs.make(prompt="from another browser")
    refreshed = AppTest.from_file(str(APP), default_timeout=30)
    refreshed.query_params["session"] = session_id
    refreshed.run()
    assert refreshed.download_button(key=f"job.{job.id}.download").label == "Download video"
    said = texts(refreshed)
    assert "still here after a refresh" in said
    assert "from another browser" not in said
    assert not refreshed.exception


def test_a_keyframe_job_takes_both_frames(app: AppTest) -> None:
    app.selectbox(key="gen.model").set_value("wan2.1-kf2v-plus").run()
    upload(app, image_bytes(640, 480, "JPEG"), name="start.jpg", mime="image/jpeg")
    app.file_uploader(key="gen.last_frame.upload").set_value(
        ("end.jpg", image_bytes(640, 480, "PNG"), "image/png")
    )
    app.run()
    said = texts(app)
    assert "start.jpg · JPEG" in said
    assert "end.jpg · PNG" in said
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_a_motion_idea_starts_the_prompt_then_joins_it_and_stays_unselected(app: AppTest) -> None:
    app.pills(key="gen.idea.Camera").set_value("Slow push-in").run()

    assert app.text_area(key="gen.prompt").value == (
        "The camera slowly pushes in toward the subject"
    )
    assert app.pills(key="gen.idea.Camera").value is None

    app.pills(key="gen.idea.Motion").set_value("Hair in the wind").run()

    assert app.text_area(key="gen.prompt").value == (
        "The camera slowly pushes in toward the subject, a soft breeze moves through the hair"
    )
    assert not app.exception


@pytest.fixture
def forget_motion_ideas() -> Iterator[None]:
    """The ideas are read once per process: read them afresh here and again after the test."""
    default_motion_ideas.cache_clear()
    usable_motion_ideas.cache_clear()
    yield
    default_motion_ideas.cache_clear()
    usable_motion_ideas.cache_clear()


@pytest.mark.parametrize(
    "broken",
    [
        '[[idea]]\ngroup = "Camera"\nlabel = "Slow push-in\n',  # not TOML: a quote left open
        '[[idea]]\ngroup = "Camera"\nlabel = "Slow push-in"\n',  # TOML, but no text to add
    ],
)
def test_a_broken_ideas_file_leaves_the_ideas_out_and_generate_works(
    broken: str,
    studio_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    forget_motion_ideas: None,
) -> None:
    ideas_file = tmp_path / "motion_ideas.toml"
    ideas_file.write_text(broken, encoding="utf-8")
    monkeypatch.setattr(ideas, "MOTION_IDEAS_PATH", ideas_file)

    with caplog.at_level(logging.ERROR, logger="wan_studio"):
        app = AppTest.from_file(str(APP), default_timeout=30).run()
        app.text_area(key="gen.prompt").set_value("waves roll in").run()

    assert not app.exception
    assert not [pills for pills in app.pills if pills.key.startswith("gen.idea.")]
    assert "Need an idea?" not in texts(app)
    assert app.text_area(key="gen.prompt").value == "waves roll in"
    logged = [record for record in caplog.records if "motion ideas" in record.getMessage()]
    assert len(logged) == 1
