"""The History page: totals kept apart by mode, filters, an opened job, reuse and export."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from streamlit.testing.v1 import AppTest

import simulator
from components.services import get_studio
from studio import explain, images
from studio.catalog import default_catalog
from studio.generation import JobDraft
from studio.records import BILLED, DEMO, Job, JobStatus
from studio.service import Studio
from studio.settings import Settings
from studio.store import JobStore, sqlite_url
from tests.plugins.engine import ENGINE_KEY, FAST_POLICY, quick_draft
from tests.ui.conftest import APP, JobMaker, as_read, texts

T = TypeVar("T")


def _history(app: AppTest) -> AppTest:
    return app.switch_page("pages/history.py").run()


def _table_prompts(app: AppTest) -> list[str]:
    return list(app.dataframe[-1].value["Prompt"])  # the jobs table comes last


def test_totals_keep_billed_and_demo_apart(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-plus", resolution="1080P", cost="0.75")
    jobs.make(mode=BILLED, model="wan2.2-i2v-flash", resolution="720P", cost="0.225")
    jobs.make(mode=DEMO, prompt="a demo clip")
    jobs.make(mode=BILLED, status=JobStatus.FAILED, prompt="refused by the filter")
    _history(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["All time"] == "$0.975"
    assert metrics["Today"] == "$0.975"
    assert metrics["This session"] == "$0.000"
    said = texts(app)
    assert "2 videos billed, 10 s · demo, not billed: 1 video, would have cost $0.085" in said
    by_model = app.dataframe[0].value  # the by-model table comes first, above the jobs
    assert set(by_model["Model"]) == {"Wan 2.2 Plus", "Wan 2.2 Flash"}
    assert app.download_button(key="hist.export").label == "Export CSV"
    assert not app.exception


def test_filters_narrow_the_table(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(
        mode=BILLED,
        model="wan2.2-i2v-plus",
        resolution="1080P",
        cost="0.75",
        prompt="sunrise over the lake",
    )
    jobs.make(mode=DEMO, model="wan2.2-i2v-flash", prompt="a cat stretching")
    jobs.make(mode=DEMO, model="wan2.2-i2v-flash", status=JobStatus.FAILED, prompt="a dog running")
    _history(app)
    assert sorted(_table_prompts(app)) == [
        "a cat stretching",
        "a dog running",
        "sunrise over the lake",
    ]

    app.multiselect(key="hist.models").set_value(["wan2.2-i2v-flash"]).run()
    assert sorted(_table_prompts(app)) == ["a cat stretching", "a dog running"]

    app.multiselect(key="hist.statuses").set_value([JobStatus.FAILED]).run()
    assert _table_prompts(app) == ["a dog running"]

    app.multiselect(key="hist.statuses").set_value([]).run()
    app.multiselect(key="hist.models").set_value([]).run()
    app.text_input(key="hist.text").set_value("SUNRISE").run()
    assert _table_prompts(app) == ["sunrise over the lake"]

    app.text_input(key="hist.text").set_value("").run()
    app.segmented_control(key="hist.mode").set_value("Demo").run()
    assert sorted(_table_prompts(app)) == ["a cat stretching", "a dog running"]

    app.selectbox(key="hist.when").set_value("Today").run()
    assert len(_table_prompts(app)) == 2

    app.text_input(key="hist.text").set_value("nothing like this").run()
    assert "No jobs match" in texts(app)
    assert not app.exception


def test_an_opened_job_plays_and_its_settings_fill_the_form(app: AppTest, jobs: JobMaker) -> None:
    job = jobs.make(
        mode=DEMO, model="wan2.2-i2v-flash", resolution="480P", prompt="waves at dusk", seed=4242
    )
    _history(app)
    assert not app.get("video")
    app.selectbox(key="hist.open").set_value(job.id).run()
    videos = app.get("video")
    assert len(videos) == 1
    assert videos[0].proto.url
    assert app.download_button(key="hist.download").label == "Download video"

    app.button(key="hist.reuse").click().run()
    assert app.selectbox(key="gen.model").value == "wan2.2-i2v-flash"
    assert app.segmented_control(key="gen.resolution").value == "480P"
    assert app.text_area(key="gen.prompt").value == "waves at dusk"
    assert app.text_area(key="gen.negative_prompt").value == "blurry"
    assert app.toggle(key="gen.prompt_extend").value is False
    assert app.toggle(key="gen.watermark").value is True
    assert app.toggle(key="gen.random_seed").value is False
    assert app.number_input(key="gen.seed").value == 4242
    said = texts(app)
    assert f"The settings of job #{job.id} are in the form" in said
    assert "shore.jpg" in said
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def _noting(reads: list[str], name: str, read: Callable[..., T]) -> Callable[..., T]:
    def noted(*args: object, **kwargs: object) -> T:
        reads.append(name)
        return read(*args, **kwargs)

    return noted


def test_reusing_a_job_reads_its_stored_image_once(
    app: AppTest, jobs: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = jobs.make(mode=DEMO, model="wan2.2-i2v-flash", resolution="480P")
    _history(app)
    app.selectbox(key="hist.open").set_value(job.id).run()
    reads: list[str] = []
    # Every way the engine reads an image (previews aside) goes through one of these.
    for name in ("read_image", "inspect_image"):
        monkeypatch.setattr(images, name, _noting(reads, name, getattr(images, name)))
    app.button(key="hist.reuse").click().run()
    assert reads == ["read_image"]  # the check comes with the prepared image
    assert "shore.jpg" in texts(app)
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_no_jobs_at_all_points_to_generate(app: AppTest) -> None:
    _history(app)
    said = texts(app)
    assert "No videos yet." in said
    assert not app.dataframe
    assert not app.metric
    assert not app.exception


def test_the_table_says_the_day_and_a_short_cost(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-plus", resolution="1080P", cost="0.75")
    jobs.make(mode=DEMO, prompt="a demo clip")
    jobs.make(mode=BILLED, status=JobStatus.FAILED, prompt="refused by the filter")
    # A submit whose answer was lost may still be charged.
    jobs.make(mode=BILLED, status=JobStatus.UNCERTAIN, prompt="maybe sent", cost="0.2")
    _history(app)
    table = app.dataframe[-1].value
    assert all(re.fullmatch(r"Today \d\d:\d\d", when) for when in table["Time"])
    # Newest first; three decimals everywhere, and no "≈" where billing per second is exact.
    assert list(table["Cost"]) == ["$0.200 pending", "not billed", "free (demo)", "$0.750"]
    assert list(table["Video"]) == ["480P · 5 s", "480P · 5 s", "480P · 5 s", "1080P · 5 s"]
    assert "4 jobs, newest first" in texts(app)
    assert not app.exception


def _send_from_the_command_line(*drafts: JobDraft) -> list[Job]:
    """Jobs sent the way ``python -m studio generate`` sends them: its own engine, same data."""
    cli = Studio.open(
        Settings.from_environment(),
        start_watcher=False,
        catalog=default_catalog(),
        poll_policy=FAST_POLICY,
    )
    try:
        return [
            cli.submit(draft, submission_id=str(uuid.uuid4()), session_id="cli-0123456789ab")
            for draft in drafts
        ]
    finally:
        cli.close()


def _open_in_history(job_id: int) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.switch_page("pages/history.py").run()
    return at.selectbox(key="hist.open").set_value(job_id).run()


def test_history_settles_the_uncertain_jobs_the_command_line_sent(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gateway loses every submit answer of this key: each job sent with it is uncertain.
    monkeypatch.setenv("PIXAZO_API_KEY", f"{ENGINE_KEY}+lost_submit")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    dismissed, resent = _send_from_the_command_line(
        quick_draft(prompt="dismiss me"), quick_draft(prompt="send me again")
    )
    assert dismissed.status is resent.status is JobStatus.UNCERTAIN

    at = _open_in_history(dismissed.id)
    assert at.button(key=f"job.{dismissed.id}.resend").label == "Send again (may be billed twice)"
    at.button(key=f"job.{dismissed.id}.dismiss").click().run()
    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        settled = store.get(dismissed.id)
        assert settled is not None
        assert settled.status is JobStatus.CANCELED
        assert "Dismissed" in (settled.explanation or "")

        at.selectbox(key="hist.open").set_value(resent.id).run()
        at.button(key=f"job.{resent.id}.resend").click().run()
        old = store.get(resent.id)
        assert old is not None
        assert old.status is JobStatus.CANCELED
        newest = store.list_jobs(limit=1)[0]
        assert newest.id not in (dismissed.id, resent.id)
        assert newest.prompt == "send me again"
        assert f"Sent again as job {newest.id}" in (old.explanation or "")
    finally:
        store.close()
    assert not at.exception


def test_history_sends_again_only_with_a_key_this_session_holds(
    studio_home: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIXAZO_API_KEY", f"{ENGINE_KEY}+lost_submit")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    (uncertain,) = _send_from_the_command_line(quick_draft())
    # The app runs without that key: it may not spend it.
    monkeypatch.delenv("PIXAZO_API_KEY")
    at = _open_in_history(uncertain.id)
    at.button(key=f"job.{uncertain.id}.resend").click().run()
    assert "not entered in this browser session" in as_read(
        " ".join(str(toast.value) for toast in at.toast)
    )
    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        assert store.count_jobs() == 1
        unchanged = store.get(uncertain.id)
        assert unchanged is not None
        assert unchanged.status is JobStatus.UNCERTAIN
    finally:
        store.close()
    assert not at.exception


def test_history_checks_again_on_a_job_that_took_too_long(app: AppTest, jobs: JobMaker) -> None:
    demo_key = get_studio().demo_fingerprint
    slow = jobs.make(
        status=JobStatus.TIMED_OUT,
        task_id="task-slow",
        key_fingerprint=demo_key,
        submitted_at=datetime.now(UTC),
        explanation=explain.explain_timed_out(30),
    )
    _history(app)
    app.selectbox(key="hist.open").set_value(slow.id).run()
    app.button(key=f"job.{slow.id}.recheck").click().run()
    checked = jobs.store.get(slow.id)
    assert checked is not None
    assert checked.status is not JobStatus.TIMED_OUT
    assert checked.explanation != explain.explain_timed_out(30)
    assert not app.exception
