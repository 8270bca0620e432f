"""How the job watcher polls, cold and warm, beside the upstream SDK's schedule.

The main run is a discrete-event evaluation: every job gets a timeline (submit, start, end, in real
seconds) and the watcher's real schedule code decides when it polls: ``next_poll_delay`` with the
expectation of the real ``RunTimeEstimator``, whose store is the list of jobs that have ended so far
(as the watcher records them), read at the simulated time. The upstream SDK's schedule (poll at
once, then sleep 1, 1, 2, 2, 2, 4, 4, 4, then 5 s) runs on the same timelines. Nothing sleeps, so
it takes seconds; every figure is in real seconds, each poll with a round trip of 0.05-0.4 s.

Seven classes (model, resolution, duration) average 15 s to 10 minutes from submit to end; the
queue is the simulator's skewed wait scaled like the class. Per scenario and seed, 10 past jobs per
class make the history and 12 more per class are sent one after another (about half a job's time
apart, so they overlap and each may learn from those that ended before it):

- cold: each of the 12 alone with no history (a fresh data folder), on the catalog's prior;
- warm: the 12 with the history, learning as they end;
- SDK: the 12 with the SDK's schedule.

Scenarios: running times uniformly ±6, ±20 and ±40 % around the class's median; the whole class
at 0.75x and 1.25x of its history (±6 %); a heavy tail (±6 %, one job in ten twice as long).
Two more lines: a gateway the catalog knows nothing of (2-10 s queue, 15-45 s running, cold), and
ten fresh demo jobs of Wan 2.2 Plus 1080P at demo speed 1 on the demo gateway's timing model.

``--live`` adds a small real-time check: the real watcher and the SDK's schedule against simulator
processes (two classes, time ``--speed`` times faster), cold then warm; then ``--batch-size``
jobs of the quicker class sent one by one and the same number sent as one batch (variations:
one click, several seeds), warm both, so that their requests per job stand side by side (a batch
must add none); ``--load-jobs N`` then also sends N jobs at once under the request budget (10 a
second) and reports the busiest second.

Run: ``python bench/polling.py [--seeds 5] [--policy NAME=VALUE ...] [--live [--speed 10]
[--jobs-per-class 6] [--batch-size 8] [--load-jobs 0]]``.
Targets, cold and warm alike: delay from a job's end to the engine knowing it, median <= 3 s and
worst <= 8 s; requests per job <= the SDK's when cold and <= a third of them when warm.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import heapq
import io
import math
import os
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
from simulator._tasks import (
    QUEUE_MEDIAN_SECONDS,
    RUN_JITTER,
    RUN_SECONDS,
    queue_seconds,
    run_seconds,
)
from studio.catalog import Catalog, default_catalog
from studio.errors import GatewayError
from studio.expectations import JobClass, RunTimeEstimator
from studio.gateway import GatewayClient, RetryPolicy, TaskSnapshot, TaskStatus
from studio.generation import JobDraft, build_payload, quote
from studio.imagehost import DataUriHost, data_uri
from studio.images import ImageLibrary, PreparedImage, prepare_image
from studio.jobs import Submitter
from studio.records import BILLED, DEMO, JobFilter, JobStatus
from studio.schedule import PollPolicy, RequestBudget, next_poll_delay, watch_from
from studio.settings import key_fingerprint
from studio.store import JobStore, sqlite_url
from studio.variations import VariationKind, Variations
from studio.watcher import DEFAULT_WORKERS, Watcher

REPO = Path(__file__).resolve().parents[1]
BUDGET_PER_SECOND = 10.0
TARGET_MEDIAN_DELAY = 3.0
TARGET_WORST_DELAY = 8.0
TARGET_COLD_RATIO = 1.0
TARGET_WARM_RATIO = 1 / 3
IN_FLIGHT = [status for status in JobStatus if status.in_flight]
_ONE_REQUEST = RetryPolicy(max_attempts=1)
_SERVING = re.compile(r"serving the Wan gateway simulator at (\S+)")
# ``python -m simulator`` with its within-class running-time jitter set first (argv[1]).
_LAUNCH_SIMULATOR = (
    "import sys; import simulator._tasks as tasks; tasks.RUN_JITTER = float(sys.argv[1]); "
    "from simulator.__main__ import main; raise SystemExit(main(sys.argv[2:]))"
)

# -- the discrete-event evaluation ----------------------------------------------------------------

SDK_SLEEPS = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 5.0)  # the last one repeats
ROUND_TRIP = (0.05, 0.4)  # one poll's round trip, uniform between these, real seconds


@dataclass(frozen=True)
class Timeline:
    """One job as the gateway runs it, in real seconds from the bench's origin."""

    job_class: JobClass
    submitted: float
    started: float
    ended: float


