"""Real processes of a team deployment for tests: workers and others, each logging to a file.

A worker is ``python -m studio watch``, exactly as an operator runs it; ``fast_worker`` runs the
same command with the tests' fast schedule (short leases), so that a killed worker's jobs are
taken over within seconds instead of a minute.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from studio.migrations import jobs
from studio.store import JobStore
from tests.plugins.processes import REPO, Process, environment_without_outside_settings


def team_environment(
    *, key: str, base_url: str, database_url: str, home: Path, **more: str
) -> dict[str, str]:
    """The environment of one process of the team: the shared key, gateway and database."""
    env = environment_without_outside_settings()
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
