"""The simulator over HTTP: keys, validation, the task timeline, signed links, restarts."""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import statistics
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from pytest_httpserver import HTTPServer

from simulator import RunningSimulator
from simulator._tasks import RUN_JITTER, queue_seconds, run_seconds
from tests.plugins.simulator import (
    POLL_PATH,
    SUBMIT_FRAMES_PATH,
    SUBMIT_PATH,
    TEST_KEY,
    api_post,
    data_uri,
    image_bytes,
    submit_body,
    submit_task,
    wait_for_task,
)

UPSTREAM_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$")


@pytest.fixture(scope="module")
def picture_uri() -> str:
    return data_uri(image_bytes(640, 480))


# --- keys ---------------------------------------------------------------------------------------


def test_missing_key_is_401(simulator: RunningSimulator, picture_uri: str) -> None:
    for key in (None, ""):
        answer = api_post(simulator.url, SUBMIT_PATH, submit_body(picture_uri), key=key)
        assert answer.status_code == 401
        assert "subscription key" in answer.json()["error"]
    answer = api_post(simulator.url, POLL_PATH, {"task_id": "x"}, key=None)
    assert answer.status_code == 401


def test_configured_key_is_the_only_one_accepted(start_simulator, picture_uri: str) -> None:
    sim = start_simulator(key="right-key")
    wrong = api_post(sim.url, SUBMIT_PATH, submit_body(picture_uri), key="wrong-key")
    assert wrong.status_code == 401
    assert "wrong-key" not in wrong.text
    right = api_post(sim.url, SUBMIT_PATH, submit_body(picture_uri), key="right-key")
    assert right.status_code == 200
    # A fault suffix keeps the base key checked.
    assert (
        api_post(sim.url, POLL_PATH, {"task_id": "x"}, key="wrong-key+slow:seconds=0").status_code
        == 401
    )
    assert (
        api_post(sim.url, POLL_PATH, {"task_id": "x"}, key="right-key+slow:seconds=0").status_code
        == 200
    )
    assert len(sim.tasks()) == 1


# --- validation -----------------------------------------------------------------------------------


def _with(body: dict, section: str | None, **changes: object) -> dict:
    body = json.loads(json.dumps(body))
    target = body if section is None else body.setdefault(section, {})
    for name, value in changes.items():
        if value is _DROP:
            target.pop(name, None)
        else:
            target[name] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("section", "changes", "message"),
    [
        (None, {"model": _DROP}, "model is required"),
        (None, {"model": "wan9-i2v-mega"}, "does not exist"),
        (None, {"model": "wan2.1-kf2v-plus"}, SUBMIT_FRAMES_PATH),
        (None, {"input": _DROP}, "input is required"),
        (None, {"input": "a picture"}, "input is required"),
        (None, {"parameters": [1, 2]}, "parameters must be an object"),
        ("input", {"img_url": _DROP}, "input.img_url is required"),
        ("input", {"img_url": ""}, "input.img_url is required"),
        ("input", {"img_url": "ftp://example.com/a.png"}, "http(s) URL or a data: URI"),
        ("input", {"prompt": "x" * 801}, "limit is 800"),
        ("input", {"prompt": 42}, "input.prompt must be a string"),
        ("input", {"negative_prompt": "x" * 501}, "limit is 500"),
        ("parameters", {"resolution": "1080P"}, "use one of: 480P, 720P"),
        ("parameters", {"resolution": "480p"}, "not available"),
        ("parameters", {"duration": 6}, "use 3, 4, 5"),
        ("parameters", {"duration": "3"}, "not available"),
        ("parameters", {"duration": True}, "not available"),
        ("parameters", {"seed": -1}, "from 0 to 2147483647"),
        ("parameters", {"seed": 2147483648}, "from 0 to 2147483647"),
        ("parameters", {"seed": "5"}, "parameters.seed"),
        ("parameters", {"seed": 1.5}, "parameters.seed"),
        ("parameters", {"prompt_extend": "yes"}, "parameters.prompt_extend must be true or false"),
        ("parameters", {"watermark": 1}, "parameters.watermark must be true or false"),
    ],
)
def test_each_rule_answers_400_and_creates_nothing(
    simulator: RunningSimulator,
    picture_uri: str,
    section: str | None,
    changes: dict,
    message: str,
) -> None:
    tasks_before = len(simulator.tasks())
    body = _with(submit_body(picture_uri), section, **changes)
    answer = api_post(simulator.url, SUBMIT_PATH, body)
    assert answer.status_code == 400
    assert set(answer.json()) == {"error"}
    assert message in answer.json()["error"]
    assert len(simulator.tasks()) == tasks_before