@dataclass(frozen=True)
class Outcome:
    """What one schedule made of one job."""

    timeline: Timeline
    polls: int
    delay: float  # from the end to the answer that said so
    saw_running: bool  # some answer said RUNNING (the card said "Generating")
    queued_gap: float  # the longest wait between polls while the job was queued
    trace: tuple = ()  # (running seconds or None, delay, expectation) per poll, for a closer look


@dataclass
class History:
    """The store as the estimator sees it: ended jobs, each known from the moment it was seen."""

    now: float = 0.0
    entries: list[tuple[float, Timeline]] = field(default_factory=list)  # (seen at, job)

    def add(self, seen_at: float, timeline: Timeline) -> None:
        self.entries.append((seen_at, timeline))

    def recent_run_times(
        self,
        model: str,
        resolution: str,
        duration: int,
        *,
        mode: str,
        from_start: bool,
        limit: int = 50,
    ) -> list[float]:
        known = [
            timeline
            for seen_at, timeline in self.entries
            if seen_at <= self.now
            and timeline.job_class == JobClass(mode, model, resolution, duration)
        ]
        known.sort(key=lambda timeline: timeline.ended, reverse=True)
        began = (lambda t: t.started) if from_start else (lambda t: t.submitted)
        return [timeline.ended - began(timeline) for timeline in known[:limit]]

    def latest_running_times(self, *, mode: str, limit: int) -> list[tuple[str, str, int, float]]:
        known = [
            timeline
            for seen_at, timeline in self.entries
            if seen_at <= self.now and timeline.job_class.mode == mode
        ]
        known.sort(key=lambda timeline: timeline.ended, reverse=True)
        return [
            (t.job_class.model, t.job_class.resolution, t.job_class.duration, t.ended - t.started)
            for t in known[:limit]
        ]


def follow_sdk(timeline: Timeline, rng: random.Random) -> Outcome:
    """The upstream SDK: poll at once, then sleep 1, 1, 2, 2, 2, 4, 4, 4, then 5 s."""
    now, polls, saw_running, gap = timeline.submitted, 0, False, 0.0
    last = now
    while True:
        polls += 1
        answered = now + rng.uniform(*ROUND_TRIP)
        if now >= timeline.ended:
            return Outcome(timeline, polls, answered - timeline.ended, saw_running, gap)
        if now >= timeline.started:
            saw_running = True
        else:
            gap = max(gap, now - last)
        last = now
        now = answered + SDK_SLEEPS[min(polls - 1, len(SDK_SLEEPS) - 1)]


