"""A team's deployment with real processes, end to end.

PostgreSQL; an S3-compatible object store; the gateway simulator as its own process, with
faults; two app processes (``streamlit run app.py`` with ``WAN_STUDIO_WATCHER=off``) sharing the
database and the bucket; two workers (``python -m studio watch`` on the tests' fast schedule, so
leases last 3 s). Every process has a data folder of its own, as on separate machines, and the
team's shared key salt. 200 jobs from five people are sent while one worker is killed with
SIGKILL and the other stopped with SIGTERM, each replaced; a job sent from one app's page in
Chromium is seen finishing in the other's.

Afterwards every job is final, each was sent once, each cost is counted once, the people's totals
add up to the team's, each video is in the bucket once, and the key is in no database dump,
object, log, file or page.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from studio.pricing import cost_for_usage
from studio.records import JobStatus
from studio.service import Studio
from studio.store import JobStore
from tests.e2e.test_browser import generate_button, picture, upload, wait_until_idle, widget
from tests.plugins.browser import StreamlitServer, app_workdir, free_port
from tests.plugins.engine import CATALOG, FAST_POLICY, quick_draft, settings_for, wait_until
from tests.plugins.objectstore import ObjectStore
from tests.plugins.postgres import _find_bindir
from tests.plugins.processes import REPO, Process
from tests.plugins.team import start_worker, team_environment

pytestmark = [pytest.mark.browser, pytest.mark.postgres]

KEY = f"team-key-{uuid.uuid4().hex}"
JOBS = 200
PEOPLE = [f"person-{number}@example.com" for number in range(1, 6)]
SALT = "7e57" * 16
# Tasks take about 0.6 s at this speed; the videos are short on frames, so rendering 200 of them
# leaves the two cores room for everything else.
SIMULATOR_SPEED = "10"
SIMULATOR_FPS = "1"
# Each worker may use the whole budget here: the test is about who does the work, not the rate.
WORKER_BUDGET = "20"
FAULTS = """
[[fault]]
kind = "server_error"
endpoint = "poll"
every = 9

[[fault]]
kind = "rate_limit"
endpoint = "poll"
every = 13
retry_after = 0.2

[[fault]]
kind = "slow"
endpoint = "poll"
every = 17
seconds = 0.5

[[fault]]
kind = "server_error"
endpoint = "video"
every = 11

[[fault]]
kind = "lost_submit"
count = 2

[[fault]]
kind = "fail_task"
every = 25
"""
PROMPT = "a hot-air balloon drifts over the hills"
BROWSER_TIMEOUT_MS = 90_000


class Team:
    """Every process of the deployment, and where each one's output goes."""

    def __init__(self, root: Path, database_url: str, media_env: dict[str, str]) -> None:
        self.root = root
        self.media_env = {
            name: value for name, value in media_env.items() if name != "WAN_STUDIO_MEDIA_PREFIX"
        }
        self.media_prefix = media_env["WAN_STUDIO_MEDIA_PREFIX"]
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        self.database_url = database_url
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.gateway_dir = root / "gateway"
        self.processes: list[Process | StreamlitServer] = []
        self.workers: list[Process] = []

    def home(self, name: str) -> Path:
        """The data folder of one process: each its own, as on machines of their own."""
        return self.root / "homes" / name

    def env(self, name: str, **more: str) -> dict[str, str]:
        return team_environment(
            key=KEY,
            base_url=self.gateway_url,
            database_url=self.database_url,
            home=self.home(name),
            WAN_STUDIO_KEY_SALT=SALT,
            **self.media_env,
            **more,
        )

    def start_gateway(self) -> Process:
        faults = self.root / "faults.toml"
        faults.write_text(FAULTS)
        command = [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            str(self.gateway_port),
            "--key",
            KEY,
            "--speed",
            SIMULATOR_SPEED,
            "--fps",
            SIMULATOR_FPS,
            "--state-dir",
            str(self.gateway_dir),
            "--faults",
            str(faults),
        ]
        gateway = Process(command, env=self.env("gateway"), log_path=self.logs / "gateway.log")
        self.processes.append(gateway)
        return gateway

    def start_app(self, name: str) -> StreamlitServer:
        server = StreamlitServer(
            script=REPO / "app.py",
            workdir=app_workdir(self.root / name),
            env=self.env(name, WAN_STUDIO_WATCHER="off", HOME=str(self.root / name / "home")),
            log_path=self.logs / f"{name}.log",
        )
        self.processes.append(server)
        return server

    def start_worker(self) -> Process:
        number = len(self.workers) + 1
        worker = start_worker(
            self.env(f"worker-{number}", WAN_STUDIO_REQUEST_BUDGET=WORKER_BUDGET),
            self.logs / f"worker-{number}.log",
            fast=True,
        )
        self.workers.append(worker)
        self.processes.append(worker)
        return worker

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def every_log(self) -> dict[str, str]:
        return {path.name: path.read_text(errors="replace") for path in self.logs.iterdir()}