@pytest.mark.parametrize(
    ("model", "resolution", "duration", "message"),
    [
        ("wan2.2-i2v-plus", "720P", 5, "use one of: 480P, 1080P"),
        ("wan2.2-i2v-plus", "1080P", 3, "use 5"),
        ("wan2.2-i2v-flash", "1080P", 5, "use one of: 480P, 720P"),
        ("wan2.1-i2v-plus", "480P", 5, "use one of: 720P"),
    ],
)
def test_each_model_allows_only_its_options(
    simulator: RunningSimulator,
    picture_uri: str,
    model: str,
    resolution: str,
    duration: int,
    message: str,
) -> None:
    body = submit_body(picture_uri, model=model, resolution=resolution, duration=duration)
    answer = api_post(simulator.url, SUBMIT_PATH, body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]


def test_body_must_be_a_json_object(simulator: RunningSimulator) -> None:
    headers = {"Ocp-Apim-Subscription-Key": TEST_KEY, "Content-Type": "application/json"}
    not_json = requests.post(simulator.url + SUBMIT_PATH, data=b"{nope", headers=headers, timeout=5)
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["error"]
    a_list = requests.post(simulator.url + SUBMIT_PATH, data=b"[1]", headers=headers, timeout=5)
    assert a_list.status_code == 400
    assert "JSON object" in a_list.json()["error"]


