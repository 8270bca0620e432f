"""Variations on the Generate page: how many clips, their price before the click, the batch."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

import simulator
from components.batch_view import send_unsent_submission_id
from studio.catalog import default_catalog
from studio.generation import FieldProblem, InvalidRequest, JobDraft
from studio.images import ImageRejected
from studio.keys import KeyRequired
from studio.limits import TEAM_SCOPE, SpendingLimit
from studio.records import Batch, JobFilter, JobStatus
from studio.service import Studio
from studio.settings import Settings
from studio.store import JobStore, sqlite_url
from studio.variations import Variations
from tests.plugins.engine import ENGINE_KEY
from tests.plugins.images import image_bytes, prepare_image
from tests.ui.conftest import (
    APP,
    JobMaker,
    as_read,
    note_video_reads,
    run_until,
    texts,
    upload,
)


def _ready_form(app: AppTest) -> AppTest:
    """A valid image and the quickest model: Wan 2.2 Flash at 480P, 5 s ($0.085 a clip)."""
    upload(app, image_bytes(640, 480, "JPEG"), name="hills.jpg", mime="image/jpeg")
    app.selectbox(key="gen.model").set_value("wan2.2-i2v-flash").run()
    app.segmented_control(key="gen.resolution").set_value("480P").run()
    app.text_area(key="gen.prompt").set_value("clouds drift over the hills").run()
    return app


def _choose(app: AppTest, kind: str) -> AppTest:
    return app.selectbox(key="gen.variations").set_value(kind).run()


def _price(app: AppTest) -> str:
    (estimate,) = [text for text in texts(app).splitlines() if "Price:" in text]
    return estimate


def test_one_clip_is_the_default_and_the_form_is_as_before(app: AppTest) -> None:
    _ready_form(app)
    assert app.selectbox(key="gen.variations").value == "one"
    assert app.button(key="gen.submit").label == "Generate video"
    assert "Demo, not billed: would cost $0.085 · 5 s × $0.017/s" in texts(app)
    assert not [area for area in app.text_area if area.key == "gen.prompt_lines"]
    assert not app.exception


def test_several_takes_show_count_total_and_seconds_before_the_click(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "seeds")
    assert app.number_input(key="gen.takes").value == 4
    said = texts(app)
    assert "Demo, not billed: would cost 4 × $0.085 = $0.340" in _price(app)
    assert "4 clips, 20 seconds of video" in said
    assert app.button(key="gen.submit").label == "Generate 4 clips"
    assert not app.button(key="gen.submit").disabled

    app.number_input(key="gen.takes").set_value(6).run()
    assert "6 × $0.085 = $0.510" in _price(app)
    assert "6 clips, 30 seconds of video" in texts(app)
    assert app.button(key="gen.submit").label == "Generate 6 clips"
    assert not app.exception


def test_a_few_prompts_replace_the_prompt_box_one_clip_a_line(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "prompts")
    # The list starts with the prompt already typed; the single prompt box is gone.
    assert app.text_area(key="gen.prompt_lines").value == "clouds drift over the hills"
    assert not [area for area in app.text_area if area.key == "gen.prompt"]
    assert "Write your prompts, one a line, in the box under the first frame." in texts(app)
    assert "give 2 to 8 prompts, one a line (now 1)" in texts(app)
    assert app.button(key="gen.submit").disabled

    app.text_area(key="gen.prompt_lines").set_value(
        "clouds drift over the hills\n\n  a slow push-in  \nthe sun sets"
    ).run()
    assert "3 × $0.085 = $0.255" in _price(app)
    assert "3 clips, 15 seconds of video" in texts(app)
    assert app.button(key="gen.submit").label == "Generate 3 clips"
    assert not app.button(key="gen.submit").disabled

    app.text_area(key="gen.prompt_lines").set_value("x" * 801 + "\nshort").run()
    assert "Clip 1: The prompt is 801 characters; the limit is 800." in texts(app)
    assert app.button(key="gen.submit").disabled
    assert not app.exception


def test_with_a_few_prompts_a_motion_idea_adds_a_prompt_line(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "prompts")
    app.pills(key="gen.idea.Camera").set_value("Slow push-in").run()
    assert app.text_area(key="gen.prompt_lines").value == (
        "clouds drift over the hills\nThe camera slowly pushes in toward the subject"
    )
    assert app.pills(key="gen.idea.Camera").value is None
    app.pills(key="gen.idea.Camera").set_value("Slow push-in").run()  # already a line
    app.pills(key="gen.idea.Motion").set_value("Hair in the wind").run()
    assert app.text_area(key="gen.prompt_lines").value.splitlines() == [
        "clouds drift over the hills",
        "The camera slowly pushes in toward the subject",
        "A soft breeze moves through the hair",
    ]
    assert app.button(key="gen.submit").label == "Generate 3 clips"
    assert not app.exception


def test_compare_models_prices_each_model_and_sums(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "models")
    compare = app.multiselect(key="gen.compare_models")
    assert compare.value == ["wan2.2-i2v-flash"]  # starts from the chosen model
    assert "Choose 2 or 3 models to try side by side." in texts(app)
    assert app.button(key="gen.submit").disabled

    compare.set_value(["wan2.2-i2v-flash", "wan2.1-i2v-turbo"]).run()
    # Flash at 480P 5 s, then Turbo at 480P 5 s: two prices, so the sum is written out.
    assert "$0.085 + $0.225 = $0.310" in _price(app)
    assert "2 clips, 10 seconds of video" in texts(app)
    assert app.button(key="gen.submit").label == "Generate 2 clips"
    assert not app.exception


def test_compare_models_offers_only_models_that_take_the_same_frames(app: AppTest) -> None:
    _choose(app, "models")
    said = texts(app)
    assert "Choose 2 or 3 models to try side by side." in said
    assert "Add a first frame: upload an image or paste a link." in said
    assert "Wan 2.1 Keyframes" not in app.multiselect(key="gen.compare_models").options
    app.selectbox(key="gen.model").set_value("wan2.1-kf2v-plus").run()
    assert not [box for box in app.multiselect if box.key == "gen.compare_models"]
    assert "the only model that takes a first and a last frame" in texts(app)
    assert app.button(key="gen.submit").disabled
    assert not app.exception


@pytest.fixture
def billed_app(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> AppTest:
    """The app with a key configured: billed mode, against a local gateway."""
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    return AppTest.from_file(str(APP), default_timeout=30).run()


def test_a_costly_billed_batch_is_confirmed_once_before_generate_works(
    billed_app: AppTest, engine_gateway: simulator.RunningSimulator
) -> None:
    app = billed_app
    upload(app, image_bytes(640, 480, "JPEG"), name="hills.jpg", mime="image/jpeg")
    # Wan 2.2 Plus at 1080P, 5 s: $0.750 a clip.
    _choose(app, "seeds")
    app.number_input(key="gen.takes").set_value(2).run()
    assert "2 × $0.750 = $1.500" in _price(app)
    assert "Demo" not in _price(app)
    assert not app.checkbox  # under the threshold: no question asked
    assert not app.button(key="gen.submit").disabled

    app.number_input(key="gen.takes").set_value(5).run()
    assert "5 × $0.750 = $3.750" in _price(app)
    (confirm,) = app.checkbox
    assert confirm.label == "Yes, spend \\$3.750 on 5 clips"
    assert app.button(key="gen.submit").disabled
    confirm.check().run()
    assert not app.button(key="gen.submit").disabled
    assert app.button(key="gen.submit").label == "Generate 5 clips"

    # A new total asks again.
    app.number_input(key="gen.takes").set_value(6).run()
    (confirm,) = app.checkbox
    assert confirm.label == "Yes, spend \\$4.500 on 6 clips"
    assert not confirm.value
    assert app.button(key="gen.submit").disabled

    # Confirmed and sent: the next batch, at the same price, asks again.
    confirm.check().run()
    app.button(key="gen.submit").click().run()
    assert len(engine_gateway.tasks()) == 6
    (confirm,) = app.checkbox
    assert not confirm.value
    assert app.button(key="gen.submit").disabled
    assert not app.exception


def test_a_demo_batch_never_asks_to_confirm(app: AppTest) -> None:
    upload(app, image_bytes(640, 480, "JPEG"), name="hills.jpg", mime="image/jpeg")
    _choose(app, "seeds")
    app.number_input(key="gen.takes").set_value(8).run()
    assert "Demo, not billed: would cost 8 × $0.750 = $6.000" in _price(app)
    assert not app.checkbox
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def _refreshed(session_id: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = session_id
    return at.run()


def test_a_refresh_keeps_the_variations_choice(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "prompts")
    app.text_area(key="gen.prompt_lines").set_value("one way\nanother way").run()
    again = _refreshed(app.query_params["session"])
    assert again.selectbox(key="gen.variations").value == "prompts"
    assert again.text_area(key="gen.prompt_lines").value == "one way\nanother way"
    assert again.button(key="gen.submit").label == "Generate 2 clips"

    _choose(again, "models")
    again.multiselect(key="gen.compare_models").set_value(
        ["wan2.2-i2v-flash", "wan2.1-i2v-plus", "wan2.2-i2v-plus"]
    ).run()
    third = _refreshed(app.query_params["session"])
    assert third.selectbox(key="gen.variations").value == "models"
    assert third.multiselect(key="gen.compare_models").value == [
        "wan2.2-i2v-flash",
        "wan2.1-i2v-plus",
        "wan2.2-i2v-plus",
    ]
    assert third.button(key="gen.submit").label == "Generate 3 clips"
    assert not third.exception


# -- the batch: one click, one batch, a grid that fills in ----------------------------------------


def _batches(store: JobStore) -> list[tuple[int, str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("select id, kind, size from batches order by id")).all()
    return [tuple(row) for row in rows]


def test_generate_4_clips_makes_4_jobs_in_one_batch_that_fill_a_grid(
    app: AppTest, store: JobStore
) -> None:
    _ready_form(app)
    _choose(app, "seeds")
    app.button(key="gen.submit").click().run()
    # Reruns, and a second click on the same form right away, send nothing more.
    app.run()
    app.button(key="gen.submit").click().run()
    ((batch_id, kind, size),) = _batches(store)
    assert (kind, size) == ("seeds", 4)
    clips = store.list_jobs(JobFilter(batch_id=batch_id))
    assert len(clips) == store.count_jobs() == 4
    assert {job.prompt for job in clips} == {"clouds drift over the hills"}
    assert all(job.is_demo for job in clips)
    assert "4 clips" in texts(app)

    run_until(app, lambda at: sum(1 for video in at.get("video") if video.proto.url) == 4)
    said = texts(app)
    assert "4 clips · 4 done" in said
    assert "Demo, not billed: would have cost $0.340" in said
    for job in clips:
        assert app.download_button(key=f"job.{job.id}.download").label == "Download video"
    assert store.count_jobs() == 4

    app.button(key=f"batch.{batch_id}.compare").click().run()
    assert [title.value for title in app.title] == ["Compare clips"]
    assert sorted(app.multiselect(key="compare.pick").value) == sorted(job.id for job in clips)
    assert len(app.get("video")) == 4
    assert not app.exception


def test_a_double_click_sends_one_batch_and_a_changed_form_another(
    app: AppTest, store: JobStore
) -> None:
    _ready_form(app)
    _choose(app, "prompts")
    app.text_area(key="gen.prompt_lines").set_value("first idea\nsecond idea").run()
    app.button(key="gen.submit").click().run()
    app.button(key="gen.submit").click().run()  # the second click of a double click
    assert len(_batches(store)) == 1
    assert sorted(job.prompt for job in store.list_jobs()) == ["first idea", "second idea"]

    app.text_area(key="gen.prompt_lines").set_value("third idea\nfourth idea").run()
    app.button(key="gen.submit").click().run()
    assert len(_batches(store)) == 2
    assert store.count_jobs() == 4
    assert not app.exception


def _billed_app_with_key(
    key: str, *, gateway: simulator.RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> AppTest:
    monkeypatch.setenv("PIXAZO_API_KEY", key)
    monkeypatch.setenv("PIXAZO_BASE_URL", gateway.url)
    return AppTest.from_file(str(APP), default_timeout=30).run()


def _second_click_of(batch: Batch) -> None:
    """The second click of a double click on "Send the N that did not go", drawn with ``batch``,
    arriving after the first was handled: as another app process would send it."""
    other = Studio.open(Settings.from_environment(), start_watcher=False, catalog=default_catalog())
    try:
        other.send_unsent(
            batch.id, submission_id=send_unsent_submission_id(batch), session_id=batch.session_id
        )
    finally:
        other.close()


def _partly_refused_batch(
    studio_home: Path, gateway: simulator.RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> tuple[AppTest, int]:
    """A billed batch of 4 whose clips 3 and 4 the gateway turned away.

    The gateway turns away the third submit with a rate limit, and only that one.
    """
    key = f"{ENGINE_KEY}+rate_limit:endpoint=submit:every=3:count=3:retry_after=1"
    app = _ready_form(_billed_app_with_key(key, gateway=gateway, monkeypatch=monkeypatch))
    _choose(app, "seeds")
    app.button(key="gen.submit").click().run()
    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        ((batch_id, _, _),) = _batches(store)
    finally:
        store.close()
    return app, batch_id


def test_a_partly_refused_batch_says_which_clips_went_and_sends_the_rest_once(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, batch_id = _partly_refused_batch(studio_home, engine_gateway, monkeypatch)
    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        assert len(engine_gateway.tasks()) == 2
        said = texts(app)
        assert "4 clips · 2 generating · 2 not sent" in said
        assert "Clips 3 and 4 did not go (2 did)." in said
        send = app.button(key=f"batch.{batch_id}.send-unsent")
        assert send.label == "Send the 2 that did not go"

        before = store.get_batch(batch_id)
        assert before is not None
        send.click().run()
        assert len(engine_gateway.tasks()) == 4
        said = texts(app)
        assert "did not go" not in said
        assert "4 clips · 4 generating" in said
        assert not [button for button in app.button if button.key.endswith("send-unsent")]

        _second_click_of(before)
        assert len(engine_gateway.tasks()) == 4
        # Two refused attempts are kept, with one new job each for clips 3 and 4.
        assert store.count_jobs(JobFilter(batch_id=batch_id)) == 6
    finally:
        store.close()
    assert not app.exception


def test_clips_refused_again_are_offered_again_with_a_new_click(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every second submit is turned away.
    key = f"{ENGINE_KEY}+rate_limit:endpoint=submit:every=2:retry_after=1"
    app = _ready_form(_billed_app_with_key(key, gateway=engine_gateway, monkeypatch=monkeypatch))
    _choose(app, "seeds")
    app.number_input(key="gen.takes").set_value(3).run()
    app.button(key="gen.submit").click().run()  # submits 1 (taken) and 2 (refused)
    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        ((batch_id, _, _),) = _batches(store)
        assert "Clips 2 and 3 did not go (1 did)." in texts(app)
        first = store.get_batch(batch_id)
        app.button(key=f"batch.{batch_id}.send-unsent").click().run()  # submits 3 and 4
        assert len(engine_gateway.tasks()) == 2
        assert "Clip 3 did not go (2 did)." in texts(app)
        # The second click of that double click, drawn with the batch as it was: the same
        # click, so clip 3 is not sent again behind the user's back.
        assert first is not None
        _second_click_of(first)
        assert len(engine_gateway.tasks()) == 2
        send = app.button(key=f"batch.{batch_id}.send-unsent")
        assert send.label == "Send the one that did not go"
        again = store.get_batch(batch_id)
        assert again is not None
        assert send_unsent_submission_id(again) != send_unsent_submission_id(first)

        send.click().run()  # submit 5
        assert len(engine_gateway.tasks()) == 3
        assert "did not go" not in texts(app)
    finally:
        store.close()
    assert not app.exception


def test_a_batch_over_what_is_left_of_the_limit_is_blocked_whole(
    billed_app: AppTest, engine_gateway: simulator.RunningSimulator, studio_home: Path
) -> None:
    with JobStore.open(sqlite_url(studio_home / "studio.db")) as store:
        store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("0.30")))
    app = _ready_form(billed_app)
    assert not app.button(key="gen.submit").disabled  # one clip, $0.085, fits
    _choose(app, "seeds")
    said = texts(app)
    assert "This costs $0.340, more than the $0.30 left today" in said
    assert app.button(key="gen.submit").disabled
    app.number_input(key="gen.takes").set_value(3).run()  # $0.255 fits
    assert "more than the" not in texts(app)
    assert not app.button(key="gen.submit").disabled
    assert engine_gateway.tasks() == []
    assert not app.exception


def test_a_batch_the_limit_refuses_at_the_click_says_so_and_sends_nothing(
    billed_app: AppTest, engine_gateway: simulator.RunningSimulator, studio_home: Path
) -> None:
    app = _ready_form(billed_app)
    _choose(app, "seeds")
    assert not app.button(key="gen.submit").disabled
    # Spent elsewhere meanwhile (another tab, the command line): the limit now leaves $0.30.
    with JobStore.open(sqlite_url(studio_home / "studio.db")) as store:
        store.set_spending_limit(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("0.30")))
        app.button(key="gen.submit").click().run()
        assert store.count_jobs() == 0
        assert _batches(store) == []
    refusals = [as_read(str(error.value)) for error in app.error]
    assert any(
        "This costs $0.340, more than the $0.30 left today" in said
        and "Nothing was sent or billed." in said
        for said in refusals
    ), refusals
    assert engine_gateway.tasks() == []
    assert not app.exception


# -- History: made together -----------------------------------------------------------------------


def test_history_shows_each_batch_with_its_cost_and_narrows_to_one(
    app: AppTest, store: JobStore
) -> None:
    _ready_form(app)
    app.button(key="gen.submit").click().run()  # one clip on its own
    _choose(app, "prompts")
    app.text_area(key="gen.prompt_lines").set_value("the fog lifts\nbirds take off").run()
    app.button(key="gen.submit").click().run()
    ((batch_id, _, _),) = _batches(store)
    run_until(
        app,
        lambda at: store.count_jobs() == 3 and not any(job.in_flight for job in store.list_jobs()),
    )

    app.switch_page("pages/history.py").run()
    said = texts(app)
    assert "A few prompts" in said
    assert "2 clips · 2 done · Demo, not billed: would have cost $0.170" in said
    assert "3 jobs, newest first" in said
    app.button(key=f"batch.{batch_id}.show-in-history").click().run()
    assert app.selectbox(key="hist.batch").value == batch_id
    assert "2 jobs, newest first" in texts(app)

    app.button(key=f"batch.{batch_id}.show-all").click().run()
    assert app.selectbox(key="hist.batch").value is None
    assert "3 jobs, newest first" in texts(app)
    single = next(job for job in store.list_jobs() if job.batch_id is None)
    app.selectbox(key="hist.open").set_value(single.id).run()
    assert not [button for button in app.button if button.label == "Show this batch"]
    clip = next(job for job in store.list_jobs() if job.batch_id == batch_id)
    app.selectbox(key="hist.open").set_value(clip.id).run()
    app.button(key=f"batch.{batch_id}.show-from-job").click().run()
    assert app.selectbox(key="hist.batch").value == batch_id
    assert "2 jobs, newest first" in texts(app)
    assert not app.exception


def test_a_kept_draft_with_a_choice_this_version_does_not_know_comes_back_as_one_clip(
    store: JobStore,
) -> None:
    session_id = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    kept = {
        "gen.prompt": "still here",
        "gen.variations": "twelve remixes",
        "gen.takes": 99,
        "gen.prompt_lines": ["not", "text"],
        "gen.compare_models": ["wan9.9-unknown", "wan2.2-i2v-flash"],
    }
    store.save_draft(session_id, json.dumps({"form": kept, "frames": {}}))
    again = _refreshed(session_id)
    assert again.text_area(key="gen.prompt").value == "still here"
    assert again.selectbox(key="gen.variations").value == "one"
    assert again.button(key="gen.submit").label == "Generate video"
    _choose(again, "seeds")
    assert again.number_input(key="gen.takes").value == 4
    _choose(again, "models")
    assert again.multiselect(key="gen.compare_models").value == ["wan2.2-i2v-flash"]
    assert not again.exception


def test_clips_that_end_together_are_announced_in_one_toast(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    session_id = "3f2e1d0c-9b8a-4766-8554-433221100fed"
    clips = [jobs.make(status=JobStatus.RUNNING, session_id=session_id) for _ in range(3)]
    refused = jobs.make(status=JobStatus.QUEUED, session_id=session_id)
    for clip in clips:
        store.update(clip.id, status=JobStatus.SUCCEEDED, video_path="videos/x.mp4")
    store.update(refused.id, status=JobStatus.FAILED)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = session_id
    at.session_state["_jobs.seen_in_flight"] = frozenset(job.id for job in [*clips, refused])
    at.run()
    said = [as_read(str(toast.value)) for toast in at.toast]
    assert said[0] == "3 videos are ready."
    assert len(said) == 2
    assert said[1].startswith("Failed: your video (Wan 2.2 Flash · 5 s) was not made.")
    assert not at.exception


def _toasts(app: AppTest) -> list[str]:
    return [as_read(toast.value) for toast in app.toast]


def test_sending_the_rest_when_their_first_frame_is_gone_says_so_in_plain_words(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, batch_id = _partly_refused_batch(studio_home, engine_gateway, monkeypatch)
    for stored in (studio_home / "images").rglob("*"):
        if stored.is_file():
            stored.unlink()
    app.button(key=f"batch.{batch_id}.send-unsent").click().run()
    assert not app.exception
    (said,) = _toasts(app)
    assert "first frame of these clips is no longer stored" in said
    assert str(studio_home) not in said
    assert len(engine_gateway.tasks()) == 2


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            InvalidRequest([FieldProblem("prompt", "The prompt is too long.")]),
            "The prompt is too long.",
        ),
        (ImageRejected("The first frame is too small."), "The first frame is too small."),
        (LookupError("There is no batch 7."), "There is no batch 7."),
    ],
)
def test_every_refusal_of_sending_the_rest_is_a_toast_not_a_traceback(
    problem: Exception,
    expected: str,
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, batch_id = _partly_refused_batch(studio_home, engine_gateway, monkeypatch)

    def refuse(*_args: object, **_kwargs: object) -> Batch:
        raise problem

    # These come from states a real run rarely reaches (a catalog changed under a kept batch).
    monkeypatch.setattr(Studio, "send_unsent", refuse)
    app.button(key=f"batch.{batch_id}.send-unsent").click().run()
    assert not app.exception
    assert _toasts(app) == [expected]


def test_a_single_clip_refused_for_want_of_a_key_says_so(
    app: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise KeyRequired("Enter an API key in Settings to generate videos.")

    # No key and no demo gateway cannot happen in a running app; the page must still cope.
    monkeypatch.setattr(Studio, "submit", refuse)
    _ready_form(app)
    app.button(key="gen.submit").click().run()
    assert not app.exception
    assert "Enter an API key in Settings to generate videos." in [
        as_read(error.value) for error in app.error
    ]


def test_a_finished_batch_reads_its_videos_once_not_on_every_rerun(
    app: AppTest, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready_form(app)
    _choose(app, "seeds")
    app.number_input(key="gen.takes").set_value(8).run()
    app.button(key="gen.submit").click().run()
    run_until(app, lambda at: sum(1 for video in at.get("video") if video.proto.url) == 8)
    opened = note_video_reads(monkeypatch)

    for _ in range(3):
        app.run()

    assert sum(1 for video in app.get("video") if video.proto.url) == 8
    assert opened == []
    assert not app.exception


def test_the_form_says_a_batch_s_problems_as_the_command_line_does(app: AppTest) -> None:
    _ready_form(app)
    _choose(app, "prompts")
    app.text_area(key="gen.negative_prompt").set_value("n" * 501).run()
    app.text_area(key="gen.prompt_lines").set_value("x" * 801 + "\nshort").run()

    said = _blockers(app)
    # The same draft as the command line would check it.
    draft = JobDraft(
        model="wan2.2-i2v-flash",
        resolution="480P",
        negative_prompt="n" * 501,
        image=prepare_image(image_bytes(640, 480, "JPEG")),
    )
    studio = Studio.open(
        Settings.from_environment(), start_watcher=False, catalog=default_catalog()
    )
    try:
        command_line = studio.check_batch(draft, Variations.of_prompt_lines("x" * 801 + "\nshort"))
    finally:
        studio.close()
    assert said == [problem.message for problem in command_line]
    # Shared by every clip: said once, first; one clip's own: named.
    assert said == [
        "The negative prompt is 501 characters; the limit is 500.",
        "Clip 1: The prompt is 801 characters; the limit is 800.",
    ]
    assert app.button(key="gen.submit").disabled
    assert not app.exception


def _blockers(app: AppTest) -> list[str]:
    (blockers,) = [
        as_read(markdown.value)
        for markdown in app.markdown
        if "Before you can generate" in markdown.value
    ]
    return [line.removeprefix("- ") for line in blockers.splitlines()[1:]]