@pytest.fixture
def team(tmp_path: Path, postgres_database_url: str, media_env: dict[str, str]) -> Iterator[Team]:
    deployment = Team(tmp_path, postgres_database_url, media_env)
    try:
        yield deployment
    finally:
        deployment.stop()


def _migrate(team: Team) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "studio", "migrate"],
        env=team.env("migrate"),
        cwd=team.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    (team.logs / "migrate.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stderr


def _gateway_tasks(team: Team) -> list[dict]:
    import json

    folder = team.gateway_dir / "tasks"
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def _final_count(store: JobStore, lease_owners: set[str]) -> int:
    """How many jobs are final; notes who holds leases now (``host:pid:random``) on the way."""
    from studio.migrations import jobs

    in_flight = [status.value for status in JobStatus if status.in_flight]
    with store.engine.connect() as conn:
        owners = conn.execute(
            sa.select(jobs.c.lease_owner).where(jobs.c.lease_owner.is_not(None)).distinct()
        )
        lease_owners.update(owners.scalars())
        return conn.execute(
            sa.select(sa.func.count()).where(jobs.c.status.not_in(in_flight))
        ).scalar_one()


def _wait_for_final(store: JobStore, lease_owners: set[str], count: int) -> None:
    wait_until(
        lambda: _final_count(store, lease_owners) >= count or None,
        timeout=90,
        every=0.05,
        what=f"{count} final jobs",
    )


def _pids(owners: set[str]) -> set[int]:
    return {int(owner.split(":")[-2]) for owner in owners}


def _pg_dump(database_url: str) -> str:
    bindir = _find_bindir()
    assert bindir is not None
    url = sa.make_url(database_url).set(drivername="postgresql")
    dumped = subprocess.run(
        [str(bindir / "pg_dump"), "--data-only", url.render_as_string(hide_password=False)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dumped.stdout


def _files_holding(folder: Path, needle: bytes) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and needle in path.read_bytes():
            found.append(str(path.relative_to(folder)))
    return found


def _objects_holding(store: ObjectStore, prefix: str, needle: bytes) -> list[str]:
    client = store.client()
    found = []
    for key in store.keys(prefix):
        if needle in key.encode():
            found.append(key)
            continue
        answer = client.get_object(Bucket=store.bucket, Key=key)
        metadata = repr(answer.get("Metadata", {})).encode()
        if needle in answer["Body"].read() or needle in metadata:
            found.append(key)
    return found


def _send_jobs(studio: Studio, count: int) -> list[int]:
    draft = quick_draft()

    def send(number: int) -> int:
        person = PEOPLE[number % len(PEOPLE)]
        sent = studio.submit(
            replace(draft, prompt=f"{PROMPT}, take {number}"),
            submission_id=str(uuid.uuid4()),
            session_id=f"session-{number % 7}",
            owner=person,
        )
        return sent.id

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(send, range(count)))


def test_two_apps_and_two_workers_finish_every_job_once_through_a_kill_and_a_stop(
    team: Team, browser: Browser, object_store: ObjectStore, tmp_path: Path
) -> None:
    team.start_gateway()
    _migrate(team)
    app_a, app_b = team.start_app("app-a"), team.start_app("app-b")
    worker_1, worker_2 = team.start_worker(), team.start_worker()

    # The jobs are sent by a Studio of this process (no watcher), as the app's pages send them.
    settings = replace(
        settings_for(team.home("sender"), api_key=KEY, base_url=team.gateway_url),
        database_url=team.database_url,
        media_url=team.media_env["WAN_STUDIO_MEDIA_URL"],
        shared_key_salt=bytes.fromhex(SALT),
    )
    wait_until(lambda: _gateway_answers(team.gateway_url), timeout=30, what="the gateway")
    studio = Studio.open(settings, start_watcher=False, catalog=CATALOG, poll_policy=FAST_POLICY)
    store = JobStore.open(team.database_url)
    lease_owners: set[str] = set()
    try:
        job_ids = _send_jobs(studio, JOBS // 2)
        # Midway: one worker dies without a word, and its replacement starts.
        _wait_for_final(store, lease_owners, JOBS // 4)
        worker_1.send(signal.SIGKILL)
        team.start_worker()

        # A job sent from one app's page is seen finishing in the other's.
        app_a.wait_healthy()
        app_b.wait_healthy()
        pages_text = _send_in_one_app_and_watch_in_the_other(
            browser, app_a.url, app_b.url, tmp_path
        )

        # The apps have opened their Studios now: the rest are sent while they are up.
        job_ids += _send_jobs(studio, JOBS - JOBS // 2)
        # Later: the other worker is asked to stop, stops cleanly, and is replaced.
        _wait_for_final(store, lease_owners, JOBS // 2 + 1)
        worker_2.send(signal.SIGTERM)
        assert worker_2.process.wait(timeout=30) == 0
        team.start_worker()
        _wait_for_final(store, lease_owners, JOBS + 1)
        every_job = [store.get(job_id) for job_id in job_ids]
        browser_jobs = [job for job in store.list_jobs(limit=JOBS + 10) if job.id not in job_ids]
        assert len(browser_jobs) == 1
        every_job += browser_jobs
        totals = studio.totals(None)
        people_totals = [studio.totals(None, owner=person).all_time.billed for person in PEOPLE]
        people_rows = studio.spend_by_person()
    finally:
        store.close()
        studio.close()
    for process in team.workers:
        process.stop()

    # Every job is final.
    statuses = Counter(job.status for job in every_job)
    assert not [job for job in every_job if job.in_flight], statuses
    # Each was sent once: the gateway has exactly one task per job, and each job its own task.
    tasks = _gateway_tasks(team)
    assert len(tasks) == len(every_job) == JOBS + 1
    task_ids = [job.task_id for job in every_job if job.task_id is not None]
    assert len(set(task_ids)) == len(task_ids)
    assert set(task_ids) <= {task["task_id"] for task in tasks}
    # Lost answers to two submits leave two jobs "not sure it was sent", never sent again.
    assert statuses[JobStatus.UNCERTAIN] == 2
    assert statuses[JobStatus.FAILED] >= 1
    # Each cost is counted once: the team's total is the price of every video the gateway made.
    known = set(task_ids)
    assert len([task for task in tasks if task["task_id"] not in known]) == 2  # the lost answers
    made = [
        task
        for task in tasks
        if task["task_id"] in known and task["fault"] is None and task["failure_code"] is None
    ]
    assert statuses[JobStatus.SUCCEEDED] == len(made)
    team_total = totals.all_time.billed
    assert team_total.videos == len(made)
    assert team_total.cost_usd == sum(map(_price, made))
    assert sum(job.cost_usd or 0 for job in every_job) == team_total.cost_usd
    # The people's totals add up to the team's; the browser's job, sent without sign-in, has
    # no owner and is the one row without an e-mail.
    browser_cost = browser_jobs[0].cost_usd or Decimal(0)
    assert sum(spend.cost_usd for spend in people_totals) + browser_cost == team_total.cost_usd
    assert sum(spend.jobs for spend in people_totals) == JOBS
    assert {row.email for row in people_rows} == {*PEOPLE, None}
    assert sum(row.all_time.billed.cost_usd for row in people_rows) == team_total.cost_usd
    # Each video is in the bucket once, under its job's name, and on no process's disk.
    prefix = team.media_prefix
    videos = [key for key in object_store.keys(prefix) if key.startswith(f"{prefix}/videos/")]
    assert videos == sorted(
        f"{prefix}/videos/{job.id}.mp4" for job in every_job if job.status is JobStatus.SUCCEEDED
    )
    assert all(object_store.versions(key) == 1 for key in videos)
    assert list((team.root / "homes").rglob("*.mp4")) == []
    # Only the workers watched: the apps, with the watcher off, never held a lease.
    watchers = _pids(lease_owners)
    assert watchers & {worker.pid for worker in team.workers}
    assert not watchers & {app_a.pid, app_b.pid}
    logs = team.every_log()
    # The key is nowhere: the database, any process's output, the data folder, any page.
    needle = KEY.encode()
    assert KEY not in _pg_dump(team.database_url)
    assert [name for name, text in logs.items() if KEY in text] == []
    assert _files_holding(team.root / "homes", needle) == []
    assert _objects_holding(object_store, prefix, needle) == []
    assert KEY not in pages_text


def _price(task: dict) -> Decimal:
    """What the video of a task the gateway made costs, from what was sent."""
    parameters = task["submitted"]["parameters"]
    return cost_for_usage(
        CATALOG.model(task["model"]), parameters["resolution"], Decimal(parameters["duration"])
    )


def _gateway_answers(url: str) -> bool:
    try:
        requests.post(f"{url}/wan-video-polling/getTextToVideoResult", json={}, timeout=2)
    except requests.ConnectionError:
        return False
    return True


def _send_in_one_app_and_watch_in_the_other(
    browser: Browser, url_a: str, url_b: str, tmp_path: Path
) -> str:
    """Generate a video in app A's page; open the same session in app B and see it done there."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    expect.set_options(timeout=30_000)
    try:
        page_a = context.new_page()
        page_a.goto(url_a)
        expect(page_a.get_by_role("heading", name="Generate a video")).to_be_visible()
        upload(page_a, picture(tmp_path / "balloon.png"))
        expect(widget(page_a, "frame-image").get_by_text("Ready to send.")).to_be_visible()
        prompt = widget(page_a, "gen.prompt").locator("textarea")
        prompt.fill(PROMPT)
        prompt.press("Tab")
        wait_until_idle(page_a)
        generate_button(page_a).click()
        expect(page_a.locator('[class*="st-key-job-card-"]')).to_have_count(1)
        session = re.search(r"[?&]session=([0-9a-f-]+)", page_a.url)
        assert session is not None, page_a.url

        page_b = context.new_page()
        page_b.goto(f"{url_b}/?session={session.group(1)}")
        card_b = page_b.locator('[class*="st-key-job-card-"]')
        expect(card_b).to_have_count(1)
        expect(card_b.first).to_contain_text(PROMPT)
        expect(card_b.first.locator('[data-testid="stVideo"]')).to_be_attached(
            timeout=BROWSER_TIMEOUT_MS
        )
        expect(card_b.first).to_contain_text("Done")
        # App A hears of it too, though neither app runs a watcher.
        expect(page_a.locator('[class*="st-key-job-card-"]').first).to_contain_text(
            "Done", timeout=BROWSER_TIMEOUT_MS
        )
        return page_a.content() + page_b.content()
    finally:
        context.close()
