"""Child processes for tests: each in its own process group, its output in a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Settings a developer's shell may hold that would point a process elsewhere.
OUTSIDE_SETTINGS = (
    "PIXAZO_API_KEY",
    "PIXAZO_BASE_URL",
    "WAN_STUDIO_HOME",
    "WAN_STUDIO_DATABASE_URL",
    "WAN_STUDIO_TRUSTED_IMAGE_HOSTS",
    "WAN_STUDIO_DEMO_SPEED",
    "WAN_STUDIO_WATCHER",
    "WAN_STUDIO_REQUEST_BUDGET",
)


def environment_without_outside_settings() -> dict[str, str]:
    """This process's environment less the settings that would point a child elsewhere."""
    return {name: value for name, value in os.environ.items() if name not in OUTSIDE_SETTINGS}


class Process:
    """One child process in its own process group, its output (both streams) in a file.

    ``stop`` ends the child, then whatever else is left in its group. (The simulator's encoders
    have groups of their own; they end when the server's pipe to them closes.)
    """

    def __init__(
        self,
        command: list[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = REPO,
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def log(self) -> str:
        """Everything the child has printed so far."""
        return self.log_path.read_text(errors="replace")

    def send(self, signal_number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal_number)

    def stop(self, *, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL to the whole group if it lingers; the exit code."""
        if self.process.poll() is None:
            self.send(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        # Children that outlived it and stayed in its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return self.process.returncode
