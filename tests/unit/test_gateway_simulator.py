"""The client against the local gateway: a whole job end to end, and its errors as sent."""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import simulator
from studio.catalog import FIRST_FRAME
from studio.errors import (
    AuthenticationError,
    BadRequestError,
    GatewayConnectionError,
    GatewayResponseError,
    LinkExpiredError,
)
from studio.gateway import GatewayClient, RetryPolicy, TaskSnapshot, TaskStatus, Timeouts
from studio.generation import SUBMIT_PATHS

KEY = "sim-key-8d2f6a1c"
POLL_DEADLINE_SECONDS = 60


def _png_data_uri(width: int = 480, height: int = 360) -> str:
    image = Image.new("RGB", (width, height))
    image.putdata([(x % 256, y % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


IMAGE = _png_data_uri()
SUBMIT_PATH = SUBMIT_PATHS[FIRST_FRAME]
SMALL_JOB = {
    "model": "wan2.1-i2v-turbo",
    "input": {"prompt": "The camera drifts slowly over the colours.", "img_url": IMAGE},
    "parameters": {
        "resolution": "480P",
        "duration": 3,
        "prompt_extend": True,
        "watermark": False,
        "seed": 7,
    },
}


@pytest.fixture(scope="module")
def gateway() -> Iterator[simulator.RunningSimulator]:
    running = simulator.start(host="127.0.0.1", port=0, speed=50, key=KEY)
    try:
        yield running
    finally:
        running.stop()


def make_client(base_url: str, *, api_key: str = KEY, **options: object) -> GatewayClient:
    options.setdefault("timeouts", Timeouts(connect=2, read=30))
    return GatewayClient(base_url=base_url, api_key=api_key, **options)


@pytest.fixture(autouse=True)
def _key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert KEY not in caplog.text


def wait_until_done(client: GatewayClient, task_id: str) -> TaskSnapshot:
    deadline = time.monotonic() + POLL_DEADLINE_SECONDS
    while True:
        snapshot = client.get_task(task_id)
        if snapshot.status.is_terminal or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.1)


def test_submit_poll_download_makes_an_mp4(
    gateway: simulator.RunningSimulator, tmp_path: Path
) -> None:
    with make_client(gateway.url) as client:
        receipt = client.submit(SMALL_JOB, path=SUBMIT_PATH)
        assert receipt.status is TaskStatus.PENDING
        snapshot = wait_until_done(client, receipt.task_id)
        assert snapshot.status is TaskStatus.SUCCEEDED, snapshot.raw
        assert snapshot.task_id == receipt.task_id
        assert snapshot.video_url
        assert snapshot.actual_prompt  # prompt_extend was on
        assert snapshot.usage is not None
        assert snapshot.usage.billed_seconds == 3
        assert snapshot.submit_time is not None
        assert snapshot.end_time is not None
        assert snapshot.submit_time <= snapshot.end_time
        dest = tmp_path / "clip.mp4"
        written = client.download(snapshot.video_url, dest)
    data = dest.read_bytes()
    assert written == len(data) > 1000
    assert data[4:8] == b"ftyp"
    assert list(tmp_path.iterdir()) == [dest]


def test_an_unknown_task_is_unknown(gateway: simulator.RunningSimulator) -> None:
    with make_client(gateway.url) as client:
        snapshot = client.get_task("no-such-task")
    assert snapshot.status is TaskStatus.UNKNOWN
    assert snapshot.status.is_terminal


@pytest.mark.parametrize("api_key", ["", "wrong-key-1234"])
def test_a_missing_or_wrong_key_is_an_authentication_error(
    gateway: simulator.RunningSimulator, api_key: str
) -> None:
    before = len(gateway.tasks())
    with (
        make_client(gateway.url, api_key=api_key) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.submit(SMALL_JOB, path=SUBMIT_PATH)
    assert caught.value.status_code == 401
    assert "API key" in caught.value.message
    assert KEY not in str(caught.value)
    assert len(gateway.tasks()) == before


@pytest.mark.parametrize(
    "payload",
    [
        {
            "model": "wan2.2-i2v-flash",
            "input": {"img_url": IMAGE},
            "parameters": {"resolution": "1080P", "duration": 5},
        },
        {"model": "wan9-ultra", "input": {"img_url": IMAGE}, "parameters": {}},
        {"model": "wan2.2-i2v-plus", "input": {}, "parameters": {}},
        {
            "model": "wan2.2-i2v-plus",
            "input": {"img_url": IMAGE, "prompt": "x" * 801},
            "parameters": {},
        },
    ],
)
def test_a_broken_rule_is_a_bad_request_with_the_gateways_words(
    gateway: simulator.RunningSimulator, payload: dict
) -> None:
    before = len(gateway.tasks())
    with make_client(gateway.url) as client, pytest.raises(BadRequestError) as caught:
        client.submit(payload, path=SUBMIT_PATH)
    assert caught.value.status_code == 400
    assert "The video service said" in caught.value.message
    assert len(gateway.tasks()) == before


def test_a_link_with_a_bad_signature_is_refused_as_expired(
    gateway: simulator.RunningSimulator, tmp_path: Path
) -> None:
    with make_client(gateway.url) as client:
        snapshot = wait_until_done(client, client.submit(SMALL_JOB, path=SUBMIT_PATH).task_id)
        assert snapshot.video_url
        tampered = snapshot.video_url.replace("Signature=", "Signature=0")
        with pytest.raises(LinkExpiredError):
            client.download(tampered, tmp_path / "clip.mp4")
    assert list(tmp_path.iterdir()) == []


def test_a_rate_limited_poll_waits_as_told_then_succeeds(
    gateway: simulator.RunningSimulator,
) -> None:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    faulty_key = f"{KEY}+rate_limit:endpoint=poll:count=1:retry_after=0.2"
    with make_client(gateway.url, api_key=faulty_key, sleep=sleep) as client:
        snapshot = client.get_task("no-such-task")
    assert snapshot.status is TaskStatus.UNKNOWN
    assert waits == [0.2]


def test_a_lost_submit_answer_may_have_created_a_task(
    gateway: simulator.RunningSimulator,
) -> None:
    before = len(gateway.tasks())
    waits: list[float] = []
    lossy_key = f"{KEY}+lost_submit:count=1"
    with (
        make_client(gateway.url, api_key=lossy_key, sleep=waits.append) as client,
        pytest.raises(GatewayConnectionError) as caught,
    ):
        client.submit(SMALL_JOB, path=SUBMIT_PATH)
    assert caught.value.may_have_reached_server is True
    assert waits == []  # never resent
    assert len(gateway.tasks()) == before + 1  # and indeed the task exists


def test_a_malformed_submit_answer_is_a_response_error(
    gateway: simulator.RunningSimulator,
) -> None:
    broken_key = f"{KEY}+malformed_json:endpoint=submit:count=1"
    with (
        make_client(gateway.url, api_key=broken_key, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(GatewayResponseError),
    ):
        client.submit(SMALL_JOB, path=SUBMIT_PATH)
