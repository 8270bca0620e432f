"""Fixtures that run the gateway simulator for tests, plus small helpers to make first frames."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from PIL import Image

from simulator import RunningSimulator, start

SUBMIT_PATH = "/wan-i2v/v1/generateImageToVideoRequest"
SUBMIT_FRAMES_PATH = "/wan-i2v/v1/generateImageToVideoFrameRequest"
POLL_PATH = "/wan-video-polling/getTextToVideoResult"
TEST_KEY = "test-key"
FINAL_STATUSES = ("SUCCEEDED", "FAILED", "UNKNOWN", "CANCELED")

# Fast enough that a task finishes in well under a second of simulated time; a 480P 3 s render
# takes about half a second on two cores and the task waits for it.
TEST_SPEED = 40.0


def image_bytes(width: int = 640, height: int = 480, fmt: str = "PNG") -> bytes:
    """A deterministic, detailed test picture of the given size, encoded as ``fmt``."""
    fractal = Image.effect_mandelbrot((width, height), (-2.2, -1.2, 1.0, 1.2), 64)
    gradient = Image.linear_gradient("L").resize((width, height))
    mirrored = fractal.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    picture = Image.merge("RGB", (fractal, gradient, mirrored))
    buffer = io.BytesIO()
    picture.save(buffer, fmt)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,...`` for some bytes."""
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def submit_body(
    img_url: str,
    *,
    model: str = "wan2.1-i2v-turbo",
    resolution: str = "480P",
    duration: int = 3,
    prompt: str = "a calm sea at dawn",
    **parameters: object,
) -> dict:
    """A valid submit body for a small, quick video; ``parameters`` add or override."""
    return {
        "model": model,
        "input": {"prompt": prompt, "img_url": img_url},
        "parameters": {"resolution": resolution, "duration": duration, **parameters},
    }


def api_post(
    base_url: str, path: str, body: object, *, key: str | None = TEST_KEY, timeout: float = 10
) -> requests.Response:
    """POST a JSON body with the gateway's headers (no key header when ``key`` is None)."""
    headers = {"Content-Type": "application/json", "Cache-Control": "no-cache"}
    if key is not None:
        headers["Ocp-Apim-Subscription-Key"] = key
    return requests.post(base_url + path, json=body, headers=headers, timeout=timeout)


def submit_task(base_url: str, body: dict, *, key: str = TEST_KEY) -> str:
    """Submit and return the new task id, failing the test on any other answer."""
    answer = api_post(base_url, SUBMIT_PATH, body, key=key)
    assert answer.status_code == 200, answer.text
    return answer.json()["output"]["task_id"]


def wait_for_task(
    base_url: str,
    task_id: str,
    *,
    key: str = TEST_KEY,
    until: tuple[str, ...] = FINAL_STATUSES,
    timeout: float = 60,
) -> tuple[dict, list[str]]:
    """Poll until the status is one of ``until``; return the last answer and every status seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        answer = api_post(base_url, POLL_PATH, {"task_id": task_id}, key=key)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        status = body["output"]["task_status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in until:
            return body, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} still {status} after {timeout} s")
        time.sleep(0.03)


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    """A fast simulator shared by a test module, on a free loopback port."""
    with start(speed=TEST_SPEED) as running:
        yield running


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., RunningSimulator]]:
    """Start simulators with options (``start_simulator(key="k", faults=...)``); stopped after."""
    started: list[RunningSimulator] = []

    def _start(**options: object) -> RunningSimulator:
        options.setdefault("speed", TEST_SPEED)
        running = start(**options)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield _start
    for running in reversed(started):
        running.stop()
