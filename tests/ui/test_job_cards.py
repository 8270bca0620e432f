"""Job cards: every state a job can be in reads sensibly, with what is going on or what to do."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from components.services import get_studio
from studio import explain
from studio.errors import InsufficientBalanceError
from studio.records import BILLED, DEMO, JobStatus
from tests.plugins.images import SHIPPED_LIMITS as LIMITS
from tests.ui.conftest import APP, JobMaker, as_read

SESSION_ID = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
DATA_INSPECTION = "Input data may contain inappropriate content."

# One job per state: its label, and a sentence of what is happening or what to do.
STATES: list[tuple[JobStatus, str, dict[str, object], str]] = [
    (JobStatus.QUEUED, DEMO, {}, "Waiting its turn at the video service"),
    (JobStatus.RUNNING, DEMO, {}, "The model is making your video"),
    (JobStatus.DOWNLOADING, DEMO, {}, "Saving the finished video"),
    (JobStatus.SUCCEEDED, DEMO, {}, "Demo, not billed: would have cost $0.085 · 5 s × $0.017/s"),
    (
        JobStatus.FAILED,
        BILLED,
        {
            "error_code": "DataInspectionFailed",
            "error_message": DATA_INSPECTION,
            "explanation": explain.explain_failure(
                "DataInspectionFailed", DATA_INSPECTION, limits=LIMITS
            ),
        },
        "content filter refused the image, the prompt or the generated video",
    ),
    (
        JobStatus.REJECTED,
        BILLED,
        {
            "explanation": explain.explain_rejection(
                InsufficientBalanceError("Your account has no credit left.", status_code=402)
            )
        },
        "Add credit to your Pixazo account",
    ),
    (
        JobStatus.UNCERTAIN,
        BILLED,
        {"explanation": explain.explain_uncertain()},
        "Wan Studio does not send it again on its own",
    ),
    (
        JobStatus.TIMED_OUT,
        BILLED,
        {"task_id": "task-slow", "explanation": explain.explain_timed_out(30)},
        "use Check again to look once more",
    ),
    (
        JobStatus.LOST,
        BILLED,
        {"task_id": "task-lost", "explanation": explain.explain_lost(polls=3, seconds=12)},
        "The video service does not know this task",
    ),
    (
        JobStatus.EXPIRED,
        BILLED,
        {"task_id": "task-old", "explanation": explain.explain_expired()},
        "its download link expired",
    ),
    (
        JobStatus.CANCELED,
        BILLED,
        {"explanation": explain.explain_canceled()},
        "cancelled by the video service before it ran",
    ),
]


def _card_text(at: AppTest, job_id: int) -> str:
    """Everything a job's card says (opened from the gallery when another is in focus)."""
    if not _has_card(at, job_id):
        at.button(key=f"job.{job_id}.open").click().run()
    card = at.main.get_by_key(f"job-card-{job_id}")
    assert isinstance(card, Block)
    said = []
    for node in card:
        if isinstance(node, Block):
            continue
        value = getattr(node, "value", None)
        if isinstance(value, str):
            said.append(value)
        if node.type == "progress":
            said.append(node.proto.text)
    return as_read("\n".join(said))


def _has_card(at: AppTest, job_id: int) -> bool:
    try:
        at.main.get_by_key(f"job-card-{job_id}")
    except KeyError:
        return False
    return True


def _session_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = SESSION_ID
    return at.run()


@pytest.fixture
def demo_key(app: AppTest) -> str:
    """The key fingerprint of the app's demo gateway, so in-flight jobs are not "waiting"."""
    fingerprint = get_studio().demo_fingerprint
    assert fingerprint is not None
    return fingerprint


def test_every_state_shows_its_label_and_what_it_means(jobs: JobMaker, demo_key: str) -> None:
    made = []
    for status, mode, fields, meaning in STATES:
        if status.in_flight:
            fields = {"key_fingerprint": demo_key, "submitted_at": datetime.now(UTC), **fields}
        job = jobs.make(
            mode=mode,
            status=status,
            session_id=SESSION_ID,
            prompt=f"a job that is {status.value}",
            cost="0.5" if mode == BILLED else None,
            **fields,
        )
        made.append((job, meaning))

    at = _session_app()
    for job, meaning in made:
        said = _card_text(at, job.id)
        assert job.status.label in said, job.status
        assert meaning in said, job.status
        assert f"a job that is {job.status.value}" in said
    # No statistics yet: the cards say how long jobs of their mode usually take.
    in_flight = [job for job, _ in made if job.in_flight]
    assert all("Usually under a minute" in _card_text(at, job.id) for job in in_flight)
    assert "Waiting for the API key" not in "\n".join(_card_text(at, job.id) for job in in_flight)
    by_status = {job.status: job for job, _ in made}
    _card_text(at, by_status[JobStatus.SUCCEEDED].id)
    assert at.download_button(key=f"job.{by_status[JobStatus.SUCCEEDED].id}.download")
    _card_text(at, by_status[JobStatus.UNCERTAIN].id)
    assert at.button(key=f"job.{by_status[JobStatus.UNCERTAIN].id}.resend")
    _card_text(at, by_status[JobStatus.TIMED_OUT].id)
    assert at.button(key=f"job.{by_status[JobStatus.TIMED_OUT].id}.recheck")
    assert "Not billed" in _card_text(at, by_status[JobStatus.FAILED].id)
    assert not at.exception