def follow_watcher(
    timelines: Sequence[Timeline],
    *,
    policy_for: Callable[[JobClass], PollPolicy],
    estimator_for: Callable[[History], RunTimeEstimator],
    history: History,
    rng: random.Random,
    learn: bool = True,
) -> list[Outcome]:
    """Follow every job with the watcher's schedule, in time order, one shared history.

    With ``learn`` each job that ends joins the history from the moment it is seen (as the
    store records it); without, every job sees only the history given.
    """
    estimator = estimator_for(history)
    queue: list[tuple[float, int]] = []
    polls = [0] * len(timelines)
    started_known = [False] * len(timelines)
    last_poll = [timeline.submitted for timeline in timelines]
    queued_gap = [0.0] * len(timelines)
    watching_from: list[float | None] = [None] * len(timelines)  # as the watcher remembers it
    outcomes: dict[int, Outcome] = {}
    traces: list[list] = [[] for _ in timelines]
    for index, timeline in enumerate(timelines):
        first = policy_for(timeline.job_class).first_delay
        heapq.heappush(queue, (timeline.submitted + first, index))
    while queue:
        now, index = heapq.heappop(queue)
        timeline = timelines[index]
        policy = policy_for(timeline.job_class)
        polls[index] += 1
        answered = now + rng.uniform(*ROUND_TRIP)
        if not started_known[index]:
            queued_gap[index] = max(queued_gap[index], now - last_poll[index])
        last_poll[index] = now
        if now >= timeline.ended:
            outcomes[index] = Outcome(
                timeline,
                polls[index],
                answered - timeline.ended,
                started_known[index],
                queued_gap[index],
                tuple(traces[index]),
            )
            if learn:
                history.add(answered, timeline)
            continue
        if now >= timeline.started:
            started_known[index] = True
        history.now = answered
        running = answered - timeline.started if started_known[index] else None
        expected = estimator.running_time(timeline.job_class)
        delay = next_poll_delay(
            policy,
            elapsed_seconds=answered - timeline.submitted,
            running_seconds=running,
            expected=expected,
            watching_from=watching_from[index],
            rng=rng,
        )
        if running is not None and expected.trusted:
            start = watch_from(policy, expected)
            previous = watching_from[index]
            watching_from[index] = start if previous is None else min(start, previous)
        traces[index].append((running, delay, expected))
        heapq.heappush(queue, (answered + delay, index))
    return [outcomes[index] for index in range(len(timelines))]


# -- timelines ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchClass:
    """A job class and how long it takes for real on average, queue included."""

    model: str
    resolution: str
    duration: int
    mean_seconds: float

    def job_class(self, mode: str = BILLED) -> JobClass:
        return JobClass(mode, self.model, self.resolution, self.duration)

    @property
    def label(self) -> str:
        return f"{self.model} {self.resolution} {self.duration}s"


def queue_mean_share() -> float:
    """The share of a job's time the simulator's queue takes for a plus 480P 5 s job."""
    mean_queue = QUEUE_MEDIAN_SECONDS * math.exp(0.6**2 / 2)
    return mean_queue / (mean_queue + RUN_SECONDS)


RunDraw = Callable[[random.Random, float], float]  # (rng, class median) -> running seconds


def uniform_jitter(share: float, factor: float = 1.0) -> RunDraw:
    return lambda rng, median: median * factor * (1 + rng.uniform(-share, share))


def heavy_tail(share: float = 0.06, tail_odds: float = 0.1, tail_factor: float = 2.0) -> RunDraw:
    def draw(rng: random.Random, median: float) -> float:
        seconds = median * (1 + rng.uniform(-share, share))
        return seconds * tail_factor if rng.random() < tail_odds else seconds

    return draw


def make_timelines(
    bench_class: BenchClass,
    *,
    count: int,
    run: RunDraw,
    rng: random.Random,
    spacing: float,
    origin: float = 0.0,
    mode: str = BILLED,
) -> list[Timeline]:
    """``count`` jobs of one class sent one after another, ``spacing`` x its mean time apart.

    The queue is the simulator's skewed wait, scaled like the class's time; the running time
    is drawn by ``run`` around the class's median running time.
    """
    scale = bench_class.mean_seconds / (QUEUE_MEDIAN_SECONDS * math.exp(0.18) + RUN_SECONDS)
    median_run = RUN_SECONDS * scale
    timelines = []
    moment = origin
    for _ in range(count):
        queued = queue_seconds(rng) * scale
        running = run(rng, median_run)
        start = moment + queued
        timelines.append(Timeline(bench_class.job_class(mode), moment, start, start + running))
        moment += rng.expovariate(1 / (spacing * bench_class.mean_seconds)) if spacing else 0.0
    return timelines