@pytest.mark.parametrize(
    "framing", ["Content-Length: 999999999", "Transfer-Encoding: chunked", "Content-Length: x"]
)
def test_bodies_too_large_or_without_a_length_are_refused(
    simulator: RunningSimulator,
    framing: str,
) -> None:
    host, port = urlsplit(simulator.url).netloc.split(":")
    request = (
        f"POST {SUBMIT_PATH} HTTP/1.1\r\nHost: {host}\r\n"
        f"Ocp-Apim-Subscription-Key: {TEST_KEY}\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(request.encode())
        status_line = connection.makefile("rb").readline()
    assert status_line.split()[1] == b"413"


def test_limits_themselves_are_accepted(start_simulator, picture_uri: str) -> None:
    sim = start_simulator(speed=1)  # nothing needs to finish here
    for seed in (0, 2147483647):
        body = submit_body(picture_uri, prompt="x" * 800, seed=seed)
        body["input"]["negative_prompt"] = "y" * 500
        assert api_post(sim.url, SUBMIT_PATH, body).status_code == 200
    minimal = {"model": "wan2.2-i2v-flash", "input": {"img_url": picture_uri}}
    assert api_post(sim.url, SUBMIT_PATH, minimal).status_code == 200
    described = sim.tasks()[-1]
    # Defaults from the catalog, and a seed chosen and kept when none was sent.
    assert (described["resolution"], described["duration"]) == ("720P", 5)
    assert 0 <= described["seed"] <= 2147483647


def test_first_and_last_frame_rules(simulator: RunningSimulator, picture_uri: str) -> None:
    body = {
        "model": "wan2.1-kf2v-plus",
        "input": {"first_frame_url": picture_uri},
        "parameters": {"resolution": "720P", "duration": 5},
    }
    answer = api_post(simulator.url, SUBMIT_FRAMES_PATH, body)
    assert answer.status_code == 400
    assert "input.last_frame_url is required" in answer.json()["error"]
    plain = api_post(simulator.url, SUBMIT_FRAMES_PATH, submit_body(picture_uri))
    assert plain.status_code == 400
    assert SUBMIT_PATH in plain.json()["error"]


def test_unknown_paths_and_bad_polls(simulator: RunningSimulator) -> None:
    assert api_post(simulator.url, "/wan-i2v/v2/other", {}).status_code == 404
    assert requests.get(simulator.url + "/", timeout=5).status_code == 404
    for body in ({}, {"task_id": ""}, {"task_id": 12}):
        answer = api_post(simulator.url, POLL_PATH, body)
        assert answer.status_code == 400
        assert "task_id" in answer.json()["error"]


def test_unknown_task_id_answers_unknown(simulator: RunningSimulator) -> None:
    answer = api_post(simulator.url, POLL_PATH, {"task_id": "0385dc79-5ff8-4d82-bcb6-0000deadbeef"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["output"] == {
        "task_id": "0385dc79-5ff8-4d82-bcb6-0000deadbeef",
        "task_status": "UNKNOWN",
    }
    assert body["request_id"]


# --- the task timeline ----------------------------------------------------------------------------


def test_task_goes_pending_running_succeeded(start_simulator, picture_uri: str) -> None:
    # Slow enough that every state lasts several polls (the shortest queue is 0.5 s / speed).
    sim = start_simulator(speed=4)
    answer = api_post(sim.url, SUBMIT_PATH, submit_body(picture_uri, seed=11))
    assert answer.status_code == 200
    submitted = answer.json()
    assert submitted["output"]["task_status"] == "PENDING"
    assert submitted["request_id"] != submitted["output"]["task_id"]
    task_id = submitted["output"]["task_id"]
    body, seen = wait_for_task(sim.url, task_id)
    assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]
    output = body["output"]
    for name in ("submit_time", "scheduled_time", "end_time"):
        assert UPSTREAM_TIME.match(output[name]), output[name]
    assert output["submit_time"] <= output["scheduled_time"] <= output["end_time"]
    assert output["orig_prompt"] == "a calm sea at dawn"
    assert output["actual_prompt"].startswith("a calm sea at dawn. ")
    assert body["usage"] == {"video_duration": 3, "video_count": 1, "video_ratio": "standard"}
    video = requests.get(output["video_url"], timeout=10)
    assert video.status_code == 200
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


TIERS = {"480P": 307_200, "720P": 921_600, "1080P": 2_073_600}


def class_run_seconds(task_id: str, *, fast: bool, resolution: str, duration: int) -> float:
    rng = random.Random(task_id)
    queue_seconds(rng)  # a task draws its queue wait first
    return run_seconds(
        rng,
        fast=fast,
        tier_pixels=TIERS[resolution],
        smallest_tier_pixels=TIERS["480P"],
        duration=duration,
    )


def test_running_time_is_nearly_constant_within_a_class() -> None:
    times = [
        class_run_seconds(f"task-{n}", fast=False, resolution="1080P", duration=5)
        for n in range(500)
    ]
    centre = statistics.median(times)
    assert max(times) <= centre * (1 + 2 * RUN_JITTER)
    assert min(times) >= centre * (1 - 2 * RUN_JITTER)
    assert max(times) - min(times) > centre * RUN_JITTER  # it does vary a little
    # A task's times are fixed by its id.
    assert class_run_seconds("task-7", fast=False, resolution="1080P", duration=5) == times[7]


def test_running_time_grows_with_the_model_the_tier_and_the_duration() -> None:
    def typical(*, fast: bool, resolution: str, duration: int) -> float:
        return statistics.median(
            class_run_seconds(f"t{n}", fast=fast, resolution=resolution, duration=duration)
            for n in range(200)
        )

    plus_480 = typical(fast=False, resolution="480P", duration=5)
    flash_480 = typical(fast=True, resolution="480P", duration=5)
    assert flash_480 == pytest.approx(plus_480 / 2, rel=0.03)
    assert (
        plus_480
        < typical(fast=False, resolution="720P", duration=5)
        < typical(fast=False, resolution="1080P", duration=5)
    )
    assert typical(fast=True, resolution="480P", duration=3) == pytest.approx(
        plus_480 / 2 * 3 / 5, rel=0.03
    )
    # Demo clips at speed 1: the plus model's 1080P clip finishes within about 25 s.
    assert typical(fast=False, resolution="1080P", duration=5) + 3 < 26


def test_the_queue_is_what_varies_and_it_is_skewed() -> None:
    waits = [queue_seconds(random.Random(f"task-{n}")) for n in range(2000)]
    median = statistics.median(waits)
    assert 2 < median < 3
    assert statistics.fmean(waits) > median  # a long tail of busy moments
    assert statistics.quantiles(waits, n=10)[-1] > 1.8 * median
    assert min(waits) >= 0.5
    assert max(waits) <= 12


def test_pending_and_running_answers_hold_only_their_fields(
    start_simulator,
    picture_uri: str,
) -> None:
    sim = start_simulator(speed=1)
    task_id = submit_task(sim.url, submit_body(picture_uri))
    body = api_post(sim.url, POLL_PATH, {"task_id": task_id}).json()
    assert set(body["output"]) == {"task_id", "task_status", "submit_time"}
    assert body["output"]["task_status"] == "PENDING"
    assert "usage" not in body


def test_wan22_reports_sr_and_no_actual_prompt_without_extend(
    simulator: RunningSimulator,
    picture_uri: str,
) -> None:
    body = submit_body(
        picture_uri, model="wan2.2-i2v-flash", duration=5, prompt_extend=False, seed=3
    )
    task_id = submit_task(simulator.url, body)
    result, _ = wait_for_task(simulator.url, task_id)
    assert result["output"]["task_status"] == "SUCCEEDED"
    assert result["usage"] == {"video_duration": 5, "video_count": 1, "SR": 480}
    assert "actual_prompt" not in result["output"]


def test_image_from_an_http_link_is_fetched(
    simulator: RunningSimulator,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/frame.jpg").respond_with_data(
        image_bytes(480, 640, "JPEG"), content_type="image/jpeg"
    )
    task_id = submit_task(simulator.url, submit_body(httpserver.url_for("/frame.jpg")))
    result, _ = wait_for_task(simulator.url, task_id)
    assert result["output"]["task_status"] == "SUCCEEDED"
    described = next(t for t in simulator.tasks() if t["task_id"] == task_id)
    assert (described["width"], described["height"]) == (480, 640)


def _too_heavy() -> str:
    # An uncompressed 2000x2000 BMP weighs 12 MB, over the 10 MB limit, with allowed sides.
    return data_uri(image_bytes(2000, 2000, "BMP"), "image/bmp")


@pytest.mark.parametrize(
    ("make_url", "message"),
    [
        (lambda: data_uri(b"this is not an image"), "could not be decoded"),
        (lambda: data_uri(image_bytes(300, 300)), "300x300"),
        (lambda: data_uri(image_bytes(2100, 400)), "between 360 and 2000"),
        (lambda: data_uri(image_bytes(640, 480, "GIF"), "image/png"), "format GIF"),
        (lambda: data_uri(image_bytes(640, 480), "image/gif"), "image/gif"),
        (lambda: "data:image/png;base64,@@@@", "base64"),
        (lambda: "data:image/png,plain", "data:image/png;base64"),
        (_too_heavy, "larger than 10 MB"),
    ],
)
def test_bad_images_fail_the_task_with_invalid_parameter(
    simulator: RunningSimulator,
    make_url,
    message: str,
) -> None:
    task_id = submit_task(simulator.url, submit_body(make_url()))
    result, seen = wait_for_task(simulator.url, task_id)
    assert seen[-1] == "FAILED"
    assert result["output"]["code"] == "InvalidParameter"
    assert message in result["output"]["message"]
    assert "video_url" not in result["output"]
    assert UPSTREAM_TIME.match(result["output"]["end_time"])


def test_unreachable_image_link_fails_the_task(
    simulator: RunningSimulator,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/gone.png").respond_with_data("missing", status=404)
    task_id = submit_task(simulator.url, submit_body(httpserver.url_for("/gone.png")))
    result, _ = wait_for_task(simulator.url, task_id)
    assert result["output"]["code"] == "InvalidParameter"
    assert "HTTP 404" in result["output"]["message"]


# --- signed links ---------------------------------------------------------------------------------


def _finished_video_url(sim: RunningSimulator, picture_uri: str) -> str:
    task_id = submit_task(sim.url, submit_body(picture_uri, seed=5))
    result, _ = wait_for_task(sim.url, task_id)
    assert result["output"]["task_status"] == "SUCCEEDED"
    return result["output"]["video_url"]


def test_link_expires_with_403(start_simulator, picture_uri: str) -> None:
    sim = start_simulator(link_ttl_seconds=0.5)
    url = _finished_video_url(sim, picture_uri)
    expires = int(parse_qs(urlsplit(url).query)["Expires"][0])
    while time.time() <= expires:
        time.sleep(0.1)
    answer = requests.get(url, timeout=5)
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text


def test_link_with_a_forged_signature_or_expiry_is_403(
    simulator: RunningSimulator,
    picture_uri: str,
) -> None:
    url = _finished_video_url(simulator, picture_uri)
    assert requests.get(url, timeout=5).status_code == 200
    # Change the signature's first character to a different one, whatever it was.
    forged = re.sub(
        r"Signature=(\w)", lambda m: "Signature=" + ("1" if m.group(1) == "0" else "0"), url
    )
    later = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m.group(1)) + 3600}", url)
    for bad in (forged, later, url.split("?")[0]):
        answer = requests.get(bad, timeout=5)
        assert answer.status_code == 403
        assert "SignatureDoesNotMatch" in answer.text


def test_video_supports_range_requests(simulator: RunningSimulator, picture_uri: str) -> None:
    url = _finished_video_url(simulator, picture_uri)
    whole = requests.get(url, timeout=5)
    size = len(whole.content)
    assert whole.headers["Accept-Ranges"] == "bytes"
    cases = {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=10-{size + 500}": (10, size - 1),
    }
    for header, (start, end) in cases.items():
        part = requests.get(url, headers={"Range": header}, timeout=5)
        assert part.status_code == 206, header
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert part.content == whole.content[start : end + 1]
    for header in (f"bytes={size}-", "bytes=5-2", "bytes=-0"):
        refused = requests.get(url, headers={"Range": header}, timeout=5)
        assert refused.status_code == 416, header
        assert refused.headers["Content-Range"] == f"bytes */{size}"
    head = requests.head(url, timeout=5)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == size
    assert head.content == b""


# --- state, restarts and secrecy ------------------------------------------------------------------


def test_restart_on_the_same_state_dir_keeps_and_finishes_tasks(
    start_simulator,
    picture_uri: str,
    tmp_path,
) -> None:
    first = start_simulator(state_dir=tmp_path)
    done_url = _finished_video_url(first, picture_uri)
    done_id = urlsplit(done_url).path.rsplit("/", 1)[1].removesuffix(".mp4")
    # Submitted, then the simulator stops before its render can finish.
    in_flight = submit_task(first.url, submit_body(picture_uri, seed=8))
    first.stop()

    second = start_simulator(state_dir=tmp_path)
    assert {t["task_id"] for t in second.tasks()} == {done_id, in_flight}
    result, _ = wait_for_task(second.url, done_id)
    assert result["output"]["task_status"] == "SUCCEEDED"
    # Links signed before the restart keep working (only the port changed).
    old_link = done_url.replace(urlsplit(done_url).netloc, urlsplit(second.url).netloc)
    assert requests.get(old_link, timeout=5).status_code == 200
    finished, _ = wait_for_task(second.url, in_flight)
    assert finished["output"]["task_status"] == "SUCCEEDED"
    assert requests.get(finished["output"]["video_url"], timeout=5).status_code == 200


def test_missing_video_is_rendered_again_after_a_restart(
    start_simulator,
    picture_uri: str,
    tmp_path,
) -> None:
    first = start_simulator(state_dir=tmp_path)
    url = _finished_video_url(first, picture_uri)
    task_id = urlsplit(url).path.rsplit("/", 1)[1].removesuffix(".mp4")
    first.stop()
    (tmp_path / "videos" / f"{task_id}.mp4").unlink()

    second = start_simulator(state_dir=tmp_path)
    result, _ = wait_for_task(second.url, task_id)
    assert result["output"]["task_status"] == "SUCCEEDED"
    assert requests.get(result["output"]["video_url"], timeout=5).status_code == 200


def test_tasks_older_than_a_day_answer_unknown(
    start_simulator,
    picture_uri: str,
    tmp_path,
) -> None:
    first = start_simulator(state_dir=tmp_path)
    _finished_video_url(first, picture_uri)
    (task,) = first.tasks()
    first.stop()
    record_path = tmp_path / "tasks" / f"{task['task_id']}.json"
    record = json.loads(record_path.read_text())
    record["submit_time"] -= 25 * 3600
    record_path.write_text(json.dumps(record))

    second = start_simulator(state_dir=tmp_path)
    output = api_post(second.url, POLL_PATH, {"task_id": task["task_id"]}).json()["output"]
    assert output == {"task_id": task["task_id"], "task_status": "UNKNOWN"}


def test_temporary_state_dir_is_removed_on_stop(start_simulator) -> None:
    sim = start_simulator()
    folder = sim.state_dir
    assert folder.is_dir()
    sim.stop()
    assert not folder.exists()
    sim.stop()  # stopping twice is harmless


def test_key_is_never_kept_or_logged(
    start_simulator,
    picture_uri: str,
    tmp_path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_key = "sk-very-secret-0123456789"
    caplog.set_level(logging.INFO, logger="simulator")
    sim = start_simulator(state_dir=tmp_path)
    task_id = submit_task(sim.url, submit_body(picture_uri), key=secret_key)
    wait_for_task(sim.url, task_id, key=secret_key)
    assert secret_key not in json.dumps(sim.tasks())
    assert secret_key not in repr(sim)
    assert secret_key not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret_key.encode() not in path.read_bytes(), path


def test_one_log_line_per_request(
    start_simulator,
    picture_uri: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    sim = start_simulator(speed=1)
    task_id = submit_task(sim.url, submit_body(picture_uri))
    api_post(sim.url, POLL_PATH, {"task_id": task_id})
    api_post(sim.url, SUBMIT_PATH, {}, key=None)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(("POST", "GET"))]
    assert len(lines) == 3
    assert re.match(rf"^POST {SUBMIT_PATH} 200 task={task_id} \d+ms$", lines[0])
    assert re.match(rf"^POST {POLL_PATH} 200 task={task_id} \d+ms$", lines[1])
    assert re.match(rf"^POST {SUBMIT_PATH} 401 task=- \d+ms$", lines[2])


def test_log_can_be_switched_off(
    start_simulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    sim = start_simulator(log=False)
    api_post(sim.url, POLL_PATH, {"task_id": "x"})
    assert not [r for r in caplog.records if "getTextToVideoResult" in r.getMessage()]


def test_start_refuses_bad_options() -> None:
    from simulator import start

    for options in ({"speed": 0}, {"fps": 0}, {"link_ttl_seconds": 0}):
        with pytest.raises(ValueError):  # noqa: PT011
            start(**options)
