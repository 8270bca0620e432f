"""A task rendering when the simulator's process stops is rendered again after the next start.

Each test runs the simulator in a real process, stops that process in the middle of a render the
way a service manager or a terminal does, then starts a simulator on the same folder and polls.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.simulator import (
    data_uri,
    image_bytes,
    submit_body,
    submit_task,
    wait_for_task,
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="stops a process with POSIX signals")

REPO = Path(__file__).resolve().parents[2]
# A 1080P clip takes seconds to encode: long enough to stop the process in the middle of it.
SLOW_RENDER = {"model": "wan2.2-i2v-plus", "resolution": "1080P", "duration": 5}

# A host that, like a Streamlit app, leaves on a signal without stopping the simulator first:
# its render threads meet an interpreter that is shutting down.
_HOST_THAT_JUST_EXITS = """
import signal, sys, time
from simulator import start
running = start(state_dir=sys.argv[1], speed=40.0, log=False)
print(running.url, flush=True)
def leave(*_):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, leave)
while True:
    time.sleep(0.05)
"""


def _encoders_of(pid: int) -> list[int]:
    """The encoders (ffmpeg reading frames from a pipe) a process started, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
        if int(parent.split()[1]) == pid and b"ffmpeg" in command and b"pipe:0" in command:
            found.append(int(entry.name))
    return found


def _wait_for_encoder(pid: int, *, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (encoders := _encoders_of(pid)):
        assert time.monotonic() < deadline, "the render never started"
        time.sleep(0.02)
    return encoders


def _task_record(state_dir: Path, task_id: str) -> dict:
    return json.loads((state_dir / "tasks" / f"{task_id}.json").read_text(encoding="utf-8"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at the end are killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _start_process(
    command: list[str], processes: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    processes.append(process)
    return process


def _url_from(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if "http://" in line:
            return line[line.index("http://") :].split()[0]
    raise AssertionError(f"the simulator never said where it listens (exit {process.wait()})")


def _submit_slow_task(url: str) -> str:
    return submit_task(url, submit_body(data_uri(image_bytes(1600, 900)), **SLOW_RENDER))


def _rendered_after_restart(state_dir: Path, task_id: str, start_simulator) -> None:
    record = _task_record(state_dir, task_id)
    assert record["failure_code"] is None, record["failure_message"]
    again = start_simulator(state_dir=state_dir)
    answer, _ = wait_for_task(again.url, task_id, timeout=120)
    assert answer["output"]["task_status"] == "SUCCEEDED", answer
    assert (state_dir / "videos" / f"{task_id}.mp4").stat().st_size > 0


def test_a_stop_that_kills_the_encoder_first_leaves_the_task_to_the_next_start(
    tmp_path: Path, processes: list[subprocess.Popen[str]], start_simulator
) -> None:
    state_dir = tmp_path / "state"
    server = _start_process(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            "0",
            "--speed",
            "40",
            "--state-dir",
            str(state_dir),
        ],
        processes,
    )
    url = _url_from(server)
    task_id = _submit_slow_task(url)
    encoders = _wait_for_encoder(server.pid)
    # A service manager signals every process of the service (and kills those slow to leave):
    # the encoder goes first here, and the simulator hears its own signal a moment later.
    for encoder in encoders:
        os.kill(encoder, signal.SIGKILL)
    time.sleep(0.3)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=60) == 0
    _rendered_after_restart(state_dir, task_id, start_simulator)


def test_a_host_that_exits_mid_render_leaves_the_task_to_the_next_start(
    tmp_path: Path, processes: list[subprocess.Popen[str]], start_simulator
) -> None:
    state_dir = tmp_path / "state"
    host = _start_process([sys.executable, "-c", _HOST_THAT_JUST_EXITS, str(state_dir)], processes)
    url = _url_from(host)
    task_id = _submit_slow_task(url)
    _wait_for_encoder(host.pid)
    host.send_signal(signal.SIGTERM)
    host.wait(timeout=60)
    _rendered_after_restart(state_dir, task_id, start_simulator)
