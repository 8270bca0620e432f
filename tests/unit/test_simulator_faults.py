"""Fault injection: each fault, chosen by key, by a plan or by a TOML file, and the CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from simulator import FaultPlan, FaultRule
from tests.plugins.simulator import (
    POLL_PATH,
    SUBMIT_PATH,
    TEST_KEY,
    api_post,
    data_uri,
    image_bytes,
    submit_body,
    submit_task,
    wait_for_task,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def body() -> dict:
    return submit_body(data_uri(image_bytes(640, 480)), seed=17)


def test_rate_limit_by_key_for_the_next_polls(start_simulator, body: dict) -> None:
    sim = start_simulator()
    key = "k+rate_limit:endpoint=poll:count=2:retry_after=0.25"
    task_id = submit_task(sim.url, body, key=key)
    poll = {"task_id": task_id}
    for _ in range(2):
        limited = api_post(sim.url, POLL_PATH, poll, key=key)
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "0.25"
        assert "error" in limited.json()
    assert api_post(sim.url, POLL_PATH, poll, key=key).status_code == 200
    # Other keys were never limited.
    assert api_post(sim.url, POLL_PATH, poll, key=TEST_KEY).status_code == 200


def test_rate_limit_every_nth_request_from_a_plan(start_simulator, body: dict) -> None:
    plan = FaultPlan(rules=(FaultRule(kind="rate_limit", every=3, retry_after=2),))
    sim = start_simulator(faults=plan)
    statuses = [api_post(sim.url, POLL_PATH, {"task_id": "x"}).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 200, 200, 429]
    limited = api_post(sim.url, POLL_PATH, {"task_id": "x"}, key=None)
    assert limited.status_code == 401  # the key is checked before any fault


def test_server_error_burst_creates_no_task(start_simulator, body: dict) -> None:
    sim = start_simulator(key="k")
    key = "k+server_error:endpoint=submit:count=3"
    statuses = [api_post(sim.url, SUBMIT_PATH, body, key=key).status_code for _ in range(4)]
    assert statuses == [500, 500, 500, 200]
    assert len(sim.tasks()) == 1


def test_slow_answers(start_simulator) -> None:
    sim = start_simulator()
    slow_key = "k+slow:seconds=2"
    with pytest.raises(requests.ReadTimeout):
        api_post(sim.url, POLL_PATH, {"task_id": "x"}, key=slow_key, timeout=0.3)
    assert api_post(sim.url, POLL_PATH, {"task_id": "x"}, timeout=0.3).status_code == 200


def test_malformed_json_on_poll_and_submit(start_simulator, body: dict) -> None:
    sim = start_simulator()
    key = "k+malformed_json"
    submitted = api_post(sim.url, SUBMIT_PATH, body, key=key)
    assert submitted.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(submitted.text)
    # The broken answer hides a real task.
    (task,) = sim.tasks()
    polled = api_post(sim.url, POLL_PATH, {"task_id": task["task_id"]}, key=key)
    assert polled.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(polled.text)
    assert api_post(sim.url, POLL_PATH, {"task_id": task["task_id"]}).json()["output"]


def test_lost_submit_answer_still_creates_the_task(start_simulator, body: dict) -> None:
    sim = start_simulator()
    key = "k+lost_submit:count=1"
    with pytest.raises(requests.ConnectionError):
        api_post(sim.url, SUBMIT_PATH, body, key=key)
    (task,) = sim.tasks()
    assert task["submitted"] == body
    result, _ = wait_for_task(sim.url, task["task_id"])
    assert result["output"]["task_status"] == "SUCCEEDED"
    # Only the first submit was lost.
    assert api_post(sim.url, SUBMIT_PATH, body, key=key).status_code == 200
    assert len(sim.tasks()) == 2


@pytest.mark.parametrize("code", ["DataInspectionFailed", "InternalError"])
def test_tasks_fail_with_a_code_by_key(start_simulator, body: dict, code: str) -> None:
    sim = start_simulator()
    key = f"k+fail_task:code={code}"
    task_id = submit_task(sim.url, body, key=key)
    result, seen = wait_for_task(sim.url, task_id, key=key)
    # Like upstream, the failure comes after the task was accepted and queued.
    assert seen[-1] == "FAILED"
    assert len(seen) > 1
    output = result["output"]
    assert output["code"] == code
    assert output["message"]
    assert "video_url" not in output
    assert "usage" not in result
    assert not (sim.state_dir / "videos" / f"{task_id}.mp4").exists()
    # Another key's task is not touched.
    healthy = submit_task(sim.url, body)
    assert wait_for_task(sim.url, healthy)[0]["output"]["task_status"] == "SUCCEEDED"


def test_fault_plan_from_toml_fails_only_the_named_key(
    start_simulator,
    body: dict,
    tmp_path: Path,
) -> None:
    config = tmp_path / "faults.toml"
    config.write_text('[[fault]]\nkind = "fail_task"\ncode = "DataInspectionFailed"\nkey = "bad"\n')
    sim = start_simulator(faults=FaultPlan.from_toml(config))
    failing = submit_task(sim.url, body, key="bad")
    fine = submit_task(sim.url, body, key="good")
    assert wait_for_task(sim.url, failing, key="bad")[0]["output"]["code"] == "DataInspectionFailed"
    assert wait_for_task(sim.url, fine, key="good")[0]["output"]["task_status"] == "SUCCEEDED"


def test_never_finishing_task_stays_running(
    start_simulator,
    body: dict,
    tmp_path: Path,
) -> None:
    sim = start_simulator(faults=FaultPlan(rules=(FaultRule(kind="never_finish", count=1),)))
    stuck = submit_task(sim.url, body)
    normal = submit_task(sim.url, body)
    assert wait_for_task(sim.url, normal)[0]["output"]["task_status"] == "SUCCEEDED"
    # The stuck task was submitted first and is long past its due time.
    for _ in range(3):
        output = api_post(sim.url, POLL_PATH, {"task_id": stuck}).json()["output"]
        assert output["task_status"] == "RUNNING"
        assert "scheduled_time" in output
        time.sleep(0.1)


def test_video_download_faults(start_simulator, body: dict) -> None:
    plan = FaultPlan(rules=(FaultRule(kind="server_error", endpoint="video", count=1),))
    sim = start_simulator(faults=plan)
    result, _ = wait_for_task(sim.url, submit_task(sim.url, body))
    url = result["output"]["video_url"]
    assert requests.get(url, timeout=5).status_code == 500
    assert requests.get(url, timeout=5).status_code == 200


def test_unreadable_key_fault_is_400(start_simulator) -> None:
    sim = start_simulator()
    answer = api_post(sim.url, POLL_PATH, {"task_id": "x"}, key="k+explode")
    assert answer.status_code == 400
    assert "explode" in answer.json()["error"]


def test_task_faults_survive_a_restart(
    start_simulator,
    body: dict,
    tmp_path: Path,
) -> None:
    first = start_simulator(state_dir=tmp_path)
    task_id = submit_task(first.url, body, key="k+fail_task:code=DataInspectionFailed")
    first.stop()
    second = start_simulator(state_dir=tmp_path)
    assert wait_for_task(second.url, task_id)[0]["output"]["code"] == "DataInspectionFailed"


def test_command_line_serves_until_terminated(tmp_path: Path) -> None:
    config = tmp_path / "faults.toml"
    config.write_text('[[fault]]\nkind = "rate_limit"\nendpoint = "poll"\ncount = 1\n')
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "simulator", "--port", "0", "--key", "cli-key"),
            *("--speed", "50", "--state-dir", str(tmp_path / "state"), "--faults", str(config)),
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        url = None
        for line in process.stderr:
            if match := re.search(r"serving .* at (http://\S+)", line):
                url = match.group(1)
                break
        assert url is not None
        poll = {"task_id": "x"}
        assert api_post(url, POLL_PATH, poll, key="cli-key").status_code == 429
        assert api_post(url, POLL_PATH, poll, key="cli-key").status_code == 200
        assert api_post(url, POLL_PATH, poll, key="other").status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert (tmp_path / "state" / "tasks").is_dir()


def test_command_line_refuses_a_bad_fault_file(tmp_path: Path) -> None:
    config = tmp_path / "faults.toml"
    config.write_text('[[fault]]\nkind = "meteor"\n')
    run = subprocess.run(
        [sys.executable, "-m", "simulator", "--port", "0", "--faults", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 2
    assert "meteor" in run.stderr
