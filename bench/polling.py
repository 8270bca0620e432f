"""How the job watcher polls, beside a fixed 5-second loop and the upstream SDK's schedule.

Real jobs take 1-10 minutes. Here time runs ``--speed`` times faster (default 5): five job
classes (model, resolution, duration), each on its own simulator process whose ``--speed`` makes
its tasks last about as long as real ones would, divided by that factor. The simulator times tasks
as the real service behaves: a skewed queue wait, then a running time that is nearly constant for
one class (±6 % by default; ``--run-jitter 0.2`` shows how the watcher fares at ±20 %). Every
schedule polls over HTTP with the same client code, and every number below is reported in real
(unscaled) seconds. Faster than about 5x, two cores cannot keep up with 200 jobs: the bench's
processes, not the schedules, then set the delays (poll round trips grow from 0.01 to 0.7 s).

Four waves:

1. The watcher with no history of past jobs ("cold"), the doc's fixed 5-second loop and the
   upstream SDK's schedule (sleep 1, 1, 2, 2, 2, 4, 4, 4, then 5 s between polls), each on its
   own jobs, at the same time.
2. The watcher again, now that the store knows how long each class takes ("warm").
3. The warm watcher with ``--load-jobs`` (default 200) jobs in flight at once, under the request
   budget (10 per second): the most requests it made in any one-second window.
4. The same, with every job sent before the watcher starts, as when it restarts with that many
   in flight (jobs that end before their first poll count with their whole wait).

For each job: polls made, and the delay from the gateway's ``end_time`` to the answer that told
the engine the job had ended. Run: ``python bench/polling.py [--speed 5] [--jobs-per-class 8]
[--load-jobs 200] [--run-jitter 0.06] [--workers 16] [--policy near_finish_delay=4 ...]``.
Targets: the watcher makes at most a third of the SDK's requests per job with a median delay
under 3 s, and stays within the budget.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator._rules import load_rules
from simulator._tasks import RUN_JITTER, queue_seconds, run_seconds
from studio.catalog import default_catalog
from studio.errors import GatewayError
from studio.gateway import GatewayClient, RetryPolicy, TaskSnapshot, TaskStatus
from studio.imagehost import DataUriHost, data_uri
from studio.images import ImageLibrary, PreparedImage, prepare_image
from studio.jobs import JobDraft, Submitter
from studio.records import BILLED, JobStatus
from studio.schedule import PollPolicy, RequestBudget
from studio.settings import key_fingerprint
from studio.store import JobStore, sqlite_url
from studio.watcher import DEFAULT_WORKERS, Watcher

REPO = Path(__file__).resolve().parents[1]
BUDGET_PER_SECOND = 10.0
FIXED_LOOP = (5.0,)
SDK_SLEEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 5.0)  # the last one repeats
TARGET_REQUEST_RATIO = 1 / 3
TARGET_MEDIAN_DELAY = 3.0
IN_FLIGHT = [status for status in JobStatus if status.in_flight]
_ONE_REQUEST = RetryPolicy(max_attempts=1)
_SERVING = re.compile(r"serving the Wan gateway simulator at (\S+)")
# ``python -m simulator`` with its within-class running-time jitter set first (argv[1]).
_LAUNCH_SIMULATOR = (
    "import sys; import simulator._tasks as tasks; tasks.RUN_JITTER = float(sys.argv[1]); "
    "from simulator.__main__ import main; raise SystemExit(main(sys.argv[2:]))"
)


def simulator_mean_seconds(model: str, resolution: str, duration: int) -> float:
    """A class's mean time from submit to end in the simulator at speed 1 (queue plus running)."""
    rules = load_rules()
    draws = random.Random(0)
    queue = statistics.fmean(queue_seconds(draws) for _ in range(20_000))
    running = run_seconds(
        draws,
        fast=rules.models[model].is_fast,
        tier_pixels=rules.tier_pixels[resolution],
        smallest_tier_pixels=min(rules.tier_pixels.values()),
        duration=duration,
        jitter=0.0,
    )
    return queue + running


