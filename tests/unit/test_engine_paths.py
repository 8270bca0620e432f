"""Engine paths end to end: billed usage, keyframe jobs, cancelled and link-less tasks."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from werkzeug.wrappers import Response

import simulator
from studio.records import JobStatus
from studio.service import Studio
from studio.watcher import looks_like_mp4
from tests.plugins.engine import (
    ENGINE_KEY,
    RequestLog,
    finished,
    first_frame,
    quick_draft,
    wait_until,
)

TURBO_480P_PER_SECOND = Decimal("0.045")
KEYFRAME_720P_PER_SECOND = Decimal("0.125")
FRAMES_PATH = "/wan-i2v/v1/generateImageToVideoFrameRequest"
FIRST_FRAME_PATH = "/wan-i2v/v1/generateImageToVideoRequest"


def submit(studio: Studio, *, api_key: str | None = None, **changes: object):
    return studio.submit(
        quick_draft(**changes), submission_id=str(uuid.uuid4()), session_id="s", api_key=api_key
    )


# Billing follows the usage the gateway reports, not the length that was asked for.


@pytest.mark.parametrize(
    ("requested", "reported", "billed_seconds"),
    [
        # Half a second rounds up (half-even would give 2): the stored seconds are whole.
        (3, "2.5", 3),
        (5, "4", 4),
        (5, "3.4", 3),
    ],
)
def test_the_cost_is_the_reported_usage_times_the_rate(
    billed_studio: Studio, requested: int, reported: str, billed_seconds: int
):
    key = f"{ENGINE_KEY}+report_usage:video_duration={reported}"
    job = submit(billed_studio, api_key=key, duration=requested)
    done = wait_until(finished(billed_studio, job), what="the billed job")
    assert done.status is JobStatus.SUCCEEDED
    # The cost is the exact reported seconds times the rate; only the seconds shown are rounded.
    expected_cost = TURBO_480P_PER_SECOND * Decimal(reported)
    assert done.billed_seconds == billed_seconds
    assert done.cost_usd == expected_cost
    assert done.estimate_usd == TURBO_480P_PER_SECOND * requested
    totals = billed_studio.totals("s")
    for spend in (totals.session.billed, totals.today.billed, totals.all_time.billed):
        assert spend.videos == 1
        assert spend.seconds == billed_seconds
        assert spend.cost_usd == expected_cost
    assert totals.all_time.demo.cost_usd == 0
    assert totals.by_model["wan2.1-i2v-turbo"].billed.cost_usd == expected_cost


def test_a_usage_of_zero_seconds_bills_the_requested_length(billed_studio: Studio):
    # Zero is not a believable usage for a saved video: the requested length is billed instead.
    job = submit(billed_studio, api_key=f"{ENGINE_KEY}+report_usage:video_duration=0")
    done = wait_until(finished(billed_studio, job), what="the billed job")
    assert done.status is JobStatus.SUCCEEDED
    assert done.billed_seconds == 3
    assert done.cost_usd == TURBO_480P_PER_SECOND * 3


# A first-and-last-frame job through the whole engine.


def test_a_keyframe_job_goes_through_the_frames_path_to_a_saved_video(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator, request_log: RequestLog
):
    first, last = first_frame(shade=10), first_frame(shade=200)
    job = submit(
        billed_studio,
        model="wan2.1-kf2v-plus",
        resolution="720P",
        duration=5,
        image=first,
        last_frame=last,
    )
    assert job.status is JobStatus.QUEUED, job.explanation
    done = wait_until(finished(billed_studio, job), what="the keyframe job")
    assert done.status is JobStatus.SUCCEEDED, done.explanation
    video = billed_studio.video_file(done)
    assert video is not None
    assert looks_like_mp4(video)
    assert done.last_frame_sha256 is not None
    assert done.last_frame_sha256 != done.image_sha256
    assert done.cost_usd == KEYFRAME_720P_PER_SECOND * 5

    [task] = engine_gateway.tasks()
    assert task["model"] == "wan2.1-kf2v-plus"
    sent_input = task["submitted"]["input"]
    assert set(sent_input) >= {"first_frame_url", "last_frame_url"}
    assert "img_url" not in sent_input
    assert sent_input["first_frame_url"] != sent_input["last_frame_url"]
    assert request_log.count(FRAMES_PATH) == 1
    assert request_log.count(FIRST_FRAME_PATH) == 0


# Answers the simulator does not give on its own: a scripted gateway.


@pytest.fixture
def final_answer_gateway(httpserver):
    """A gateway whose every poll gives the final answer a test puts in ``answer``."""
    answer: dict = {}
    httpserver.expect_request(FIRST_FRAME_PATH, method="POST").respond_with_json(
        {"request_id": "r-1", "output": {"task_id": "t-1", "task_status": "PENDING"}}
    )

    def poll(_request):
        output = {"task_id": "t-1", "submit_time": "2025-07-27 21:05:15.212", **answer["output"]}
        body = {"request_id": "r", "output": output, **answer.get("extra", {})}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/wan-video-polling/getTextToVideoResult").respond_with_handler(poll)
    return httpserver, answer


def _studio_on(open_studio, server, **options) -> Studio:
    return open_studio(
        api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"), **options
    )


def test_a_cancelled_task_ends_canceled_and_unbilled(open_studio, final_answer_gateway):
    server, answer = final_answer_gateway
    answer["output"] = {"task_status": "CANCELED", "end_time": "2025-07-27 21:06:00.000"}
    studio = _studio_on(open_studio, server)
    job = submit(studio)
    done = wait_until(finished(studio, job), what="the cancelled job")
    assert done.status is JobStatus.CANCELED
    assert done.error_code == "CANCELED"
    assert "cancel" in done.explanation.lower()
    assert done.cost_usd is None
    assert done.billed_seconds is None
    assert studio.video_file(done) is None
    assert studio.totals("s").all_time.billed.cost_usd == 0


def test_a_success_without_a_video_link_is_never_shown_as_done(
    open_studio, final_answer_gateway, store_of
):
    server, answer = final_answer_gateway
    answer["output"] = {"task_status": "SUCCEEDED", "end_time": "2025-07-27 21:06:00.000"}
    answer["extra"] = {"usage": {"video_duration": 3, "video_count": 1}}
    studio = _studio_on(open_studio, server, start_watcher=False)
    job = submit(studio)
    # Each check finds no link: the job stays in flight and says why. The gateway reported the
    # video made, so its usage is billed once, however often the job is checked.
    billed = Decimal("0.135")  # Turbo 480P: 3 s at $0.045
    for _ in range(3):
        store_of(studio).update(job.id, next_poll_at=job.submitted_at)
        assert studio.poll_due_jobs() == 1
        current = studio.job(job.id)
        assert current.in_flight
        assert current.status is not JobStatus.SUCCEEDED
        assert "no video link" in current.explanation
        assert current.video_path is None
        assert current.cost_usd == billed
    assert studio.totals("s").all_time.billed.cost_usd == billed
    # Past its deadline it times out without a video, and the cost it was billed stays counted.
    store_of(studio).update(job.id, next_poll_at=job.submitted_at, deadline_at=job.submitted_at)
    studio.poll_due_jobs()
    done = studio.job(job.id)
    assert done.status is JobStatus.TIMED_OUT
    assert done.cost_usd == billed
    assert studio.totals("s").all_time.billed.cost_usd == billed
