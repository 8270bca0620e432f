"""The one job view: honest progress, toasts that agree with the card, Try again, totals' words."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from components.services import get_studio
from studio import explain
from studio.keys import KEY_FROM_SESSION, KeyChoice
from studio.records import BILLED, DEMO, Job, JobFilter, JobStatus
from studio.store import JobStore
from tests.plugins.images import SHIPPED_LIMITS as LIMITS
from tests.ui.conftest import APP, JobMaker, as_read, texts

SESSION_ID = "9c8b7a65-4d3e-4f21-8a0b-1c2d3e4f5a60"
MINE = JobFilter(session_id=SESSION_ID)


def _session_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = SESSION_ID
    return at.run()


def _card(at: AppTest, job: Job) -> str:
    card = at.main.get_by_key(f"job-card-{job.id}")
    said = [str(node.value) for node in card if isinstance(getattr(node, "value", None), str)]
    said += [node.proto.text for node in card if node.type == "progress"]
    return as_read("\n".join(said))


def _toasts(at: AppTest) -> list[str]:
    return [as_read(str(toast.value)) for toast in at.toast]


def _sidebar(at: AppTest) -> str:
    return as_read("\n".join(str(element.value) for element in at.sidebar.markdown))


def test_a_started_job_says_generating_and_counts_from_the_click(
    app: AppTest, jobs: JobMaker
) -> None:
    clicked = datetime.now(UTC) - timedelta(seconds=40)
    job = jobs.make(
        status=JobStatus.QUEUED,
        session_id=SESSION_ID,
        created_at=clicked,
        submitted_at=clicked + timedelta(seconds=10),
        # The gateway's start time arrived in the same answer that still said "queued".
        started_at=clicked + timedelta(seconds=12),
    )
    at = _session_app()
    said = _card(at, job)
    assert "Generating" in said
    assert "Queued" not in said
    assert "The model is making your video" in said
    assert re.search(r"4\d s so far", said), said  # from the click, not from the submit
    assert not at.exception


def test_took_is_the_wait_from_the_click_to_the_saved_video(app: AppTest, jobs: JobMaker) -> None:
    clicked = datetime.now(UTC) - timedelta(hours=1)
    job = jobs.make(
        session_id=SESSION_ID,
        created_at=clicked,
        submitted_at=clicked + timedelta(seconds=3),
        finished_at=clicked + timedelta(seconds=20),  # the gateway's end
    )
    assert job.video_path is not None
    saved = (clicked + timedelta(seconds=31)).timestamp()
    os.utime(get_studio().settings.home / job.video_path, (saved, saved))
    at = _session_app()
    said = _card(at, job)
    assert "took 31 s" in said
    assert not at.exception


def test_the_toast_after_a_click_agrees_with_the_card() -> None:
    def script() -> None:
        from dataclasses import replace

        from components.job_view import submitted_toast
        from studio.records import JobStatus
        from tests.unit.test_humane import BILLED_JOB

        for status in (JobStatus.QUEUED, JobStatus.REJECTED, JobStatus.UNCERTAIN):
            submitted_toast(replace(BILLED_JOB, status=status, cost_usd=None))

    at = AppTest.from_function(script).run()
    queued, refused, unsure = _toasts(at)
    assert queued == "Queued: your video is on its way."
    assert refused == "Not accepted: no video will be made. Its card says why."
    assert "on its way" not in refused
    assert unsure.startswith("Not sure it was sent")
    assert "on its way" not in unsure


def test_a_failure_that_usually_passes_offers_try_again_with_its_price(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    failed = jobs.make(
        status=JobStatus.FAILED,
        session_id=SESSION_ID,
        prompt="a heron takes off",
        explanation=explain.explain_failure("InternalError", None, limits=LIMITS),
    )
    filtered = jobs.make(
        status=JobStatus.FAILED,
        session_id=SESSION_ID,
        explanation=explain.explain_failure("DataInspectionFailed", None, limits=LIMITS),
    )
    at = _session_app()
    # The content filter's refusal is not something a second try fixes: no button there.
    assert f"job.{filtered.id}.try-again" not in {button.key for button in at.button}
    at.button(key=f"job.{failed.id}.open").click().run()
    again = at.button(key=f"job.{failed.id}.try-again")
    assert again.label == "Try again · free in demo mode"  # the failed one cost nothing

    again.click().run()
    assert store.count_jobs(MINE) == 3
    newest = store.list_jobs(MINE, limit=1)[0]
    assert newest.id not in (failed.id, filtered.id)
    assert (newest.prompt, newest.model, newest.resolution, newest.seed) == (
        failed.prompt,
        failed.model,
        failed.resolution,
        failed.seed,
    )
    assert any("your video is on its way" in toast for toast in _toasts(at))
    assert "a heron takes off" in _card(at, newest)  # the new job is in focus
    # A second click on the same button makes no second job.
    at.button(key=f"job.{failed.id}.open").click().run()
    at.button(key=f"job.{failed.id}.try-again").click().run()
    assert store.count_jobs(MINE) == 3
    assert not at.exception


def test_a_billed_try_again_names_the_price(
    app: AppTest, jobs: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = jobs.make(
        mode=BILLED,
        model="wan2.2-i2v-flash",
        resolution="720P",
        cost="0.225",
        status=JobStatus.FAILED,
        session_id=SESSION_ID,
        explanation=explain.explain_failure("InternalError", None, limits=LIMITS),
    )
    # As if a key were entered: the price of the new job is what it would be billed.
    billed = KeyChoice(mode=BILLED, key="a-key", source=KEY_FROM_SESSION)
    monkeypatch.setattr(type(get_studio()), "key_for_new_job", lambda self, key=None: billed)
    at = _session_app()
    assert at.button(key=f"job.{failed.id}.try-again").label == "Try again · $0.225"
    assert not at.exception


def test_the_sidebar_counts_a_job_as_pending_from_the_moment_it_is_sent(
    app: AppTest, jobs: JobMaker
) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-flash", resolution="720P", cost="0.225")
    jobs.make(
        mode=BILLED,
        model="wan2.2-i2v-flash",
        resolution="720P",
        cost="0.225",
        status=JobStatus.QUEUED,
        session_id=SESSION_ID,
    )
    jobs.make(mode=DEMO, status=JobStatus.RUNNING, session_id=SESSION_ID)
    at = _session_app()
    sidebar = _sidebar(at)
    assert "This session: **$0.000** · 0 videos · 1 pending ($0.225 if it succeeds)" in sidebar
    assert "All time: **$0.225** · 1 video · 1 pending ($0.225 if it succeeds)" in sidebar
    assert "This session: 0 videos, would have cost $0.000 · 1 pending" in sidebar
    assert not at.exception


def test_demo_totals_say_what_the_videos_would_have_cost(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(mode=DEMO, session_id=SESSION_ID)
    jobs.make(mode=DEMO, session_id=SESSION_ID)
    at = _session_app()
    assert "Demo mode, nothing is billed · this session: 2 videos, would have cost $0.170" in (
        texts(at)
    )
    assert "**Demo videos** · not billed" in _sidebar(at)
    assert "This session: 2 videos, would have cost $0.170" in _sidebar(at)
    assert "Billed spend" not in _sidebar(at)

    at.switch_page("pages/history.py").run()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["This session"] == "2 demo videos"
    assert "would have cost $0.170" in texts(at)
    assert not at.exception


def _after_a_run_that_saw(job: Job) -> AppTest:
    """This session, as a run that saw ``job`` in flight left it.

    AppTest repeats only the ticking fragment on ``run()``, so each step is a fresh full run; the
    browser test follows a job that ends while another page is open.
    """
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = SESSION_ID
    at.session_state["_jobs.seen_in_flight"] = frozenset({job.id})
    return at.run()


def test_a_job_that_ended_since_the_last_run_is_announced_once_and_marks_the_title(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    job = jobs.make(status=JobStatus.RUNNING, session_id=SESSION_ID)
    at = _after_a_run_that_saw(job)
    assert not _toasts(at)  # still in flight: nothing to say yet
    assert at.session_state["_jobs.seen_in_flight"] == frozenset({job.id})
    assert at.session_state["_jobs.title_mark"] is None

    store.update(
        job.id, status=JobStatus.SUCCEEDED, video_path="videos/x.mp4", cost_usd=Decimal("0.085")
    )
    at = _after_a_run_that_saw(job)
    assert _toasts(at) == ["Your video is ready (Wan 2.2 Flash · 5 s)."]
    assert at.session_state["_jobs.title_mark"] == "✓ Done"
    assert at.session_state["_jobs.seen_in_flight"] == frozenset()
    assert not at.exception


def test_a_job_that_failed_since_the_last_run_is_announced_as_not_made(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    job = jobs.make(status=JobStatus.QUEUED, session_id=SESSION_ID)
    store.update(job.id, status=JobStatus.FAILED)
    at = _after_a_run_that_saw(job)
    assert _toasts(at) == [
        "Failed: your video (Wan 2.2 Flash · 5 s) was not made. Its card says why."
    ]
    assert at.session_state["_jobs.title_mark"] == "✕ Not made"
    assert not at.exception