@dataclass(frozen=True)
class JobClass:
    """One kind of job and how long it takes for real, on average."""

    model: str
    resolution: str
    duration: int
    mean_minutes: float

    @property
    def label(self) -> str:
        return f"{self.model} {self.resolution} {self.duration}s"

    def simulator_speed(self, speed: float) -> float:
        """The simulator ``--speed`` that makes this class last ``mean_minutes / speed``."""
        native = simulator_mean_seconds(self.model, self.resolution, self.duration)
        return native / (self.mean_minutes * 60 / speed)


# All 480P: every task renders a real MP4 and two cores must keep up; the bench measures polling,
# so a class only needs its own (model, resolution, duration), the key of the watcher's history.
CLASSES = (
    JobClass("wan2.1-i2v-turbo", "480P", 3, 1.3),
    JobClass("wan2.1-i2v-turbo", "480P", 4, 2.0),
    JobClass("wan2.1-i2v-turbo", "480P", 5, 3.0),
    JobClass("wan2.2-i2v-flash", "480P", 5, 4.5),
    JobClass("wan2.2-i2v-plus", "480P", 5, 8.0),
)


@dataclass(frozen=True)
class Poll:
    """One status request: when it left, when its answer came, and what it said."""

    task_id: str
    sent: float
    answered: float
    status: TaskStatus | None  # None: the request failed
    end_time: float | None


@dataclass
class RequestLog:
    """Every poll and download of one schedule, thread-safe."""

    polls: list[Poll] = field(default_factory=list)
    downloads: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_poll(self, poll: Poll) -> None:
        with self._lock:
            self.polls.append(poll)

    def add_download(self, sent: float) -> None:
        with self._lock:
            self.downloads.append(sent)


class RecordingClient(GatewayClient):
    """The studio's gateway client, noting every request it makes (one attempt each)."""

    def __init__(self, *, log: RequestLog, **options: object) -> None:
        super().__init__(retry=_ONE_REQUEST, **options)  # type: ignore[arg-type]
        self.log = log

    def get_task(self, task_id: str, *, polling_url: str | None = None) -> TaskSnapshot:
        sent = time.time()
        try:
            snapshot = super().get_task(task_id, polling_url=polling_url)
        except GatewayError:
            self.log.add_poll(Poll(task_id, sent, time.time(), None, None))
            raise
        end = snapshot.end_time.timestamp() if snapshot.end_time else None
        self.log.add_poll(Poll(task_id, sent, time.time(), snapshot.status, end))
        return snapshot

    def download(self, url: str, dest: Path, **options: int) -> int:
        self.log.add_download(time.time())
        return super().download(url, dest, **options)