# -- figures --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One schedule over one scenario's jobs."""

    jobs: int
    requests_mean: float
    delay_median: float
    delay_p90: float
    delay_max: float
    saw_running: float  # share of jobs some answer showed running
    queued_gap_max: float

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> Figures:
        delays = sorted(outcome.delay for outcome in outcomes)
        return cls(
            jobs=len(outcomes),
            requests_mean=statistics.fmean(outcome.polls for outcome in outcomes),
            delay_median=statistics.median(delays),
            delay_p90=delays[min(round(0.9 * (len(delays) - 1)), len(delays) - 1)],
            delay_max=delays[-1],
            saw_running=statistics.fmean(outcome.saw_running for outcome in outcomes),
            queued_gap_max=max(outcome.queued_gap for outcome in outcomes),
        )


def catalog_estimator(
    catalog: Catalog, policy: PollPolicy, *, demo_speed: float = 1.0
) -> Callable[[History], RunTimeEstimator]:
    """A real estimator over a bench history, its reuse period on the simulated clock."""

    def make(history: History) -> RunTimeEstimator:
        return RunTimeEstimator(
            store=history,  # type: ignore[arg-type]  # the one query it makes
            catalog=catalog,
            policy=policy,
            demo_speed=demo_speed,
            clock=lambda: history.now,
        )

    return make


# -- the scenarios ---------------------------------------------------------------------------------

BENCH_CLASSES = (
    BenchClass("wan2.1-i2v-turbo", "480P", 3, 15),
    BenchClass("wan2.1-i2v-turbo", "480P", 4, 78),
    BenchClass("wan2.1-i2v-turbo", "480P", 5, 120),
    BenchClass("wan2.2-i2v-flash", "480P", 5, 180),
    BenchClass("wan2.2-i2v-flash", "720P", 5, 270),
    BenchClass("wan2.2-i2v-plus", "480P", 5, 480),
    BenchClass("wan2.2-i2v-plus", "1080P", 5, 600),
)
PAST_PER_CLASS = 10
WAVE_PER_CLASS = 12
SPACING = 0.5  # jobs of one class are sent this share of its mean time apart, on average

# name: (how the history's jobs ran, how the wave's jobs run)
SCENARIOS: dict[str, tuple[RunDraw, RunDraw]] = {
    "jitter ±6 %": (uniform_jitter(0.06), uniform_jitter(0.06)),
    "jitter ±20 %": (uniform_jitter(0.2), uniform_jitter(0.2)),
    "jitter ±40 %": (uniform_jitter(0.4), uniform_jitter(0.4)),
    "drift to 0.75x": (uniform_jitter(0.06), uniform_jitter(0.06, 0.75)),
    "drift to 1.25x": (uniform_jitter(0.06), uniform_jitter(0.06, 1.25)),
    "heavy tail": (heavy_tail(), heavy_tail()),
}


@dataclass(frozen=True)
class ScenarioFigures:
    name: str
    sdk: Figures
    cold: Figures
    warm: Figures


def run_scenario(
    name: str, draws: tuple[RunDraw, RunDraw], *, policy: PollPolicy, catalog: Catalog, seeds: int
) -> ScenarioFigures:
    """The SDK, the cold watcher and the warm watcher on the same timelines, over ``seeds`` runs."""
    past_draw, wave_draw = draws
    estimator = catalog_estimator(catalog, policy)
    sdk: list[Outcome] = []
    cold: list[Outcome] = []
    warm: list[Outcome] = []
    for seed in range(seeds):
        rng = random.Random(seed)
        past: list[Timeline] = []
        wave: list[Timeline] = []
        for bench_class in BENCH_CLASSES:
            past += make_timelines(
                bench_class, count=PAST_PER_CLASS, run=past_draw, rng=rng, spacing=SPACING,
                origin=-1e6,
            )  # fmt: skip
            wave += make_timelines(
                bench_class, count=WAVE_PER_CLASS, run=wave_draw, rng=rng, spacing=SPACING
            )
        sdk += [follow_sdk(timeline, rng) for timeline in wave]
        for timeline in wave:
            cold += follow_watcher(
                [timeline],
                policy_for=lambda _: policy,
                estimator_for=estimator,
                history=History(),
                rng=rng,
                learn=False,
            )
        history = History()
        for timeline in past:
            history.add(timeline.ended, timeline)
        warm += follow_watcher(
            wave, policy_for=lambda _: policy, estimator_for=estimator, history=history, rng=rng
        )
    return ScenarioFigures(name, Figures.of(sdk), Figures.of(cold), Figures.of(warm))


