"""Demo mode's gateway: one simulator per data folder, even across processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import requests

from studio.demo import DEMO_KEY, acquire_demo_gateway, release_demo_gateway
from tests.plugins.engine import wait_until
from tests.plugins.simulator import data_uri, image_bytes

ROOT = Path(__file__).resolve().parents[2]
POLL_PATH = "/wan-video-polling/getTextToVideoResult"
SUBMIT_PATH = "/wan-i2v/v1/generateImageToVideoRequest"

# A second process that runs the demo gateway for a folder until its standard input closes.
_OWNER_SCRIPT = """
import sys
from studio.demo import acquire_demo_gateway, release_demo_gateway
gateway = acquire_demo_gateway(sys.argv[1], speed=50)
print(gateway.url, gateway.runs_here, flush=True)
sys.stdin.read()
release_demo_gateway(gateway)
"""


def _post(url: str, path: str, body: dict) -> dict:
    answer = requests.post(
        url + path,
        json=body,
        headers={"Ocp-Apim-Subscription-Key": DEMO_KEY, "Cache-Control": "no-cache"},
        timeout=10,
    )
    answer.raise_for_status()
    return answer.json()


def _submit_demo_task(url: str, image_url: str) -> str:
    body = {
        "model": "wan2.1-i2v-turbo",
        "input": {"prompt": "a slow pan", "img_url": image_url},
        "parameters": {"resolution": "480P", "duration": 3},
    }
    return _post(url, SUBMIT_PATH, body)["output"]["task_id"]


def _status(url: str, task_id: str) -> str:
    return _post(url, POLL_PATH, {"task_id": task_id})["output"]["task_status"]


def test_a_second_process_follows_the_running_gateway_and_takes_over_when_it_exits(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "simulator"
    state_dir.mkdir()
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER_SCRIPT, str(state_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        owner_url, owner_runs_it = owner.stdout.readline().split()
        assert owner_runs_it == "True"

        gateway = acquire_demo_gateway(state_dir, speed=50)
        try:
            assert gateway.url == owner_url
            assert not gateway.runs_here
            moves: list[str] = []
            moved = threading.Event()
            gateway.on_url_change(lambda url: (moves.append(url), moved.set()))

            task_id = _submit_demo_task(gateway.url, data_uri(image_bytes(640, 480)))

            owner.stdin.close()
            assert owner.wait(timeout=30) == 0
            assert moved.wait(timeout=30)
            assert gateway.runs_here
            assert moves == [gateway.url] != [owner_url]
            # The new simulator knows the task the old one accepted and finishes it.
            assert wait_until(
                lambda: _status(gateway.url, task_id) == "SUCCEEDED", timeout=60, every=0.2
            )
        finally:
            release_demo_gateway(gateway)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
