"""Workers of a team against one gateway: the request budget, and how soon videos are playable.

Each scenario sends ``--jobs`` jobs at once (Wan 2.1 Turbo, 480P, 3 s) to a simulator running
``--speed`` times faster than the real gateway, and lets ``python -m studio watch`` worker
processes finish them, on a fresh database and data folder:

- one worker with the account's whole budget (``--budget`` requests a second);
- two workers, each with the whole budget: what ``WAN_STUDIO_REQUEST_BUDGET`` alone gives, as it
  is per process;
- two workers, each with half the budget: the split README asks a team to set.

For each it reports the mean rate and the busiest one and five seconds of status checks and
downloads the gateway saw (sliding windows over the moments the requests began, from the
simulator's own request log),
and the delay from a job's end upstream (the gateway's end time) to its video being playable
(the job recorded as done, seen by reading the store every 0.1 s). Targets: the busiest five
seconds within the budget (a token bucket with a burst of one may let one more request into a
window, per process), and the split workers' median and 90th percentile delays within 1.2
times one worker's.

Run: ``python bench/team.py [--jobs 500] [--speed 10] [--budget 10] [--database-url URL]``
(a PostgreSQL server URL such as ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``: each
scenario gets a new database on it; SQLite files in a temporary folder without it).
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import simulator  # noqa: E402
from studio.catalog import default_catalog  # noqa: E402
from studio.generation import JobDraft  # noqa: E402
from studio.images import prepare_image  # noqa: E402
from studio.migrations import jobs as jobs_table  # noqa: E402
from studio.records import JobStatus  # noqa: E402
from studio.schedule import PollPolicy  # noqa: E402
from studio.service import Studio  # noqa: E402
from studio.settings import KEY_FROM_ENVIRONMENT, Settings  # noqa: E402
from studio.store import JobStore, sqlite_url  # noqa: E402

KEY = f"bench-team-{uuid.uuid4().hex}"
SAMPLE_SECONDS = 0.1
# The simulator answers in the bench's own process: on a loaded machine its answers bunch up, so
# one second can hold requests sent across several. Five seconds smooth that out; a budget
# broken for good (two workers with the whole budget each) shows in both.
FIVE_SECONDS = 5.0
_TOOK = re.compile(r" (\d+)ms$")
TARGET_RATIO = 1.2
# The worker: the real command, on the standard schedule sped up like the simulator, except for
# what is not about the gateway's pace: the deadline (500 jobs under one budget take minutes
# whatever the speed) and the lease, which also bounds how many jobs a worker claims ahead.
WORKER_CODE = (
    "import sys; from dataclasses import replace; from studio.cli import main; "
    "from studio.schedule import PollPolicy; "
    "policy = replace(PollPolicy().scaled(float(sys.argv[1])), deadline=PollPolicy().deadline, "
    "lease_seconds=PollPolicy().lease_seconds); "
    "raise SystemExit(main(['watch'], poll_policy=policy))"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    workers: int
    budget_each: float


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    busiest_second: int
    busiest_five: int  # requests in the busiest five seconds
    requests: int
    seconds: float
    delays: list[float]
    unfinished: int

    @property
    def median(self) -> float:
        return statistics.median(self.delays)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.delays, n=10)[-1]


class RequestTimes(logging.Handler):
    """Times of the status checks and downloads the simulator answers (its own log lines)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "getTextToVideoResult" in text or " /videos/" in text:
            # The line is written when the answer is sent: the request began its time earlier.
            took = _TOOK.search(text)
            began = record.created - (float(took.group(1)) / 1000 if took else 0.0)
            with self._lock:
                self.times.append(began)

    def take(self) -> list[float]:
        with self._lock:
            taken, self.times = self.times, []
        return taken