def test_a_billed_job_without_history_gives_the_usual_range(jobs: JobMaker, demo_key: str) -> None:
    # The catalog's prior for Wan 2.2 Plus at 1080P: about 5 minutes running, plus the queue.
    job = jobs.make(
        model="wan2.2-i2v-plus",
        resolution="1080P",
        mode=BILLED,
        status=JobStatus.QUEUED,
        session_id=SESSION_ID,
        submitted_at=datetime.now(UTC),
        key_fingerprint=demo_key,
    )
    at = _session_app()
    assert "Usually 3–5 minutes, sometimes up to 10" in _card_text(at, job.id)
    assert not at.exception


def test_similar_past_jobs_give_a_progress_bar_and_the_time_left(
    jobs: JobMaker, demo_key: str
) -> None:
    now = datetime.now(UTC)
    for hours_ago in (1, 2, 3):
        sent = now - timedelta(hours=hours_ago)
        jobs.make(submitted_at=sent, finished_at=sent + timedelta(seconds=120))
    job = jobs.make(
        status=JobStatus.RUNNING,
        session_id=SESSION_ID,
        submitted_at=now - timedelta(seconds=30),
        key_fingerprint=demo_key,
    )
    at = _session_app()
    said = _card_text(at, job.id)
    assert re.search(r"About (1|2) min left", said), said
    bars = [node for node in at.main.get_by_key(f"job-card-{job.id}") if node.type == "progress"]
    assert len(bars) == 1
    assert 15 < bars[0].value < 40  # percent: 30 s of about 120 s
    assert not at.exception


def test_a_finished_job_from_an_earlier_day_says_when(jobs: JobMaker, studio_home: Path) -> None:
    sent = datetime.now(UTC) - timedelta(days=3)
    job = jobs.make(
        session_id=SESSION_ID,
        created_at=sent,
        submitted_at=sent + timedelta(seconds=2),
        finished_at=sent + timedelta(seconds=95),
    )
    at = _session_app()
    said = _card_text(at, job.id)
    assert "took 1 min 35 s" in said
    assert "today" not in said.lower()
    assert not at.exception


def test_a_billed_video_that_could_not_be_saved_shows_its_cost(
    jobs: JobMaker, demo_key: str
) -> None:
    expired = jobs.make(
        mode=BILLED,
        status=JobStatus.EXPIRED,
        session_id=SESSION_ID,
        task_id="task-old",
        billed_seconds=5,
        cost_usd=Decimal("0.5"),
        error_code="LinkExpired",
        explanation=explain.explain_expired(),
    )
    disk_full = jobs.make(
        mode=BILLED,
        status=JobStatus.DOWNLOADING,
        session_id=SESSION_ID,
        submitted_at=datetime.now(UTC),
        key_fingerprint=demo_key,
        billed_seconds=5,
        cost_usd=Decimal("0.5"),
        explanation=explain.explain_disk_full(),
    )
    at = _session_app()

    said = _card_text(at, expired.id)
    assert "$0.500 · 5 s × $0.100/s" in said
    assert "Not billed" not in said
    assert "made and billed" in said
    assert "could not be fetched in time" in said
    saving = _card_text(at, disk_full.id)
    assert "$0.500 · 5 s × $0.100/s" in saving
    assert "charged only if it succeeds" not in saving
    assert "The disk is full, so the video could not be saved" in saving
    # AppTest drops sidebar updates on reruns, so a fresh run reads the totals.
    sidebar = as_read("\n".join(element.value for element in _session_app().sidebar.markdown))
    assert "This session: **$1.000** · 2 videos" in sidebar
    assert "pending" not in sidebar  # the saving one is billed already
    assert not at.exception