def foreign_gateway(*, policy: PollPolicy, catalog: Catalog, seeds: int) -> ScenarioFigures:
    """Cold jobs on a gateway the catalog's priors know nothing of: 2-10 s queued, 15-45 s run."""
    estimator = catalog_estimator(catalog, policy)
    sdk: list[Outcome] = []
    cold: list[Outcome] = []
    for seed in range(seeds):
        rng = random.Random(1000 + seed)
        for bench_class in BENCH_CLASSES:
            queued, running = rng.uniform(2, 10), rng.uniform(15, 45)
            timeline = Timeline(bench_class.job_class(), 0.0, queued, queued + running)
            sdk.append(follow_sdk(timeline, rng))
            cold += follow_watcher(
                [timeline],
                policy_for=lambda _: policy,
                estimator_for=estimator,
                history=History(),
                rng=rng,
                learn=False,
            )
    figures = Figures.of(cold)
    return ScenarioFigures("foreign gateway, cold", Figures.of(sdk), figures, figures)


def demo_fresh_runs(
    *, policy: PollPolicy, catalog: Catalog, seeds: int, demo_speed: float = 1.0
) -> ScenarioFigures:
    """Fresh demo jobs of Wan 2.2 Plus 1080P, each alone, timed as the demo gateway times them.

    The watcher uses the demo policy (the standard one scaled to the demo speed) and the demo
    gateway's timing model as its prior, as a Studio in demo mode does.
    """
    demo_policy = policy.scaled(demo_speed)
    estimator = catalog_estimator(catalog, demo_policy, demo_speed=demo_speed)
    rules = load_rules()
    sdk: list[Outcome] = []
    cold: list[Outcome] = []
    for seed in range(seeds):
        rng = random.Random(2000 + seed)
        for _ in range(10):
            queued = queue_seconds(rng) / demo_speed
            running = (
                run_seconds(
                    rng,
                    fast=rules.models["wan2.2-i2v-plus"].is_fast,
                    tier_pixels=rules.tier_pixels["1080P"],
                    smallest_tier_pixels=min(rules.tier_pixels.values()),
                    duration=5,
                )
                / demo_speed
            )
            job_class = JobClass(DEMO, "wan2.2-i2v-plus", "1080P", 5)
            timeline = Timeline(job_class, 0.0, queued, queued + running)
            sdk.append(follow_sdk(timeline, rng))
            cold += follow_watcher(
                [timeline],
                policy_for=lambda _: demo_policy,
                estimator_for=estimator,
                history=History(),
                rng=rng,
                learn=False,
            )
    figures = Figures.of(cold)
    return ScenarioFigures("demo Plus 1080P, fresh", Figures.of(sdk), figures, figures)


def verdict(figures: Figures, reference: Figures, ratio_target: float) -> str:
    ratio = figures.requests_mean / reference.requests_mean
    misses = []
    if figures.delay_median > TARGET_MEDIAN_DELAY:
        misses.append("median")
    if figures.delay_max > TARGET_WORST_DELAY:
        misses.append("worst")
    if ratio > ratio_target + 1e-9:
        misses.append("requests")
    return "met" if not misses else "NOT met: " + ", ".join(misses)