@dataclass
class SimulatorProcess:
    """``python -m simulator`` in its own process, for one job class."""

    job_class: JobClass
    key: str
    url: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls, job_class: JobClass, *, speed: float, run_jitter: float, folder: Path
    ) -> SimulatorProcess:
        key = f"bench-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        log_path = folder / "requests.log"
        command = [
            sys.executable,
            "-c",
            _LAUNCH_SIMULATOR,
            f"{run_jitter}",
            "--port",
            "0",
            "--key",
            key,
            "--speed",
            f"{job_class.simulator_speed(speed):.4f}",
            # One frame a second: the bench measures polling, not rendering.
            "--fps",
            "1",
            "--state-dir",
            str(folder / "state"),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, cwd=REPO, stderr=log_file)
        ends = time.monotonic() + 30
        while time.monotonic() < ends:
            if found := _SERVING.search(log_path.read_text(errors="replace")):
                return cls(job_class, key, found.group(1), process)
            if process.poll() is not None:
                break
            time.sleep(0.05)
        process.kill()
        raise RuntimeError(f"the simulator did not start: {log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


@dataclass(frozen=True)
class JobResult:
    """What one job cost in requests and how late its end was noticed, in real seconds."""

    job_class: JobClass
    polls: int
    delay: float | None  # None: the end was never seen
    duration: float | None


@dataclass
class Arm:
    """One schedule's jobs in one wave: which class each task is, and its requests."""

    name: str
    log: RequestLog = field(default_factory=RequestLog)
    tasks: dict[str, tuple[JobClass, float]] = field(default_factory=dict)  # id -> class, submit

    def results(self, speed: float) -> list[JobResult]:
        by_task: dict[str, list[Poll]] = {task: [] for task in self.tasks}
        for poll in self.log.polls:
            by_task.setdefault(poll.task_id, []).append(poll)
        results = []
        for task_id, (job_class, submitted) in self.tasks.items():
            polls = sorted(by_task[task_id], key=lambda poll: poll.sent)
            ended = next((poll for poll in polls if poll.status and poll.status.is_terminal), None)
            delay = duration = None
            if ended is not None and ended.end_time is not None:
                delay = max(ended.answered - ended.end_time, 0.0) * speed
                duration = (ended.end_time - submitted) * speed
            results.append(JobResult(job_class, len(polls), delay, duration))
        return results


def first_frame() -> PreparedImage:
    """A small photo-like JPEG, prepared as the app would send it."""
    size = (640, 480)
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    picture = Image.merge("RGB", (red, green, Image.new("L", size, 100)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    return prepare_image(buffer.getvalue(), filename="frame.jpg")


def draft_for(job_class: JobClass, image: PreparedImage) -> JobDraft:
    return JobDraft(
        model=job_class.model,
        resolution=job_class.resolution,
        duration=job_class.duration,
        prompt="the camera drifts over a quiet harbour at dawn",
        prompt_extend=False,
        seed=7,
        image=image,
        image_source="frame.jpg",
    )


# -- the two simple schedules --------------------------------------------------------------------


def follow_with_sleeps(
    client: GatewayClient, task_id: str, sleeps: Sequence[float], *, speed: float, limit: float
) -> None:
    """Poll at once, then sleep ``sleeps[i]`` (the last one repeating) after each answer."""
    ends = time.monotonic() + limit
    for step in range(10**6):
        with contextlib.suppress(GatewayError):
            if client.get_task(task_id).status.is_terminal:
                return
        if time.monotonic() > ends:
            return
        time.sleep(sleeps[min(step, len(sleeps) - 1)] / speed)


def start_simple_arm(
    name: str,
    sleeps: Sequence[float],
    sims: Sequence[SimulatorProcess],
    *,
    per_class: int,
    image: PreparedImage,
    speed: float,
    limit: float,
) -> tuple[Arm, list[threading.Thread]]:
    """Submit ``per_class`` jobs of each class and follow each in its own thread."""
    arm = Arm(name)
    catalog = default_catalog()
    url = data_uri(image.data, image.mime)
    threads = []
    for sim in sims:
        client = RecordingClient(log=arm.log, base_url=sim.url, api_key=sim.key, catalog=catalog)
        request = draft_for(sim.job_class, image).to_request(image_url=url)
        for _ in range(per_class):
            submitted = time.time()
            receipt = client.submit(request)
            arm.tasks[receipt.task_id] = (sim.job_class, submitted)
            thread = threading.Thread(
                target=follow_with_sleeps,
                args=(client, receipt.task_id, sleeps),
                kwargs={"speed": speed, "limit": limit},
                daemon=True,
            )
            thread.start()
            threads.append(thread)
    return arm, threads


# -- the watcher ---------------------------------------------------------------------------------


@dataclass
class Engine:
    """The studio's store, submitter and watcher, wired to one simulator per class."""

    store: JobStore
    home: Path
    policy: PollPolicy
    sims: Sequence[SimulatorProcess]
    image: PreparedImage
    workers: int

    def __post_init__(self) -> None:
        salt = b"polling-bench"
        self.fingerprints = {sim.job_class: key_fingerprint(sim.key, salt) for sim in self.sims}
        catalog = default_catalog()
        self.catalog = catalog
        self.submitter = Submitter(
            store=self.store,
            library=ImageLibrary(self.home),
            image_host=DataUriHost(),
            catalog=catalog,
            policy=self.policy,
        )
        self.submit_clients = {
            sim.job_class: GatewayClient(base_url=sim.url, api_key=sim.key, catalog=catalog)
            for sim in self.sims
        }

    def watcher(self, arm: Arm, *, speed: float) -> Watcher:
        clients = {
            self.fingerprints[sim.job_class]: RecordingClient(
                log=arm.log, base_url=sim.url, api_key=sim.key, catalog=self.catalog
            )
            for sim in self.sims
        }
        return Watcher(
            store=self.store,
            home=self.home,
            catalog=self.catalog,
            client_for_key=lambda fingerprint: clients.get(fingerprint or ""),
            held_keys=lambda: list(clients),
            policy=self.policy,
            budget=RequestBudget(BUDGET_PER_SECOND * speed),
            workers=self.workers,
        )

    def submit(self, arm: Arm, job_class: JobClass) -> None:
        submitted = time.time()
        job = self.submitter.submit(
            draft_for(job_class, self.image),
            client=self.submit_clients[job_class],
            submission_id=str(uuid.uuid4()),
            session_id="bench",
            mode=BILLED,
            key_fingerprint=self.fingerprints[job_class],
        )
        if job.task_id is None:
            raise RuntimeError(f"a submit failed: {job.status} {job.explanation}")
        arm.tasks[job.task_id] = (job_class, submitted)

    def in_flight(self) -> int:
        # A count, not the rows: the bench must not compete with the watcher it measures.
        return self.store.count_jobs(statuses=IN_FLIGHT)


@contextlib.contextmanager
def watching(engine: Engine, arm: Arm, *, speed: float) -> Iterator[Watcher]:
    watcher = engine.watcher(arm, speed=speed)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


def submit_all(engine: Engine, arm: Arm, classes: Sequence[JobClass], *, threads: int) -> None:
    """Submit one job per entry of ``classes``, several at once."""
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda job_class: engine.submit(arm, job_class), classes))


@dataclass
class LoadWave:
    """Many jobs at once: their arm, how long sending them took and the most in flight."""

    arm: Arm
    restart: bool
    sending: float = 0.0
    peak: int = 0


def run_load(
    engine: Engine, arm: Arm, classes: Sequence[JobClass], *, speed: float, restart: bool
) -> LoadWave:
    """Send one job per entry of ``classes`` and watch them all to the end.

    With ``restart`` every job is sent before the watcher starts, as when it restarts with
    that many in flight; otherwise the watcher runs while they are sent.
    """
    load = LoadWave(arm, restart)
    limit = engine.policy.deadline

    def all_done() -> bool:
        in_flight = engine.in_flight()
        load.peak = max(load.peak, in_flight)
        return in_flight == 0

    with contextlib.ExitStack() as stack:
        if not restart:
            stack.enter_context(watching(engine, arm, speed=speed))
        sending = time.monotonic()
        submit_all(engine, arm, classes, threads=4)
        load.sending = time.monotonic() - sending
        if restart:
            stack.enter_context(watching(engine, arm, speed=speed))
        wait_until(all_done, limit=limit)
    return load


def wait_until(done: Callable[[], bool], *, limit: float, every: float = 0.1) -> bool:
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        if done():
            return True
        time.sleep(every)
    return False


# -- numbers -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(round(fraction * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[index]


def max_in_window(times: Sequence[float], width: float) -> int:
    """The most timestamps inside any half-open window ``[t, t + width)``."""
    ordered = sorted(times)
    most = 0
    start = 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - width:
            start += 1
        most = max(most, end - start + 1)
    return most


@dataclass(frozen=True)
class Summary:
    """One schedule's figures, in real seconds."""

    name: str
    jobs: int
    unseen: int
    requests_mean: float
    requests_median: float
    delay_median: float
    delay_p90: float
    delay_max: float
    latency_median: float  # one poll's round trip, scaled like everything else


def summarise(name: str, results: Sequence[JobResult], log: RequestLog, speed: float) -> Summary:
    delays = [result.delay for result in results if result.delay is not None]
    requests = [result.polls for result in results]
    latencies = [(poll.answered - poll.sent) * speed for poll in log.polls]
    return Summary(
        name=name,
        jobs=len(results),
        unseen=len(results) - len(delays),
        requests_mean=statistics.fmean(requests),
        requests_median=statistics.median(requests),
        delay_median=statistics.median(delays) if delays else float("nan"),
        delay_p90=percentile(delays, 0.9),
        delay_max=max(delays, default=float("nan")),
        latency_median=statistics.median(latencies) if latencies else float("nan"),
    )


def print_summaries(summaries: Sequence[Summary], *, reference: Summary) -> None:
    print(
        f"{'schedule':<22} {'jobs':>4} {'req/job':>8} {'median':>7} {'vs SDK':>7} "
        f"{'delay median':>13} {'p90':>6} {'max':>6} {'poll RTT':>9}"
    )
    for summary in summaries:
        ratio = summary.requests_mean / reference.requests_mean
        unseen = f"  ({summary.unseen} never seen ending)" if summary.unseen else ""
        print(
            f"{summary.name:<22} {summary.jobs:>4} {summary.requests_mean:>8.1f} "
            f"{summary.requests_median:>7.0f} {ratio:>7.2f} {summary.delay_median:>12.1f}s "
            f"{summary.delay_p90:>5.1f}s {summary.delay_max:>5.1f}s "
            f"{summary.latency_median:>8.2f}s{unseen}"
        )


def print_by_class(arms: Sequence[tuple[str, Sequence[JobResult]]]) -> None:
    print("\nrequests per job (and median delay, s) by class:")
    header = f"{'class':<30} {'real minutes':>13}"
    for name, _ in arms:
        header += f" {name:>20}"
    print(header)
    for job_class in CLASSES:
        durations = [
            result.duration / 60
            for _, results in arms
            for result in results
            if result.job_class == job_class and result.duration is not None
        ]
        line = f"{job_class.label:<30} {min(durations):>6.1f}-{max(durations):<6.1f}"
        for _, results in arms:
            mine = [result for result in results if result.job_class == job_class]
            delays = [result.delay for result in mine if result.delay is not None]
            requests = statistics.fmean(result.polls for result in mine)
            delay = statistics.median(delays) if delays else float("nan")
            line += f" {requests:>11.1f} ({delay:>4.1f}s)"
        print(line)


# -- the run -------------------------------------------------------------------------------------


def parse_policy(overrides: Sequence[str]) -> PollPolicy:
    """``PollPolicy()`` with ``name=value`` overrides, e.g. ``near_finish_delay=4``."""
    changes: dict[str, float | int] = {}
    kinds = {item.name: item.type for item in dataclasses.fields(PollPolicy)}
    for override in overrides:
        name, _, raw = override.partition("=")
        if name not in kinds or not raw:
            raise SystemExit(f"--policy {override!r}: use NAME=VALUE, NAME one of {list(kinds)}")
        changes[name] = int(raw) if kinds[name] in ("int", int) else float(raw)
    return dataclasses.replace(PollPolicy(), **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=5.0, help="how much faster time runs")
    parser.add_argument("--jobs-per-class", type=int, default=8, help="jobs of each class per wave")
    parser.add_argument("--load-jobs", type=int, default=200, help="jobs in flight in wave 3")
    parser.add_argument(
        "--run-jitter",
        type=float,
        default=RUN_JITTER,
        help="± share by which running times vary within a class",
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="the watcher's concurrent workers"
    )
    parser.add_argument(
        "--policy", action="append", default=[], metavar="NAME=VALUE", help="PollPolicy override"
    )
    options = parser.parse_args()
    speed = options.speed
    base_policy = parse_policy(options.policy)
    policy = base_policy.scaled(speed)
    limit = base_policy.deadline / speed
    image = first_frame()
    started = time.monotonic()
    print(
        f"time runs {speed:g}x faster; {len(CLASSES)} classes x {options.jobs_per_class} jobs per "
        f"schedule; running times ±{options.run_jitter:.0%} within a class; request budget "
        f"{BUDGET_PER_SECOND:g}/s (real); watcher workers {options.workers}"
    )
    if options.policy:
        print(f"watcher policy overrides: {', '.join(options.policy)}")

    with tempfile.TemporaryDirectory(prefix="polling-bench-") as scratch:
        folder = Path(scratch)
        sims = [
            SimulatorProcess.start(
                job_class,
                speed=speed,
                run_jitter=options.run_jitter,
                folder=folder / f"sim-{index}",
            )
            for index, job_class in enumerate(CLASSES)
        ]
        store = JobStore.open(sqlite_url(folder / "studio.db"))
        try:
            engine = Engine(
                store=store,
                home=folder / "home",
                policy=policy,
                sims=sims,
                image=image,
                workers=options.workers,
            )
            wave = [job_class for job_class in CLASSES for _ in range(options.jobs_per_class)]

            # Wave 1: the cold watcher beside the two simple schedules.
            cold = Arm("watcher (cold)")
            with watching(engine, cold, speed=speed):
                submit_all(engine, cold, wave, threads=4)
                fixed, fixed_threads = start_simple_arm(
                    "fixed 5 s loop",
                    FIXED_LOOP,
                    sims,
                    per_class=options.jobs_per_class,
                    image=image,
                    speed=speed,
                    limit=limit,
                )
                sdk, sdk_threads = start_simple_arm(
                    "upstream SDK",
                    SDK_SLEEPS,
                    sims,
                    per_class=options.jobs_per_class,
                    image=image,
                    speed=speed,
                    limit=limit,
                )
                wait_until(lambda: engine.in_flight() == 0, limit=limit)
                for thread in fixed_threads + sdk_threads:
                    thread.join(limit)
            print(f"wave 1 done after {time.monotonic() - started:.0f} s")

            # Wave 2: the watcher again, now with the history of wave 1 in the store.
            warm = Arm("watcher (warm)")
            with watching(engine, warm, speed=speed):
                submit_all(engine, warm, wave, threads=4)
                wait_until(lambda: engine.in_flight() == 0, limit=limit)
            print(f"wave 2 done after {time.monotonic() - started:.0f} s")

            # Waves 3 and 4: many jobs in flight at once, under the request budget; sent while
            # the watcher runs, then all sent before it starts (as after a restart).
            # The longest jobs first, so that the short ones are still in flight at the end.
            many = [CLASSES[-1 - index % len(CLASSES)] for index in range(options.load_jobs)]
            loads = []
            for wave, restart in ((3, False), (4, True)):
                name = f"{options.load_jobs} jobs" + (", restart" if restart else "")
                loads.append(run_load(engine, Arm(name), many, speed=speed, restart=restart))
                print(f"wave {wave} done after {time.monotonic() - started:.0f} s")
            print()
        finally:
            store.close()
            for sim in sims:
                sim.stop()

    arms = (warm, cold, fixed, sdk, *(load.arm for load in loads))
    results = {arm.name: arm.results(speed) for arm in arms}
    logs = {arm.name: arm.log for arm in arms}
    summaries = {name: summarise(name, found, logs[name], speed) for name, found in results.items()}
    reference = summaries[sdk.name]
    print_summaries([summaries[arm.name] for arm in (warm, cold, fixed, sdk)], reference=reference)
    print_by_class([(arm.name, results[arm.name]) for arm in arms])

    busiest = 0
    for load in loads:
        requests = [poll.sent for poll in load.arm.log.polls] + load.arm.log.downloads
        load_busiest = max_in_window(requests, 1.0 / speed)
        busiest = max(busiest, load_busiest)
        span = (max(requests) - min(requests)) * speed
        load_summary = summaries[load.arm.name]
        print(
            f"\nwatcher, {load.arm.name}: sent over {load.sending * speed:.0f} s"
            f"{' before the watcher started' if load.restart else ' while it ran'}; peak "
            f"{load.peak} in flight; {len(requests)} requests (polls and downloads) over "
            f"{span:.0f} s, {len(requests) / span:.1f}/s on average; the busiest second held "
            f"{load_busiest} (budget {BUDGET_PER_SECOND:g}); {load_summary.requests_mean:.1f} "
            f"polls per job; delay median {load_summary.delay_median:.1f} s, p90 "
            f"{load_summary.delay_p90:.1f} s; poll round trip {load_summary.latency_median:.2f} s"
        )
    # What each schedule would ask for with that many jobs in flight, from its own waves.
    for arm in (warm, fixed, sdk):
        per_job_second = statistics.fmean(
            result.polls / result.duration for result in results[arm.name] if result.duration
        )
        print(
            f"{arm.name} with {options.load_jobs} jobs in flight would want about "
            f"{per_job_second * options.load_jobs:.0f} requests per second"
        )

    warm_summary = summaries[warm.name]
    ratio = warm_summary.requests_mean / reference.requests_mean
    print(
        f"\ntarget: requests <= {TARGET_REQUEST_RATIO:.2f} x SDK: {ratio:.2f} "
        f"({'met' if ratio <= TARGET_REQUEST_RATIO else 'NOT met'}); median delay < "
        f"{TARGET_MEDIAN_DELAY:g} s: {warm_summary.delay_median:.1f} s "
        f"({'met' if warm_summary.delay_median < TARGET_MEDIAN_DELAY else 'NOT met'}); "
        f"busiest second <= {BUDGET_PER_SECOND:g}: {busiest} "
        f"({'met' if busiest <= BUDGET_PER_SECOND else 'NOT met'})"
    )
    print(f"total wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
