"""The watcher against the running simulator: every status, faults, restarts and two watchers."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Response

import simulator
from studio import store as store_module
from studio.expectations import JobClass, RunTimeEstimator
from studio.explain import explain_disk_full
from studio.records import JobStatus
from studio.schedule import ExpectedRunTime, PollPolicy
from studio.service import Studio
from studio.watcher import Backoff, Watcher, looks_like_mp4
from tests.plugins.engine import (
    CATALOG,
    ENGINE_KEY,
    FAST_POLICY,
    RequestLog,
    finished,
    quick_draft,
    settings_for,
    wait_until,
)
from tests.plugins.simulator import wait_for_task

REPOSITORY = Path(__file__).resolve().parents[2]
UPSTREAM_TZ = timezone(timedelta(hours=8))
TURBO_480P = Decimal("0.045")


def submit(studio: Studio, *, api_key: str | None = None, **changes: object):
    return studio.submit(
        quick_draft(**changes), submission_id=str(uuid.uuid4()), session_id="s", api_key=api_key
    )


def own_watcher(
    studio: Studio, *, estimator: RunTimeEstimator | None = None, **options: Any
) -> Watcher:
    """A watcher of its own on the Studio's store and keys, on the fast schedule."""
    return Watcher(
        store=studio._store,
        home=studio.settings.home,
        catalog=studio.catalog,
        client_for_key=studio._keys.watch_client,
        held_keys=studio.held_key_fingerprints,
        policy=FAST_POLICY,
        budget=studio.budget,
        estimator=estimator or studio._estimator,
        **options,
    )


def drive(studio: Studio, job_id: int) -> Callable[[], bool]:
    """A predicate that runs one watcher round in this thread and says whether the job ended."""

    def step() -> bool:
        studio.poll_due_jobs()
        return not studio.job(job_id).in_flight

    return step


def test_a_demo_job_runs_to_a_saved_video(demo_studio: Studio):
    job = submit(demo_studio)
    done = wait_until(finished(demo_studio, job), what="the demo job")
    assert done.status is JobStatus.SUCCEEDED
    assert done.mode == "demo"
    path = demo_studio.video_file(done)
    assert path is not None
    assert path.name == f"{done.id}.mp4"
    assert looks_like_mp4(path)
    assert done.billed_seconds == 3
    assert done.cost_usd == TURBO_480P * 3
    assert done.explanation is None
    assert done.poll_count >= 1
    assert done.submitted_at <= done.queued_at <= done.finished_at
    assert done.started_at is None or done.started_at <= done.finished_at
    assert done.lease_owner is None
    assert done.next_poll_at is None
    totals = demo_studio.totals("s")
    assert totals.session.demo.videos == 1
    assert totals.session.demo.cost_usd == TURBO_480P * 3
    assert totals.all_time.billed.videos == 0


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("DataInspectionFailed", "content filter refused the image, the prompt or the generated"),
        ("InternalError", "failed on its side"),
    ],
)
def test_failed_tasks_keep_the_code_and_explain_it(billed_studio: Studio, code: str, words: str):
    job = submit(billed_studio, api_key=f"{ENGINE_KEY}+fail_task:code={code}")
    done = wait_until(finished(billed_studio, job))
    assert done.status is JobStatus.FAILED
    assert done.error_code == code
    assert done.error_message
    assert words in done.explanation
    assert "Nothing was billed" in done.explanation
    assert done.cost_usd is None
    assert billed_studio.video_file(done) is None
    assert billed_studio.totals("s").session.billed.videos == 0


def test_an_unknown_task_is_lost_only_after_several_checks(open_studio, engine_gateway, store_of):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    job = submit(studio)
    store_of(studio).update(job.id, task_id="no-such-task")
    wait_until(drive(studio, job.id), what="the unknown task to be given up")
    lost = studio.job(job.id)
    assert lost.status is JobStatus.LOST
    assert lost.error_code == "UNKNOWN"
    assert "does not know this task: it said so" in lost.explanation
    assert lost.poll_count >= FAST_POLICY.unknown_confirm_polls
    assert (lost.finished_at - lost.unknown_since).total_seconds() >= (
        FAST_POLICY.unknown_confirm_seconds
    )