def print_scenarios(results: Sequence[ScenarioFigures], *, warm_too: Sequence[bool]) -> None:
    print(
        f"{'scenario':<24} {'SDK req':>7} | {'cold req':>8} {'x SDK':>5} {'median':>6} {'p90':>5} "
        f"{'max':>5} {'target':<22} | {'warm req':>8} {'x SDK':>5} {'median':>6} {'p90':>5} "
        f"{'max':>5} {'target':<22}"
    )
    for result, warm in zip(results, warm_too, strict=True):
        line = f"{result.name:<24} {result.sdk.requests_mean:>7.1f}"
        arms = ((result.cold, TARGET_COLD_RATIO), (result.warm, TARGET_WARM_RATIO))
        for figures, target in arms if warm else arms[:1]:
            ratio = figures.requests_mean / result.sdk.requests_mean
            line += (
                f" | {figures.requests_mean:>8.1f} {ratio:>5.2f} {figures.delay_median:>5.1f}s "
                f"{figures.delay_p90:>4.1f}s {figures.delay_max:>4.1f}s "
                f"{verdict(figures, result.sdk, target):<22}"
            )
        print(line)


def parse_policy(overrides: Sequence[str]) -> PollPolicy:
    """``PollPolicy()`` with ``name=value`` overrides, e.g. ``watch_gap=5``."""
    changes: dict[str, float | int] = {}
    kinds = {item.name: item.type for item in dataclasses.fields(PollPolicy)}
    for override in overrides:
        name, _, raw = override.partition("=")
        if name not in kinds or not raw:
            raise SystemExit(f"--policy {override!r}: use NAME=VALUE, NAME one of {list(kinds)}")
        changes[name] = int(raw) if kinds[name] in ("int", int) else float(raw)
    return dataclasses.replace(PollPolicy(), **changes)


def evaluate(policy: PollPolicy, *, seeds: int) -> None:
    catalog = default_catalog()
    started = time.monotonic()
    print(
        f"{len(BENCH_CLASSES)} classes of {min(c.mean_seconds for c in BENCH_CLASSES):.0f} s to "
        f"{max(c.mean_seconds for c in BENCH_CLASSES) / 60:.0f} min; per class and seed "
        f"{PAST_PER_CLASS} past jobs and {WAVE_PER_CLASS} sent one after another; {seeds} seeds; "
        f"delays in real seconds from the end to the answer that said so\n"
    )
    results = [
        run_scenario(name, draws, policy=policy, catalog=catalog, seeds=seeds)
        for name, draws in SCENARIOS.items()
    ]
    extra = [
        foreign_gateway(policy=policy, catalog=catalog, seeds=seeds),
        demo_fresh_runs(policy=policy, catalog=catalog, seeds=seeds),
    ]
    print_scenarios([*results, *extra], warm_too=[True] * len(results) + [False] * len(extra))
    demo = extra[-1]
    print(
        f"\ndemo, fresh: {demo.cold.saw_running:.0%} of the jobs were seen running (the card said "
        f"'Generating'); the longest wait between two polls while queued was "
        f"{demo.cold.queued_gap_max:.1f} s (SDK {demo.sdk.requests_mean:.1f} requests per job)"
    )
    print(f"evaluated in {time.monotonic() - started:.1f} s")


