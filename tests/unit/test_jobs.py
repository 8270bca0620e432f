"""Submitting: drafts are checked, jobs are written first and sent exactly once."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

import simulator
from studio.catalog import default_catalog
from studio.gateway import GatewayClient
from studio.generation import InvalidRequest
from studio.imagehost import DataUriHost
from studio.jobs import Submitter, draw_seed, recordable_payload
from studio.records import BILLED, JobStatus
from studio.service import Studio
from tests.plugins.engine import (
    ENGINE_KEY,
    count_draft_checks,
    finished,
    first_frame,
    quick_draft,
    wait_until,
)

CATALOG = default_catalog()


def new_id() -> str:
    return str(uuid.uuid4())


def test_a_complete_draft_has_no_problems():
    assert quick_draft().problems(CATALOG) == []


def test_draft_problems_name_the_form_fields():
    draft = quick_draft(image=None, resolution="1080P", prompt="x" * 801)
    fields = {problem.field: problem.message for problem in draft.problems(CATALOG)}
    assert set(fields) == {"image", "resolution", "prompt"}
    assert "first frame" in fields["image"]
    assert "480P or 720P" in fields["resolution"]


def test_keyframe_models_need_a_last_frame():
    draft = quick_draft(model="wan2.1-kf2v-plus", resolution="720P", duration=5)
    assert [p.field for p in draft.problems(CATALOG)] == ["last_frame"]
    complete = quick_draft(
        model="wan2.1-kf2v-plus", resolution="720P", duration=5, last_frame=first_frame(shade=9)
    )
    assert complete.problems(CATALOG) == []


def test_seeds_are_drawn_in_the_gateway_range():
    seeds = {draw_seed(CATALOG) for _ in range(50)}
    assert all(CATALOG.limits.seed_min <= s <= CATALOG.limits.seed_max for s in seeds)
    assert len(seeds) > 40


def test_recorded_payload_names_images_by_hash():
    payload = {"model": "m", "input": {"img_url": "data:image/jpeg;base64,AAAA", "prompt": "p"}}
    recorded = json.loads(recordable_payload(payload, {"data:image/jpeg;base64,AAAA": "ab" * 32}))
    assert recorded["input"] == {"img_url": "image:" + "ab" * 32, "prompt": "p"}


def test_submit_writes_the_job_and_records_the_task(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator, store_of
):
    job = billed_studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    assert job.status is JobStatus.QUEUED
    assert job.mode == BILLED
    [task] = engine_gateway.tasks()
    assert job.task_id == task["task_id"]
    # No seed was chosen: one was drawn, recorded and sent, so reusing the job reproduces it.
    assert job.seed is not None
    assert task["seed"] == job.seed
    assert (job.output_width, job.output_height) == (640, 480)
    assert job.estimate_usd == CATALOG.model("wan2.1-i2v-turbo").price_per_second["480P"] * 3
    recorded = json.loads(store_of(billed_studio).get_request_json(job.id))
    assert recorded["input"]["img_url"] == f"image:{job.image_sha256}"
    assert recorded["parameters"]["seed"] == job.seed
    assert billed_studio.image_file(job.image_sha256).is_file()


def test_a_submit_checks_the_draft_once_and_records_what_the_estimate_said(
    billed_studio: Studio,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    store_of,
):
    draft = quick_draft(
        model="wan2.1-kf2v-plus",
        resolution=None,
        duration=None,
        image=first_frame(750, 1000),
        last_frame=first_frame(750, 1000, shade=9),
    )
    estimate = billed_studio.estimate(draft)
    checks = count_draft_checks(monkeypatch)
    job = billed_studio.submit(draft, submission_id=new_id(), session_id="s")
    assert len(checks) == 1
    assert job.status is JobStatus.QUEUED
    assert (job.resolution, job.duration) == ("720P", 5)
    assert job.estimate_usd == estimate.cost_usd
    assert (job.output_width, job.output_height) == (estimate.output_width, estimate.output_height)
    assert (job.output_width, job.output_height) == (816, 1104)
    recorded = json.loads(store_of(billed_studio).get_request_json(job.id))
    assert recorded["input"] == {
        "prompt": draft.prompt,
        "first_frame_url": f"image:{job.image_sha256}",
        "last_frame_url": f"image:{job.last_frame_sha256}",
    }


def test_the_same_submission_id_never_sends_twice(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator
):
    submission = new_id()
    jobs = []
    threads = [
        threading.Thread(
            target=lambda: jobs.append(
                billed_studio.submit(quick_draft(), submission_id=submission, session_id="s")
            )
        )
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    again = billed_studio.submit(quick_draft(), submission_id=submission, session_id="s")
    assert len(jobs) == len(threads)  # every concurrent submit came back with a job
    assert {job.id for job in [*jobs, again]} == {again.id}
    assert len(engine_gateway.tasks()) == 1
    assert billed_studio.count_history() == 1


def test_an_invalid_draft_raises_and_writes_nothing(billed_studio: Studio):
    with pytest.raises(InvalidRequest) as caught:
        billed_studio.submit(quick_draft(image=None), submission_id=new_id(), session_id="s")
    assert [p.field for p in caught.value.problems] == ["image"]
    assert billed_studio.count_history() == 0


@pytest.mark.parametrize(
    ("key_suffix", "code", "words"),
    [
        ("+rate_limit:endpoint=submit:retry_after=7", "RateLimitError", "about 7 seconds"),
    ],
)
def test_refused_submits_are_rejected_with_nothing_billed(
    billed_studio: Studio,
    engine_gateway: simulator.RunningSimulator,
    key_suffix: str,
    code: str,
    words: str,
):
    job = billed_studio.submit(
        quick_draft(), submission_id=new_id(), session_id="s", api_key=ENGINE_KEY + key_suffix
    )
    assert job.status is JobStatus.REJECTED
    assert job.error_code == code
    assert "Nothing was billed" in job.explanation
    assert words in job.explanation
    assert job.cost_usd is None
    assert engine_gateway.tasks() == []


def test_a_wrong_key_is_rejected_and_says_so(billed_studio: Studio):
    job = billed_studio.submit(
        quick_draft(), submission_id=new_id(), session_id="s", api_key="not-the-right-key"
    )
    assert job.status is JobStatus.REJECTED
    assert "API key" in job.explanation
    assert "not-the-right-key" not in job.explanation


def test_an_unreachable_gateway_is_rejected_as_never_sent(open_studio):
    studio = open_studio(api_key=ENGINE_KEY, base_url="http://127.0.0.1:9")
    job = studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    assert job.status is JobStatus.REJECTED
    assert "never reached the video service" in job.explanation


@pytest.mark.parametrize("fault", ["lost_submit", "malformed_json:endpoint=submit"])
def test_a_lost_answer_leaves_the_job_uncertain_and_never_resends(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator, fault: str
):
    key = f"{ENGINE_KEY}+{fault}"
    job = billed_studio.submit(quick_draft(), submission_id=new_id(), session_id="s", api_key=key)
    assert job.status is JobStatus.UNCERTAIN
    assert "may have reached the video service" in job.explanation
    # The watcher has work for it no more: it is not in flight and never due.
    assert job.next_poll_at is None
    billed_studio.poll_due_jobs()
    assert billed_studio.job(job.id).status is JobStatus.UNCERTAIN
    assert len(engine_gateway.tasks()) == 1


def test_a_job_whose_sender_died_becomes_uncertain(billed_studio: Studio, store_of):
    job = billed_studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    # Pretend the process stopped while sending a second job, before any answer arrived.
    store = store_of(billed_studio)
    stuck, _ = store.create_job(
        **{
            name: getattr(job, name)
            for name in [
                "mode",
                "session_id",
                "model",
                "resolution",
                "duration",
                "prompt",
                "negative_prompt",
                "prompt_extend",
                "watermark",
                "seed",
                "image_sha256",
                "image_source",
                "last_frame_sha256",
                "estimate_usd",
                "output_width",
                "output_height",
                "key_fingerprint",
            ]
        },
        submission_id=new_id(),
        request_json=None,
    )
    now = datetime.now(UTC)
    store.update(stuck.id, submitted_at=now, next_poll_at=now - timedelta(seconds=1))
    billed_studio.poll_due_jobs()  # now, rather than when the watcher next looks
    marked = wait_until(finished(billed_studio, stuck), what="the stuck job to be marked")
    assert marked.status is JobStatus.UNCERTAIN
    assert "stopped while sending" in marked.explanation


def test_the_key_is_never_written_to_the_data_folder(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator
):
    job = billed_studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    wait_until(finished(billed_studio, job))
    assert ENGINE_KEY.encode() not in billed_studio.export_csv()
    home: Path = billed_studio.settings.home
    for path in home.rglob("*"):
        if path.is_file():
            assert ENGINE_KEY.encode() not in path.read_bytes(), path.name
    assert ENGINE_KEY not in repr(billed_studio)
    assert ENGINE_KEY not in repr(vars(billed_studio._keys))
    assert ENGINE_KEY not in repr(billed_studio.settings)


def test_demo_jobs_are_marked_demo(demo_studio: Studio):
    job = demo_studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    assert job.is_demo
    assert job.status is JobStatus.QUEUED
    assert demo_studio.key_for_new_job(None).mode == "demo"
    assert demo_studio.key_for_new_job("typed-key-0000").mode == BILLED


def _submitter_for(studio: Studio) -> Submitter:
    # A second submitter on the Studio's own store and images: these tests give it the client.
    return Submitter(
        store=studio._store,
        library=studio._images,
        image_host=DataUriHost(),
        catalog=studio.catalog,
        policy=studio.policy,
    )


def test_a_key_with_an_invisible_character_is_rejected_as_never_sent(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator
):
    pasted = ENGINE_KEY + "\u200b"
    job = _submitter_for(billed_studio).submit(
        quick_draft(),
        client=GatewayClient(base_url=engine_gateway.url, api_key=pasted),
        submission_id=new_id(),
        session_id="s",
        mode=BILLED,
        key_fingerprint=None,
    )
    assert job.status is JobStatus.REJECTED
    assert job.error_code == "UnsendableKeyError"
    assert "U+200B" in job.explanation
    assert "never reached the video service" in job.explanation
    assert "Nothing was billed" in job.explanation
    assert "may have" not in job.explanation
    assert ENGINE_KEY not in job.explanation
    assert ENGINE_KEY not in (job.error_message or "")
    assert engine_gateway.tasks() == []
    # Nothing is left for the watcher to call uncertain later.
    billed_studio.poll_due_jobs()
    assert billed_studio.job(job.id).status is JobStatus.REJECTED


class _BrokenBeforeSending(GatewayClient):
    """A client whose request cannot even be built (a failure no gateway error describes)."""

    def _headers(self) -> dict[str, str]:
        raise RuntimeError("the request could not be built")


def test_any_failure_before_the_request_leaves_is_never_sent(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator
):
    job = _submitter_for(billed_studio).submit(
        quick_draft(),
        client=_BrokenBeforeSending(base_url=engine_gateway.url, api_key=ENGINE_KEY),
        submission_id=new_id(),
        session_id="s",
        mode=BILLED,
        key_fingerprint=None,
    )
    assert job.status is JobStatus.REJECTED
    assert "Nothing was billed" in job.explanation
    assert "may have" not in job.explanation
    assert engine_gateway.tasks() == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, '{"message": "Internal server error"}'),
        (503, "Service Unavailable"),
        (502, '{"error": {"code": "BadGateway", "message": "upstream failed"}}'),
        (599, ""),
    ],
)
def test_a_5xx_answer_to_a_submit_leaves_the_job_uncertain(
    billed_studio: Studio, httpserver: HTTPServer, status: int, body: str
):
    httpserver.expect_request(
        "/wan-i2v/v1/generateImageToVideoRequest", method="POST"
    ).respond_with_data(body, status=status)
    job = _submitter_for(billed_studio).submit(
        quick_draft(),
        client=GatewayClient(base_url=httpserver.url_for("/"), api_key=ENGINE_KEY),
        submission_id=new_id(),
        session_id="s",
        mode=BILLED,
        key_fingerprint=None,
    )
    assert job.status is JobStatus.UNCERTAIN
    stored = billed_studio.job(job.id)
    assert stored.status is JobStatus.UNCERTAIN
    assert "may have reached the video service" in stored.explanation
    assert "nothing was billed" not in stored.explanation.lower()
    assert "not billed" not in stored.explanation.lower()
    assert stored.cost_usd is None
    assert stored.next_poll_at is None
    # Sent once, and never again on its own.
    billed_studio.poll_due_jobs()
    assert billed_studio.job(job.id).status is JobStatus.UNCERTAIN
    assert len(httpserver.log) == 1


def test_a_5xx_from_the_simulated_gateway_is_uncertain_too(
    billed_studio: Studio, engine_gateway: simulator.RunningSimulator
):
    job = billed_studio.submit(
        quick_draft(),
        submission_id=new_id(),
        session_id="s",
        api_key=ENGINE_KEY + "+server_error:endpoint=submit",
    )
    assert job.status is JobStatus.UNCERTAIN
    assert job.error_message is not None
    assert "problem on its side" in job.explanation
    assert "Nothing was billed" not in job.explanation


def test_a_demo_video_is_saved_through_the_link_guard(demo_studio: Studio):
    # The embedded gateway serves its videos on 127.0.0.1, its own address: the one private
    # address the guard lets a video come from.
    assert demo_studio.demo_url is not None
    assert demo_studio.demo_url.startswith("http://127.0.0.1:")
    job = demo_studio.submit(quick_draft(), submission_id=new_id(), session_id="s")
    done = wait_until(finished(demo_studio, job), what="the demo job to finish")
    assert done.status is JobStatus.SUCCEEDED, done.explanation
    assert done.video_url is not None
    assert done.video_url.startswith(demo_studio.demo_url)
    saved = demo_studio.settings.home / done.video_path
    assert saved.read_bytes()[4:8] == b"ftyp"