def busiest(times: list[float], seconds: float = 1.0) -> int:
    """The most requests in any window of ``seconds``."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def frame_draft() -> JobDraft:
    picture = Image.effect_mandelbrot((640, 480), (-2.2, -1.2, 1.0, 1.2), 64).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    catalog = default_catalog()
    prepared = prepare_image(buffer.getvalue(), filename="frame.jpg", limits=catalog.limits)
    return JobDraft(
        model="wan2.1-i2v-turbo",
        resolution="480P",
        duration=3,
        prompt="a slow pan across the hills",
        prompt_extend=False,
        image=prepared,
        image_source="frame.jpg",
    )


@contextmanager
def fresh_database(server_url: str | None, folder: Path) -> Iterator[str]:
    if server_url is None:
        yield sqlite_url(folder / "studio.db")
        return
    name = f"bench_team_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def worker_environment(*, base_url: str, database_url: str, home: Path, budget: float) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("WAN_STUDIO")}
    return env | {
        "PIXAZO_API_KEY": KEY,
        "PIXAZO_BASE_URL": base_url,
        "WAN_STUDIO_DATABASE_URL": database_url,
        "WAN_STUDIO_HOME": str(home),
        "WAN_STUDIO_REQUEST_BUDGET": f"{budget:g}",
        "PYTHONPATH": str(REPO),
    }


def run(
    scenario: Scenario,
    *,
    gateway: simulator.RunningSimulator,
    requests: RequestTimes,
    jobs: int,
    speed: float,
    server_url: str | None,
    folder: Path,
) -> Outcome:
    home = folder / scenario.name.replace(" ", "-") / "home"
    home.mkdir(parents=True)
    standard = PollPolicy()
    # As the workers' (see WORKER_CODE): the deadline is written with each job when it is sent.
    policy = replace(
        standard.scaled(speed), deadline=standard.deadline, lease_seconds=standard.lease_seconds
    )
    with fresh_database(server_url, home.parent) as database_url:
        settings = Settings(
            api_key=KEY,
            key_source=KEY_FROM_ENVIRONMENT,
            base_url=gateway.url,
            home=home,
            database_url=database_url,
        )
        # Migrated first, as a team does before starting its processes.
        JobStore.migrate(database_url)
        env = worker_environment(
            base_url=gateway.url,
            database_url=database_url,
            home=home,
            budget=scenario.budget_each,
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE, str(speed)],
                env=env,
                cwd=home.parent,
                stdout=subprocess.DEVNULL,
                stderr=(home.parent / f"worker-{number}.log").open("wb"),
            )
            for number in range(scenario.workers)
        ]
        studio = Studio.open(
            settings, start_watcher=False, catalog=default_catalog(), poll_policy=policy
        )
        store = JobStore.open(database_url)
        try:
            draft = frame_draft()
            requests.take()
            started = time.monotonic()

            def send(number: int) -> int:
                job = studio.submit(
                    replace(draft, prompt=f"{draft.prompt}, take {number}"),
                    submission_id=str(uuid.uuid4()),
                    session_id=f"person-{number % 5}",
                )
                return job.id

            with ThreadPoolExecutor(4) as pool:
                sent = set(pool.map(send, range(jobs)))
            playable = watch_until_final(store, sent, timeout=60 + 20 * jobs / speed)
            seconds = time.monotonic() - started
            times = requests.take()
            finished = {
                job.id: job.finished_at
                for job in map(store.get, sent)
                if job is not None and job.status is JobStatus.SUCCEEDED
            }
            delays = [
                (playable[job_id] - ended).total_seconds()
                for job_id, ended in finished.items()
                if ended is not None and job_id in playable
            ]
            unfinished = sum(1 for job in map(store.get, sent) if job is None or job.in_flight)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
            store.close()
            studio.close()
    return Outcome(
        scenario=scenario,
        busiest_second=busiest(times),
        busiest_five=busiest(times, FIVE_SECONDS),
        requests=len(times),
        seconds=seconds,
        delays=delays,
        unfinished=unfinished,
    )


def watch_until_final(store: JobStore, sent: set[int], *, timeout: float) -> dict[int, datetime]:
    """When each job was first seen done, reading the store every ``SAMPLE_SECONDS``."""
    seen: dict[int, datetime] = {}
    in_flight = [status.value for status in JobStatus if status.in_flight]
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        now = datetime.now(UTC)
        with store.engine.connect() as conn:
            done = conn.execute(
                sa.select(jobs_table.c.id).where(jobs_table.c.status == JobStatus.SUCCEEDED.value)
            ).scalars()
            for job_id in done:
                seen.setdefault(job_id, now)
            left = conn.execute(
                sa.select(sa.func.count()).where(
                    jobs_table.c.id.in_(sent), jobs_table.c.status.in_(in_flight)
                )
            ).scalar_one()
        if not left:
            break
        time.sleep(SAMPLE_SECONDS)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs in flight at once")
    parser.add_argument("--speed", type=float, default=10.0, help="how much faster time runs")
    parser.add_argument("--budget", type=float, default=10.0, help="the account's requests/s")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite files)")
    options = parser.parse_args()
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}")
    print(
        f"{options.jobs} jobs at once per scenario, simulator at speed {options.speed:g}, "
        f"account budget {options.budget:g} requests/s, "
        f"database: {'PostgreSQL' if options.database_url else 'SQLite'}"
    )
    scenarios = [
        Scenario("1 worker, whole budget", 1, options.budget),
        Scenario("2 workers, whole budget each", 2, options.budget),
        Scenario("2 workers, half budget each", 2, options.budget / 2),
    ]
    requests = RequestTimes()
    logging.getLogger("simulator").addHandler(requests)
    logging.getLogger("simulator").setLevel(logging.INFO)
    outcomes: list[Outcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="wan-studio-team-") as folder,
        simulator.start(
            key=KEY, speed=options.speed, fps=1, state_dir=Path(folder) / "gateway"
        ) as gateway,
    ):
        for scenario in scenarios:
            outcome = run(
                scenario,
                gateway=gateway,
                requests=requests,
                jobs=options.jobs,
                speed=options.speed,
                server_url=options.database_url,
                folder=Path(folder),
            )
            outcomes.append(outcome)
            print(
                f"  {scenario.name}: {outcome.seconds:.0f} s, {outcome.requests} requests, "
                f"{len(outcome.delays)} videos, {outcome.unfinished} unfinished",
                flush=True,
            )
    single = outcomes[0]
    print()
    print(
        f"{'scenario':32} {'mean/s':>6} {'busiest 1 s':>11} {'busiest 5 s/5':>13} "
        f"{'budget':>6} {'within':>6} {'delay med':>9} {'p90':>7} {'ratio med':>9} "
        f"{'ratio p90':>9}"
    )
    for outcome in outcomes:
        per_second = outcome.busiest_five / FIVE_SECONDS
        # A token bucket with a burst of one lets each process one request more per window.
        within = per_second <= options.budget + outcome.scenario.workers / FIVE_SECONDS
        print(
            f"{outcome.scenario.name:32} {outcome.requests / outcome.seconds:>6.1f} "
            f"{outcome.busiest_second:>11} {per_second:>13.1f} {options.budget:>6g} "
            f"{'yes' if within else 'NO':>6} {outcome.median:>8.2f}s {outcome.p90:>6.2f}s "
            f"{outcome.median / single.median:>9.2f} {outcome.p90 / single.p90:>9.2f}"
        )
    split = outcomes[-1]
    ratio = max(split.median / single.median, split.p90 / single.p90)
    verdict = "met" if ratio <= TARGET_RATIO else "missed"
    print(
        f"\ntarget (two workers on half the budget each: within the budget, delays within "
        f"{TARGET_RATIO}x one worker's): {verdict} (worst ratio {ratio:.2f})"
    )
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average after: {load}")


if __name__ == "__main__":
    main()