# -- the live check: simulator processes and the real watcher ---------------------------------


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
class LiveClass:
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
LIVE_CLASSES = (
    LiveClass("wan2.1-i2v-turbo", "480P", 4, 1.3),
    LiveClass("wan2.2-i2v-flash", "480P", 5, 4.5),
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

    job_class: LiveClass
    key: str
    url: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls, job_class: LiveClass, *, speed: float, run_jitter: float, folder: Path
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

    job_class: LiveClass
    polls: int
    delay: float | None  # None: the end was never seen
    duration: float | None


@dataclass
class Arm:
    """One schedule's jobs in one wave: which class each task is, and its requests."""

    name: str
    log: RequestLog = field(default_factory=RequestLog)
    tasks: dict[str, tuple[LiveClass, float]] = field(default_factory=dict)  # id -> class, submit

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
    return prepare_image(buffer.getvalue(), filename="frame.jpg", limits=default_catalog().limits)


def draft_for(job_class: LiveClass, image: PreparedImage) -> JobDraft:
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
        client = RecordingClient(log=arm.log, base_url=sim.url, api_key=sim.key)
        draft = draft_for(sim.job_class, image)
        payload = build_payload(draft, quote(draft, catalog), image_url=url)
        for _ in range(per_class):
            submitted = time.time()
            receipt = client.submit(payload.body, path=payload.path)
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
            sim.job_class: GatewayClient(base_url=sim.url, api_key=sim.key) for sim in self.sims
        }

    def watcher(self, arm: Arm, *, speed: float) -> Watcher:
        clients = {
            self.fingerprints[sim.job_class]: RecordingClient(
                log=arm.log, base_url=sim.url, api_key=sim.key
            )
            for sim in self.sims
        }
        estimator = RunTimeEstimator(
            store=self.store, catalog=self.catalog, policy=self.policy, demo_speed=1.0
        )
        return Watcher(
            store=self.store,
            home=self.home,
            catalog=self.catalog,
            client_for_key=lambda fingerprint: clients.get(fingerprint or ""),
            held_keys=lambda: list(clients),
            policy=self.policy,
            estimator=estimator,
            budget=RequestBudget(BUDGET_PER_SECOND * speed),
            workers=self.workers,
        )

    def submit(self, arm: Arm, job_class: LiveClass) -> None:
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

    def submit_batch(self, arm: Arm, job_class: LiveClass, size: int) -> None:
        """Send ``size`` clips of one class as one batch, as one click of Generate does."""
        submitted = time.time()
        seeds = Variations(VariationKind.SEEDS, count=size)
        batch = self.submitter.submit_batch(
            seeds.expand(draft_for(job_class, self.image), self.catalog),
            kind=seeds.kind,
            client=self.submit_clients[job_class],
            submission_id=str(uuid.uuid4()),
            session_id="bench",
            mode=BILLED,
            key_fingerprint=self.fingerprints[job_class],
        )
        for job in batch.jobs:
            if job.task_id is None:
                raise RuntimeError(f"a clip was not sent: {job.status} {job.explanation}")
            arm.tasks[job.task_id] = (job_class, submitted)

    def in_flight(self) -> int:
        # A count, not the rows: the bench must not compete with the watcher it measures.
        return self.store.count_jobs(JobFilter(statuses=IN_FLIGHT))


@contextlib.contextmanager
def watching(engine: Engine, arm: Arm, *, speed: float) -> Iterator[Watcher]:
    watcher = engine.watcher(arm, speed=speed)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


def submit_all(engine: Engine, arm: Arm, classes: Sequence[LiveClass], *, threads: int) -> None:
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
    engine: Engine, arm: Arm, classes: Sequence[LiveClass], *, speed: float, restart: bool
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


# -- the live check --------------------------------------------------------------------------------


