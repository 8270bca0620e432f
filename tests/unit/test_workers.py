"""Workers apart from the app: the watcher setting, SIGTERM and SIGKILL, and `migrate`.

Workers are real ``python -m studio watch`` processes on a shared PostgreSQL database, and the
gateway a simulator whose status answers take 30 s, so that a worker is caught holding leases.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from simulator import FaultPlan, FaultRule, RunningSimulator
from studio.records import Job
from studio.service import Studio
from studio.settings import Settings, SettingsError
from studio.store import JobStore
from tests.plugins.engine import CATALOG, ENGINE_KEY, quick_draft, settings_for, wait_until
from tests.plugins.processes import REPO
from tests.plugins.team import leases_held_by, start_worker, team_environment

pytestmark = pytest.mark.postgres

JOBS = 3
# Longer than any wait below: a worker caught in a status check stays in it.
SLOW_POLL_SECONDS = 30.0
SALT = "5a17" * 16


def test_the_watcher_setting_is_on_unless_set_off() -> None:
    assert Settings.from_environment({}).run_watcher is True
    assert Settings.from_environment({"WAN_STUDIO_WATCHER": "on"}).run_watcher is True
    assert Settings.from_environment({"WAN_STUDIO_WATCHER": " OFF "}).run_watcher is False
    with pytest.raises(SettingsError, match="WAN_STUDIO_WATCHER must be on or off, not 'no'"):
        Settings.from_environment({"WAN_STUDIO_WATCHER": "no"})


def test_a_shared_salt_gives_one_key_one_fingerprint_in_every_data_folder(
    tmp_path: Path,
) -> None:
    def fingerprint(home: str, **more: str) -> str:
        env = {"WAN_STUDIO_HOME": str(tmp_path / home), **more}
        return Settings.from_environment(env).fingerprint(ENGINE_KEY)

    assert fingerprint("a") != fingerprint("b")
    shared = {"WAN_STUDIO_KEY_SALT": SALT}
    assert fingerprint("a", **shared) == fingerprint("b", **shared)
    with pytest.raises(SettingsError, match="32 to 128 hexadecimal digits") as refused:
        Settings.from_environment({"WAN_STUDIO_KEY_SALT": "not-hex-secret"})
    assert "not-hex-secret" not in str(refused.value)


def _watcher_threads() -> int:
    return sum(thread.name == "wan-studio-watcher" for thread in threading.enumerate())


@pytest.mark.parametrize(
    ("setting", "watchers", "said"),
    [
        ("off", 0, "**Job watcher:** off in this app process (`WAN_STUDIO_WATCHER`)"),
        ("on", 1, "**Job watcher:** runs in this app process"),
    ],
)
def test_an_app_process_runs_a_watcher_only_when_the_setting_allows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, watchers: int, said: str
) -> None:
    import streamlit as st

    for name in ("PIXAZO_API_KEY", "PIXAZO_BASE_URL", "WAN_STUDIO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WAN_STUDIO_WATCHER", setting)
    st.cache_resource.clear()
    before = _watcher_threads()
    try:
        app = AppTest.from_file(str(REPO / "app.py"), default_timeout=30).run()
        assert not app.exception
        # The run opened the Studio (and its store), so a watcher would be running by now.
        assert (tmp_path / "home" / "studio.db").exists()
        wait_until(lambda: _watcher_threads() - before == watchers or None, timeout=10)
        assert _watcher_threads() - before == watchers
        # The administrators' part of Settings says which it is.
        app.switch_page("pages/settings.py").run()
        paths = app.main.get_by_key("settings-paths")
        assert said in "\n".join(node.value for node in paths if node.type == "markdown")
    finally:
        st.cache_resource.clear()


@pytest.fixture
def slow_gateway(start_simulator: Callable[..., RunningSimulator]) -> RunningSimulator:
    """A gateway whose every status answer takes ``SLOW_POLL_SECONDS``."""
    rule = FaultRule(kind="slow", endpoint="poll", seconds=SLOW_POLL_SECONDS)
    return start_simulator(key=ENGINE_KEY, faults=FaultPlan(rules=(rule,)))


@pytest.fixture
def team(
    tmp_path: Path, postgres_database_url: str, slow_gateway: RunningSimulator
) -> Iterator[tuple[Studio, JobStore, list[Job], dict[str, str]]]:
    """Jobs sent by a Studio without a watcher, and the environment of a worker for them."""
    settings = settings_for(tmp_path / "home", api_key=ENGINE_KEY, base_url=slow_gateway.url)
    settings = replace(
        settings, database_url=postgres_database_url, shared_key_salt=bytes.fromhex(SALT)
    )
    studio = Studio.open(settings, start_watcher=False, catalog=CATALOG)
    store = JobStore.open(postgres_database_url)
    sent = [
        studio.submit(quick_draft(), submission_id=str(uuid.uuid4()), session_id="sender")
        for _ in range(JOBS)
    ]
    # The worker has a data folder of its own, as on another machine: the shared salt is what
    # lets it recognise the jobs made with the same key.
    env = team_environment(
        key=ENGINE_KEY,
        base_url=slow_gateway.url,
        database_url=postgres_database_url,
        home=tmp_path / "worker-home",
        WAN_STUDIO_KEY_SALT=SALT,
    )
    yield studio, store, sent, env
    store.close()
    studio.close()


def _holding_every_job(store: JobStore, pid: int) -> Callable[[], list[int] | None]:
    def check() -> list[int] | None:
        held = leases_held_by(store, pid)
        return held if len(held) == JOBS else None

    return check


def test_sigterm_gives_a_workers_leases_back_at_once(team, tmp_path: Path) -> None:
    _studio, store, sent, env = team
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        # Its first status checks are under way (and take 30 s): it holds every job's lease.
        held = wait_until(_holding_every_job(store, worker.pid), timeout=30)
        assert held == sorted(job.id for job in sent)
        worker.send(signal.SIGTERM)
        # Given back well before the checks in hand could end or the leases run out (60 s).
        assert wait_until(lambda: not leases_held_by(store, worker.pid) or None, timeout=10)
        # And due: another worker claims them now.
        claimed = store.claim_due("another-worker", lease_seconds=60)
        assert sorted(job.id for job in claimed) == held
    finally:
        worker.stop(timeout=1)
    assert ENGINE_KEY not in worker.log()


def test_a_killed_workers_jobs_are_taken_over_when_its_leases_expire(team, tmp_path: Path) -> None:
    studio, store, _sent, env = team
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        held = wait_until(_holding_every_job(store, worker.pid), timeout=30)
        worker.send(signal.SIGKILL)
        worker.process.wait(timeout=10)
        # Nobody gave the leases back: until they expire, no other worker may take the jobs.
        assert leases_held_by(store, worker.pid) == held
        assert store.claim_due("another-worker", lease_seconds=60) == []
        leased_until = max(job.lease_until for job in map(studio.job, held))
        taken = store.claim_due(
            "another-worker", now=leased_until + timedelta(seconds=1), lease_seconds=60
        )
        assert sorted(job.id for job in taken) == held
    finally:
        worker.stop(timeout=1)


def test_migrate_brings_an_empty_database_up_to_date_and_says_so(
    postgres_database_url: str, tmp_path: Path
) -> None:
    from studio.migrations import LATEST_VERSION

    env = team_environment(
        key=ENGINE_KEY,
        base_url="http://127.0.0.1:9",
        database_url=postgres_database_url,
        home=tmp_path / "home",
    )

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "studio", "migrate"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = migrate()
    assert first.returncode == 0, first.stderr
    latest = f"schema version {LATEST_VERSION} (the latest this version of Wan Studio knows"
    assert first.stdout.startswith(latest)
    assert "was at schema version 0; migrated." in first.stderr
    again = migrate()
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(latest)
    assert "is up to date." in again.stderr
    with JobStore.open(postgres_database_url) as store, store.engine.connect() as conn:
        from studio.migrations import recorded_version

        assert recorded_version(conn) == LATEST_VERSION