def test_an_unknown_task_older_than_a_day_is_lost_at_once(open_studio, engine_gateway, store_of):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    job = submit(studio)
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    store_of(studio).update(
        job.id, task_id="forgotten-task", submitted_at=long_ago, next_poll_at=long_ago
    )
    studio.poll_due_jobs()
    lost = studio.job(job.id)
    assert lost.status is JobStatus.LOST
    assert "24 hours" in lost.explanation
    assert lost.poll_count == 1
    assert not studio.can_recheck(lost)


def test_a_job_that_never_finishes_times_out_and_can_be_checked_again(open_studio, engine_gateway):
    policy = replace(FAST_POLICY, deadline=0.5)
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, policy=policy)
    job = submit(studio, api_key=f"{ENGINE_KEY}+never_finish")
    timed_out = wait_until(finished(studio, job))
    assert timed_out.status is JobStatus.TIMED_OUT
    assert "stopped checking" in timed_out.explanation
    assert studio.can_recheck(timed_out)
    again = studio.recheck(job.id)
    assert again.status is JobStatus.QUEUED
    assert again.explanation is None
    assert wait_until(finished(studio, job)).status is JobStatus.TIMED_OUT
    assert len(engine_gateway.tasks()) == 1


def test_a_429_storm_is_survived_within_the_budget(billed_studio: Studio, request_log: RequestLog):
    retry_after = 0.3
    key = f"{ENGINE_KEY}+rate_limit:endpoint=poll:count=8:retry_after={retry_after}"
    jobs = [submit(billed_studio, api_key=key, seed=seed) for seed in range(3)]
    for job in jobs:
        done = wait_until(finished(billed_studio, job))
        assert done.status is JobStatus.SUCCEEDED
    with request_log._lock:
        rows = list(request_log.rows)
    watched = [row for row in rows if "/videos/" in row[2] or "Result" in row[2]]
    limited = [row for row in watched if row[3] == "429"]
    assert len(limited) == 8
    # After a 429 the whole process waits for Retry-After before its next poll or download. Only
    # requests already on their way when the 429 came back (one per other job in hand) may land
    # inside that pause; without the shared pause every job would keep polling through it.
    for when, *_ in limited:
        assert [t for t, *_ in watched if t > when]
        inside_pause = [t for t, *_ in watched if when < t < when + retry_after * 0.9]
        assert len(inside_pause) <= len(jobs) - 1
    # Never more than the budget (10 a second) in any one-second window.
    times = [row[0] for row in watched]
    for index, start in enumerate(times):
        assert sum(1 for t in times[index:] if t < start + 1.0) <= 11


def test_server_errors_while_polling_are_retried(billed_studio: Studio):
    job = submit(billed_studio, api_key=f"{ENGINE_KEY}+server_error:endpoint=poll:count=3")
    done = wait_until(finished(billed_studio, job))
    assert done.status is JobStatus.SUCCEEDED
    assert done.explanation is None


# A gateway that says what each test needs, for answers the simulator cannot be made to give.

MP4_BYTES = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(4096)


def upstream_time(moment: datetime) -> str:
    """A moment in the gateway's own format: UTC+8, to the millisecond."""
    return moment.astimezone(UPSTREAM_TZ).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@pytest.fixture
def scripted_gateway(httpserver):
    """A local HTTP server acting as the gateway; tests script its polls and video link."""
    script: dict[str, list] = {"polls": [], "videos": [], "poll_times": []}
    seen = {"polls": 0, "videos": 0}

    httpserver.expect_request(
        "/wan-i2v/v1/generateImageToVideoRequest", method="POST"
    ).respond_with_json(
        {"request_id": "r-1", "output": {"task_id": "t-1", "task_status": "PENDING"}}
    )

    def poll(_request):
        index = min(seen["polls"], len(script["polls"]) - 1)
        seen["polls"] += 1
        status = script["polls"][index]
        script["poll_times"].append(datetime.now(UTC))
        output = {"task_id": "t-1", "task_status": status, "submit_time": "2025-07-27 21:05:15.212"}
        if status in ("RUNNING", "SUCCEEDED") and script.get("scheduled_at_poll") is not None:
            # It started when that poll was answered.
            started = script["poll_times"][script["scheduled_at_poll"]]
            output["scheduled_time"] = upstream_time(started)
        if status == "SUCCEEDED":
            output["video_url"] = httpserver.url_for("/video.mp4")
            output["end_time"] = "2025-07-27 21:07:58.027"
            if script.get("run_seconds_while_answering"):
                # The whole job starts and ends while this answer is on its way.
                output["scheduled_time"] = upstream_time(datetime.now(UTC))
                time.sleep(script["run_seconds_while_answering"])
                output["end_time"] = upstream_time(datetime.now(UTC))
        return Response(
            json.dumps({"request_id": "r", "output": output}),
            content_type="application/json",
        )

    def video(_request):
        index = min(seen["videos"], len(script["videos"]) - 1)
        seen["videos"] += 1
        status, body = script["videos"][index]
        return Response(body, status=status, content_type="video/mp4")

    httpserver.expect_request("/wan-video-polling/getTextToVideoResult").respond_with_handler(poll)
    httpserver.expect_request("/video.mp4").respond_with_handler(video)
    return httpserver, script, seen