def live_check(
    *,
    policy: PollPolicy,
    speed: float,
    per_class: int,
    batch_size: int,
    load_jobs: int,
    workers: int,
) -> None:
    """The real watcher and the SDK's schedule against simulator processes, in real time."""
    scaled = policy.scaled(speed)
    limit = policy.deadline / speed
    image = first_frame()
    started = time.monotonic()
    print(
        f"\nlive: time runs {speed:g}x faster; {len(LIVE_CLASSES)} classes x {per_class} jobs per "
        f"schedule on simulator processes; running times ±{RUN_JITTER:.0%}"
    )
    with tempfile.TemporaryDirectory(prefix="polling-bench-") as scratch:
        folder = Path(scratch)
        sims = [
            SimulatorProcess.start(
                job_class, speed=speed, run_jitter=RUN_JITTER, folder=folder / f"sim-{index}"
            )
            for index, job_class in enumerate(LIVE_CLASSES)
        ]
        store = JobStore.open(sqlite_url(folder / "studio.db"))
        try:
            engine = Engine(
                store=store,
                home=folder / "home",
                policy=scaled,
                sims=sims,
                image=image,
                workers=workers,
            )
            wave = [job_class for job_class in LIVE_CLASSES for _ in range(per_class)]
            cold = Arm("watcher (cold)")
            with watching(engine, cold, speed=speed):
                submit_all(engine, cold, wave, threads=4)
                sdk, sdk_threads = start_simple_arm(
                    "upstream SDK",
                    SDK_SLEEPS,
                    sims,
                    per_class=per_class,
                    image=image,
                    speed=speed,
                    limit=limit,
                )
                wait_until(lambda: engine.in_flight() == 0, limit=limit)
                for thread in sdk_threads:
                    thread.join(limit)
            warm = Arm("watcher (warm)")
            with watching(engine, warm, speed=speed):
                submit_all(engine, warm, wave, threads=4)
                wait_until(lambda: engine.in_flight() == 0, limit=limit)
            side_by_side = []
            if batch_size:
                quick = LIVE_CLASSES[0]
                singles = Arm(f"{batch_size} single jobs")
                with watching(engine, singles, speed=speed):
                    for _ in range(batch_size):
                        engine.submit(singles, quick)
                    wait_until(lambda: engine.in_flight() == 0, limit=limit)
                batched = Arm(f"a batch of {batch_size}")
                with watching(engine, batched, speed=speed):
                    engine.submit_batch(batched, quick, batch_size)
                    wait_until(lambda: engine.in_flight() == 0, limit=limit)
                side_by_side = [singles, batched]
            loads = []
            if load_jobs:
                many = [LIVE_CLASSES[-1 - i % len(LIVE_CLASSES)] for i in range(load_jobs)]
                for restart in (False, True):
                    name = f"{load_jobs} jobs" + (", restart" if restart else "")
                    loads.append(run_load(engine, Arm(name), many, speed=speed, restart=restart))
        finally:
            store.close()
            for sim in sims:
                sim.stop()

    arms = (warm, cold, sdk, *side_by_side, *(load.arm for load in loads))
    summaries = [summarise(arm.name, arm.results(speed), arm.log, speed) for arm in arms]
    print_summaries(summaries, reference=summaries[2])
    if side_by_side:
        singles_summary, batch_summary = summaries[3:5]
        extra = batch_summary.requests_mean - singles_summary.requests_mean
        print(
            f"requests per job: {singles_summary.requests_mean:.1f} sent one by one, "
            f"{batch_summary.requests_mean:.1f} sent as one batch ({extra:+.1f} per job)"
        )
    for load in loads:
        requests = [poll.sent for poll in load.arm.log.polls] + load.arm.log.downloads
        busiest = max_in_window(requests, 1.0 / speed)
        print(
            f"watcher, {load.arm.name}: peak {load.peak} in flight; the busiest second held "
            f"{busiest} requests (budget {BUDGET_PER_SECOND:g}: "
            f"{'met' if busiest <= BUDGET_PER_SECOND else 'NOT met'})"
        )
    print(f"live check took {time.monotonic() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs of each scenario, pooled")
    parser.add_argument(
        "--policy", action="append", default=[], metavar="NAME=VALUE", help="PollPolicy override"
    )
    parser.add_argument("--live", action="store_true", help="add the real-time check")
    parser.add_argument("--speed", type=float, default=10.0, help="live: how much faster time runs")
    parser.add_argument("--jobs-per-class", type=int, default=6, help="live: jobs per class")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="live: jobs one by one, then as a batch (0: no)"
    )
    parser.add_argument("--load-jobs", type=int, default=0, help="live: jobs at once, then")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="live: the watcher's workers"
    )
    options = parser.parse_args()
    policy = parse_policy(options.policy)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average " + " ".join(f"{x:.2f}" for x in load))
    if options.policy:
        print(f"policy overrides: {', '.join(options.policy)}")
    evaluate(policy, seeds=options.seeds)
    if options.live:
        live_check(
            policy=policy,
            speed=options.speed,
            per_class=options.jobs_per_class,
            batch_size=options.batch_size,
            load_jobs=options.load_jobs,
            workers=options.workers,
        )


if __name__ == "__main__":
    main()
