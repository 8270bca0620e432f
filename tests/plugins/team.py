"""Real processes of a team deployment for tests: workers and others, each logging to a file.

A worker is ``python -m studio watch``, exactly as an operator runs it; ``fast_worker`` runs the
same command with the tests' fast schedule (short leases), so that a killed worker's jobs are
taken over within seconds instead of a minute.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from studio.migrations import jobs
from studio.store import JobStore

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


def team_environment(
    *, key: str, base_url: str, database_url: str, home: Path, **more: str
) -> dict[str, str]:
    """The environment of one process of the team: the shared key, gateway and database."""
    env = {name: value for name, value in os.environ.items() if name not in OUTSIDE_SETTINGS}
    env |= {
        "PIXAZO_API_KEY": key,
        "PIXAZO_BASE_URL": base_url,
        "WAN_STUDIO_DATABASE_URL": database_url,
        "WAN_STUDIO_HOME": str(home),
        # The project's modules, whatever the working folder.
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
    }
    return env | more


class Process:
    """One child process in its own process group, its output (both streams) in a file."""

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
        return self.process.pid

    def log(self) -> str:
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
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return self.process.returncode


def start_worker(env: Mapping[str, str], log_path: Path, *, fast: bool = False) -> Process:
    """``python -m studio watch`` (with the tests' fast schedule when ``fast``)."""
    module = "tests.plugins.fast_worker" if fast else "studio"
    return Process([sys.executable, "-m", module, "watch"], env=env, log_path=log_path)


def leases_held_by(store: JobStore, pid: int) -> list[int]:
    """The ids of the jobs whose lease a watcher of process ``pid`` holds now.

    A watcher's lease owner is ``host:pid:random``.
    """
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(jobs.c.id).where(jobs.c.lease_owner.like(f"%:{pid}:%")).order_by(jobs.c.id)
        )
        return list(rows.scalars())