def test_unknown_right_after_submit_is_not_final(open_studio, scripted_gateway):
    server, script, seen = scripted_gateway
    script["polls"] = ["UNKNOWN", "UNKNOWN", "PENDING", "RUNNING", "SUCCEEDED"]
    script["videos"] = [(200, MP4_BYTES)]
    studio = open_studio(api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"))
    job = submit(studio)
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.SUCCEEDED
    assert done.unknown_since is None
    # No usage in the answer: the requested duration is what gets billed.
    assert done.billed_seconds == 3
    assert done.cost_usd == TURBO_480P * 3
    assert seen["videos"] == 1


def test_the_start_comes_from_the_gateway_even_if_running_was_never_seen(
    open_studio, scripted_gateway
):
    server, script, _ = scripted_gateway
    # Queued at the first poll, done at the second: only the final answer tells when it started.
    script["polls"] = ["PENDING", "SUCCEEDED"]
    script["scheduled_at_poll"] = 0
    script["videos"] = [(200, MP4_BYTES)]
    studio = open_studio(api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"))
    job = submit(studio)
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.SUCCEEDED
    assert done.started_at is not None
    assert abs(done.started_at - script["poll_times"][0]) < timedelta(milliseconds=1)
    assert done.submitted_at <= done.started_at <= done.finished_at


def test_a_job_that_runs_while_its_poll_is_answered_keeps_its_running_time(
    open_studio, scripted_gateway
):
    server, script, _ = scripted_gateway
    script["polls"] = ["SUCCEEDED"]
    script["run_seconds_while_answering"] = 0.3
    script["videos"] = [(200, MP4_BYTES)]
    studio = open_studio(api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"))
    done = wait_until(finished(studio, submit(studio)))
    assert done.status is JobStatus.SUCCEEDED
    # Clamped to when the answer came, not to when the watcher set out to ask: a job that
    # seemed to take no time would be left out of the running times the schedule learns from.
    assert done.submitted_at <= done.started_at
    assert done.finished_at - done.started_at >= timedelta(seconds=0.25)


def test_the_job_nearest_its_expected_finish_is_worked_on_first(
    open_studio, engine_gateway, store_of
):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    now = datetime.now(UTC)
    names = ("queued", "new", "old", "long overdue")
    jobs = {name: submit(studio, seed=seed) for seed, name in enumerate(names)}
    # Same class, so the same expected running time: the one running longest is due first. A
    # queued job may have started just after its last poll: its urgency grows while it waits.
    seconds = timedelta(seconds=1)
    started = {"queued": None, "new": now - seconds, "old": now - 5 * seconds, "long overdue": None}
    due = {"queued": now, "new": now, "old": now, "long overdue": now - 60 * seconds}
    for name, job in jobs.items():
        store_of(studio).update(job.id, started_at=started[name], next_poll_at=due[name])
    handled: list[int] = []
    studio._watcher._handle = lambda job: handled.append(job.id)
    assert studio.poll_due_jobs() == 4
    assert handled == [jobs[name].id for name in ("long overdue", "old", "new", "queued")]


class ScriptedEstimator:
    """Gives the watcher these expectations one after another, as a gateway's pace swings."""

    def __init__(self, *expectations: ExpectedRunTime) -> None:
        self._left = list(expectations)

    def running_time(self, _job_class: object) -> ExpectedRunTime:
        return self._left.pop(0)


def test_a_running_job_that_reached_its_window_is_not_sent_back_to_sleep(
    open_studio, engine_gateway, store_of
):
    policy = replace(PollPolicy(), jitter=0.0)
    studio = open_studio(
        api_key=ENGINE_KEY, base_url=engine_gateway.url, policy=policy, start_watcher=False
    )
    job = submit(studio)
    started = datetime.now(UTC)
    store_of(studio).update(job.id, started_at=started)
    job = studio.job(job.id)
    watcher = studio._watcher
    # The pace dipped (similar jobs expected at 230 s: watching from 184 s), then swung back
    # (300 s: its window opens at 240 s) while the job had been watched for a while.
    dipped = ExpectedRunTime(median_seconds=230, low_seconds=215, high_seconds=245)
    restored = ExpectedRunTime(median_seconds=300, low_seconds=285, high_seconds=318)
    watcher._estimator = ScriptedEstimator(dipped, restored)
    for running in (190, 196):
        now = started + timedelta(seconds=running)
        watcher._clock = lambda now=now: now
        assert watcher._later(job) - now <= timedelta(seconds=policy.watch_gap)


def test_an_expired_link_is_said_plainly(open_studio, scripted_gateway):
    server, script, _ = scripted_gateway
    script["polls"] = ["SUCCEEDED"]
    script["videos"] = [(403, b"AuthenticationFailed: Request has expired")]
    studio = open_studio(api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"))
    job = submit(studio)
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.EXPIRED
    assert "link expired" in done.explanation
    # The gateway made it: it is billed even though it could not be saved.
    assert done.cost_usd == TURBO_480P * 3
    assert studio.video_file(done) is None


def test_a_failed_or_bogus_download_is_tried_again(open_studio, scripted_gateway):
    server, script, seen = scripted_gateway
    script["polls"] = ["SUCCEEDED"]
    script["videos"] = [(500, b"oops"), (200, b"<html>not a video</html>"), (200, MP4_BYTES)]
    studio = open_studio(api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"))
    job = submit(studio)
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.SUCCEEDED
    assert seen["videos"] == 3
    assert studio.video_file(done).read_bytes() == MP4_BYTES
    assert done.explanation is None
    leftovers = [p.name for p in (studio.settings.home / "videos").iterdir()]
    assert leftovers == [f"{done.id}.mp4"]


def test_a_video_not_saved_by_the_deadline_is_still_billed(open_studio, scripted_gateway):
    server, script, _ = scripted_gateway
    script["polls"] = ["SUCCEEDED"]
    script["videos"] = [(500, b"oops")]
    policy = replace(FAST_POLICY, deadline=0.5)
    studio = open_studio(
        api_key="scripted-key-000", base_url=server.url_for("").rstrip("/"), policy=policy
    )
    job = submit(studio)
    done = wait_until(finished(studio, job))
    assert done.status is JobStatus.TIMED_OUT
    assert done.cost_usd == TURBO_480P * 3
    assert "made and billed, but saving it kept failing" in done.explanation
    assert studio.can_recheck(done)
    assert studio.totals("s").session.billed.videos == 1


# Restarts and several watchers.

_WORKER = """
import sys, time
from pathlib import Path
from tests.plugins.engine import CATALOG, FAST_POLICY, quick_draft, settings_for
from studio.service import Studio

home, url, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
settings = settings_for(home, api_key=key, base_url=url)
studio = Studio.open(settings, catalog=CATALOG, poll_policy=FAST_POLICY)
job = studio.submit(quick_draft(), submission_id="worker-job", session_id="worker")
print(job.id, flush=True)
time.sleep(600)
"""


def test_a_watcher_killed_mid_job_is_resumed_by_the_next_one(
    tmp_path: Path, open_studio, engine_gateway: simulator.RunningSimulator
):
    # The first poll hangs, so the worker is killed while it holds the job's lease.
    key = f"{ENGINE_KEY}+slow:endpoint=poll:count=1:seconds=30"
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(tmp_path / "data"), engine_gateway.url, key],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = int(worker.stdout.readline())
        watcher_only = open_studio(start_watcher=False, api_key=key, base_url=engine_gateway.url)
        wait_until(
            lambda: watcher_only.job(job_id).lease_owner is not None,
            what="the worker to take the job",
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    assert watcher_only.job(job_id).in_flight

    resumed = open_studio(api_key=key, base_url=engine_gateway.url)
    done = wait_until(finished(resumed, resumed.job(job_id)))
    assert done.status is JobStatus.SUCCEEDED
    assert looks_like_mp4(resumed.video_file(done))
    assert len(engine_gateway.tasks()) == 1
    totals = resumed.totals(None).all_time.billed
    assert (totals.jobs, totals.videos, totals.cost_usd) == (1, 1, TURBO_480P * 3)


def test_two_watchers_never_work_on_one_job_at_once(
    open_studio, engine_gateway: simulator.RunningSimulator, request_log: RequestLog
):
    studios = [
        open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
        for _ in range(2)
    ]
    lock = threading.Lock()
    working: dict[int, str] = {}
    overlaps: list[int] = []
    handled: dict[str, int] = {}

    for studio in studios:
        original = studio._watcher._handle
        owner = studio._watcher.owner

        def handle(job, original=original, owner=owner):
            with lock:
                if job.id in working:
                    overlaps.append(job.id)
                working[job.id] = owner
                handled[owner] = handled.get(owner, 0) + 1
            try:
                original(job)
            finally:
                with lock:
                    working.pop(job.id, None)

        studio._watcher._handle = handle
        studio.start_watcher()

    jobs = [submit(studios[i % 2], seed=i) for i in range(6)]
    for job in jobs:
        assert wait_until(finished(studios[0], job)).status is JobStatus.SUCCEEDED
    assert overlaps == []
    assert sum(handled.values()) >= len(jobs)
    assert request_log.count("/videos/") == len(jobs)
    totals = studios[1].totals("s").session.billed
    assert (totals.videos, totals.cost_usd) == (6, TURBO_480P * 3 * 6)
    videos = sorted(p.name for p in (studios[0].settings.home / "videos").iterdir())
    assert videos == sorted(f"{job.id}.mp4" for job in jobs)


def test_a_watcher_forgets_what_it_noted_of_jobs_another_one_finished(open_studio, engine_gateway):
    here, there = (
        open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
        for _ in range(2)
    )
    ended = submit(here, seed=1)
    # Another worker takes the job to its end.
    assert wait_until(drive(there, ended.id))
    assert here.job(ended.id).status is JobStatus.SUCCEEDED
    going = submit(here, seed=2)
    assert here.job(going.id).in_flight
    watcher = here._watcher
    for job in (ended, going):
        # What a watcher notes of a job it has worked on: its window, its failures in a row.
        watcher._watching_from[job.id] = 30.0
        watcher._failures[job.id] = 1

    watcher._forget_ended_jobs()

    assert (watcher._watching_from, watcher._failures) == ({going.id: 30.0}, {going.id: 1})


def test_a_worker_can_run_until_nothing_is_in_flight(open_studio, engine_gateway):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    jobs = [submit(studio, seed=seed) for seed in range(2)]
    assert studio.finish_in_flight(timeout=60)
    assert [studio.job(job.id).status for job in jobs] == [JobStatus.SUCCEEDED] * 2


# A video made and billed, but not saved.


def test_a_video_whose_link_expired_before_the_download_is_still_billed(
    open_studio, start_simulator, tmp_path: Path
):
    gateway = start_simulator(key=ENGINE_KEY, link_ttl_seconds=0.01, state_dir=tmp_path / "gateway")
    # The watcher is down while the gateway makes the video and its link expires.
    studio = open_studio(api_key=ENGINE_KEY, base_url=gateway.url, start_watcher=False)
    job = submit(studio)
    answer, _ = wait_for_task(gateway.url, studio.job(job.id).task_id, key=ENGINE_KEY)
    assert answer["output"]["task_status"] == "SUCCEEDED"
    link = answer["output"]["video_url"]
    wait_until(lambda: requests.get(link, timeout=10).status_code == 403, what="the link to expire")

    wait_until(drive(studio, job.id), what="the watcher to find the finished task")

    done = studio.job(job.id)
    assert done.status is JobStatus.EXPIRED
    assert done.billed_seconds == 3  # from the answer's usage
    assert done.cost_usd == TURBO_480P * 3
    assert "made and billed" in done.explanation
    assert "could not be fetched in time" in done.explanation
    assert studio.video_file(done) is None
    billed = studio.totals("s").session.billed
    assert (billed.jobs, billed.videos, billed.seconds) == (1, 1, 3)
    assert billed.cost_usd == TURBO_480P * 3

    # Checking it again finds the same expired link: still counted once.
    assert studio.recheck(job.id).status is JobStatus.QUEUED
    assert studio.totals("s").session.billed.cost_usd == TURBO_480P * 3
    wait_until(drive(studio, job.id), what="the recheck")
    assert studio.job(job.id).status is JobStatus.EXPIRED
    billed = studio.totals("s").all_time.billed
    assert (billed.videos, billed.cost_usd) == (1, TURBO_480P * 3)


# Long downloads keep their lease.

DRIP_PIECES = 12


def drip_video(seen: dict, pause: float) -> Callable:
    """A video handler that sends an MP4 in pieces with a pause before each, counting requests."""
    piece = 64 * 1024
    body = MP4_BYTES + bytes(piece * DRIP_PIECES - len(MP4_BYTES))

    def video(_request):
        seen["videos"] += 1

        def pieces():
            for start in range(0, len(body), piece):
                time.sleep(pause)
                seen["sent"] = seen.get("sent", 0) + 1
                yield body[start : start + piece]

        return Response(
            pieces(), content_type="video/mp4", headers={"Content-Length": str(len(body))}
        )

    return video


@pytest.fixture
def slow_video_gateway(httpserver):
    """A gateway whose task is done at once and whose video takes a while to download."""
    seen = {"videos": 0}
    httpserver.expect_request(
        "/wan-i2v/v1/generateImageToVideoRequest", method="POST"
    ).respond_with_json(
        {"request_id": "r-1", "output": {"task_id": "t-1", "task_status": "PENDING"}}
    )
    httpserver.expect_request("/wan-video-polling/getTextToVideoResult").respond_with_json(
        {
            "request_id": "r",
            "output": {
                "task_id": "t-1",
                "task_status": "SUCCEEDED",
                "video_url": httpserver.url_for("/video.mp4"),
            },
        }
    )
    return httpserver, seen


def test_a_download_longer_than_the_lease_is_not_taken_over(open_studio, slow_video_gateway):
    server, seen = slow_video_gateway
    lease = 1.0
    # The whole download takes three leases.
    server.expect_request("/video.mp4").respond_with_handler(drip_video(seen, lease / 4))
    policy = replace(FAST_POLICY, lease_seconds=lease)
    url = server.url_for("").rstrip("/")
    studios = [
        open_studio(api_key="scripted-key-000", base_url=url, policy=policy) for _ in range(3)
    ]
    job = submit(studios[0])
    done = wait_until(finished(studios[1], job))
    assert done.status is JobStatus.SUCCEEDED
    assert seen["videos"] == 1
    assert done.cost_usd == TURBO_480P * 3
    assert studios[2].totals("s").session.billed.videos == 1
    assert [p.name for p in (studios[0].settings.home / "videos").iterdir()] == [f"{job.id}.mp4"]


def test_a_download_stops_when_its_lease_is_taken_over(open_studio, slow_video_gateway, store_of):
    server, seen = slow_video_gateway
    server.expect_request("/video.mp4").respond_with_handler(drip_video(seen, 0.1))
    policy = replace(FAST_POLICY, lease_seconds=0.3)
    studio = open_studio(
        api_key="scripted-key-000",
        base_url=server.url_for("").rstrip("/"),
        policy=policy,
        start_watcher=False,
    )
    job = submit(studio)
    store_of(studio).update(job.id, next_poll_at=datetime.now(UTC))
    worker = threading.Thread(target=studio.poll_due_jobs)
    worker.start()
    wait_until(lambda: seen.get("sent", 0) >= 2, what="the download to start")
    # Another watcher claims the job (as it would after a lease ran out unrenewed).
    store_of(studio).update(
        job.id, lease_owner="another-watcher", lease_until=datetime.now(UTC) + timedelta(hours=1)
    )
    worker.join(timeout=60)
    assert not worker.is_alive()

    after = studio.job(job.id)
    assert after.status is JobStatus.DOWNLOADING  # not finished by the watcher that lost it
    assert after.lease_owner == "another-watcher"
    assert after.video_path is None
    assert seen["sent"] < DRIP_PIECES  # it stopped early
    assert list((studio.settings.home / "videos").iterdir()) == []


# Partial files left by killed downloads.


def test_stale_partial_videos_are_removed_at_start(open_studio, engine_gateway, store_of):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    store, now = store_of(studio), datetime.now(UTC)
    videos = studio.settings.home / "videos"
    videos.mkdir(parents=True, exist_ok=True)

    def job_with_part(*, status=JobStatus.DOWNLOADING, lease=None, idle=0.0, **fields):
        job = submit(studio)
        store.update(
            job.id,
            status=status,
            lease_owner=None if lease is None else "another-process",
            lease_until=None if lease is None else now + timedelta(seconds=lease),
            next_poll_at=None,
            **fields,
        )
        part = videos / f".{job.id}.mp4.k3j9x2ab.part"
        part.write_bytes(b"partial")
        os.utime(part, (time.time() - idle, time.time() - idle))
        return part

    lease = FAST_POLICY.lease_seconds
    kept = [
        # Another process is downloading it under a live lease.
        job_with_part(lease=60),
        # Written a moment ago: its download may be starting.
        job_with_part(idle=0),
    ]
    removed = [
        job_with_part(status=JobStatus.SUCCEEDED, lease=None),
        job_with_part(status=JobStatus.EXPIRED, lease=None, idle=lease * 2),
        # In flight, but nobody holds it and nothing wrote it for longer than a lease.
        job_with_part(lease=None, idle=lease * 2),
        # Its lease ran out long ago.
        job_with_part(lease=-600, idle=lease * 2),
        # Untouched for hours, whatever its lease says.
        job_with_part(lease=60, idle=2 * 3600),
    ]
    unrelated = videos / "notes.part"
    unrelated.write_bytes(b"not ours")
    finished_video = videos / "1.mp4"
    finished_video.write_bytes(MP4_BYTES)

    studio.start_watcher()
    wait_until(lambda: not any(part.exists() for part in removed), what="the clean-up")
    assert all(part.exists() for part in kept)
    assert unrelated.exists()
    assert finished_video.read_bytes() == MP4_BYTES


# A full disk.


def test_a_full_disk_is_said_once_and_the_video_saved_later(
    open_studio, scripted_gateway, store_of, caplog: pytest.LogCaptureFixture
):
    server, script, seen = scripted_gateway
    script["polls"] = ["SUCCEEDED"]
    script["videos"] = [(200, MP4_BYTES)]
    studio = open_studio(
        api_key="scripted-key-000",
        base_url=server.url_for("").rstrip("/"),
        start_watcher=False,
    )
    videos = studio.settings.home / "videos"
    disk = {"full": True}

    def disk_free(folder: Path) -> int:
        # The disk fills up as soon as the video starts being written.
        if disk["full"] and any(folder.glob(".*.part")):
            return 0
        return 10**12

    # A disk that can fill up.
    watcher = own_watcher(studio, disk_free=disk_free, failure_retry=Backoff(first=0.05, most=0.15))
    job = submit(studio)
    caplog.set_level(logging.INFO, logger="studio.watcher")

    for _ in range(4):
        store_of(studio).update(job.id, next_poll_at=datetime.now(UTC))
        before = datetime.now(UTC)
        assert watcher.run_once() == 1
        waiting = studio.job(job.id)
        assert waiting.status is JobStatus.DOWNLOADING
        assert waiting.explanation == explain_disk_full()
        assert waiting.next_poll_at > before
        # Billed already, and counted once however often the download fails.
        assert studio.totals("s").session.billed.cost_usd == TURBO_480P * 3
        assert list(videos.iterdir()) == []  # no partial file left behind
    assert seen["videos"] == 4
    said = [r for r in caplog.records if r.name == "studio.watcher"]
    assert [r.exc_info for r in said] == [None] * len(said)
    full = [r.getMessage() for r in said if "disk is full" in r.getMessage()]
    assert len(full) == 4
    # Waits doubling up to the bound.
    waits = [message.rsplit("in ", 1)[1] for message in full]
    assert waits == ["0.05 s", "0.1 s", "0.15 s", "0.15 s"]

    disk["full"] = False
    wait_until(lambda: watcher.run_once() >= 0 and not studio.job(job.id).in_flight)
    done = studio.job(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.explanation is None
    assert studio.video_file(done).read_bytes() == MP4_BYTES
    billed = studio.totals("s").session.billed
    assert (billed.videos, billed.cost_usd) == (1, TURBO_480P * 3)


class _EstimatorThatFails(RunTimeEstimator):
    """Stands for any past job the estimate cannot digest (as a 0-s running time once was)."""

    def _gateway_ratios(self, mode: str) -> tuple[list[float], list[float]]:
        raise ZeroDivisionError("float division by zero")


def test_jobs_are_watched_on_their_prior_when_past_jobs_cannot_be_read(
    open_studio, engine_gateway, caplog: pytest.LogCaptureFixture
):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    estimator = _EstimatorThatFails(
        store=studio._store, catalog=studio.catalog, policy=FAST_POLICY, demo_speed=1.0
    )
    watcher = own_watcher(studio, estimator=estimator)
    caplog.set_level(logging.INFO)
    jobs = [submit(studio) for _ in range(3)]
    watcher.start()
    try:
        for job in jobs:
            assert wait_until(finished(studio, job)).status is JobStatus.SUCCEEDED
    finally:
        watcher.stop()
    said = [r for r in caplog.records if "could not estimate" in r.getMessage()]
    assert len(said) == 1  # with its traceback, once, not for every job and every round
    assert said[0].exc_info is not None
    assert not [r for r in caplog.records if "job store" in r.getMessage()]
    # The failing estimator answers with the model's usual time; a working one on the same store
    # learns from all three jobs.
    assert estimator.running_time(JobClass.of(jobs[0])).samples == 0
    assert studio._estimator.running_time(JobClass.of(jobs[0])).samples == 3


# The job store failing.


def test_a_locked_store_is_logged_in_one_line_and_retried_less_and_less_often(
    monkeypatch: pytest.MonkeyPatch,
    open_studio,
    engine_gateway,
    caplog: pytest.LogCaptureFixture,
):
    # Writers give up on a locked database at once instead of after ten seconds.
    monkeypatch.setattr(store_module, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.01)
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    caplog.set_level(logging.INFO, logger="studio.watcher")
    blocker = sqlite3.connect(studio.settings.home / "studio.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        studio.start_watcher()

        def complaints() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "job store" in r.getMessage()]

        wait_until(lambda: len(complaints()) >= 5, what="five failed rounds")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    said = complaints()[:5]
    assert all(record.exc_info is None for record in said)
    assert all("database is locked" in record.getMessage() for record in said)
    waits = [float(record.getMessage().rsplit("in ", 1)[1].split()[0]) for record in said]
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8]

    # Once the store answers again the watcher carries on.
    job = submit(studio)
    assert wait_until(finished(studio, job)).status is JobStatus.SUCCEEDED


# The lease holder cannot finish a job twice.


def test_a_final_job_is_never_finished_again_by_its_lease_holder(
    open_studio, engine_gateway, store_of
):
    studio = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    job = submit(studio)
    store, owner = store_of(studio), studio._watcher.owner
    store.update(job.id, next_poll_at=datetime.now(UTC))
    assert [j.id for j in store.claim_due(owner)] == [job.id]
    # Ended elsewhere (a recheck's answer, another path) while this watcher still held the lease.
    store.transition(
        job.id,
        expected=(JobStatus.QUEUED,),
        status=JobStatus.EXPIRED,
        billed_seconds=3,
        cost_usd=TURBO_480P * 3,
    )
    assert store.get(job.id).lease_owner == owner

    again = store.finish_with_lease(
        job.id, owner, status=JobStatus.SUCCEEDED, billed_seconds=5, cost_usd=TURBO_480P * 5
    )
    assert again is None
    after = store.get(job.id)
    assert (after.status, after.cost_usd) == (JobStatus.EXPIRED, TURBO_480P * 3)
    assert store.renew_lease(job.id, owner, lease_seconds=60) is None


# A hostile gateway's NUL characters on PostgreSQL, whose text columns cannot hold them.


@pytest.mark.postgres
def test_a_nul_in_a_gateway_answer_does_not_stop_the_job_on_postgresql(
    postgres_database_url: str, tmp_path: Path, httpserver
):
    httpserver.expect_request(
        "/wan-i2v/v1/generateImageToVideoRequest", method="POST"
    ).respond_with_json(
        {"request_id": "r-1", "output": {"task_id": "t-1", "task_status": "PENDING"}}
    )
    failed = {
        "task_id": "t-1",
        "task_status": "FAILED",
        "code": "Bad\u0000Code",
        "message": "the image\u0000 was refused",
        "actual_prompt": "a calm\u0000 sea",
    }
    httpserver.expect_request("/wan-video-polling/getTextToVideoResult").respond_with_data(
        json.dumps({"request_id": "r\u0000", "output": failed}), content_type="application/json"
    )
    settings = replace(
        settings_for(
            tmp_path / "data",
            api_key="scripted-key-000",
            base_url=httpserver.url_for("").rstrip("/"),
        ),
        database_url=postgres_database_url,
    )
    with Studio.open(
        settings, catalog=CATALOG, start_watcher=False, poll_policy=FAST_POLICY
    ) as studio:
        job = submit(studio)
        studio._store.update(job.id, next_poll_at=datetime.now(UTC))
        studio.poll_due_jobs()
        done = studio.job(job.id)
        assert done.status is JobStatus.FAILED
        assert "the image" in (done.error_message or "")
