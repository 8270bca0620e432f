"""The simulator's tasks: creating them, their timeline, their rendering, and what a poll sees.

A task is a JSON file in ``<state_dir>/tasks`` and, once rendered, an MP4 in ``<state_dir>/videos``.
Its status is derived from wall-clock times written at submit, so a simulator restarted on the
same folder answers for earlier tasks and finishes the ones that were in flight.

Timing follows how the real service behaves. A task waits in a queue, then the model runs. The
model's running time for one (model, resolution, duration) is nearly constant: a fixed number of
diffusion steps on the same GPUs. So each class gets a base running time with a small jitter
(``RUN_JITTER``, ±6 %): ``RUN_SECONDS`` for a plus model at 480P and 5 s, half that for flash and
turbo models, growing with the cube root of the tier's pixel count (×1.44 at 720P, ×1.89 at 1080P)
and in proportion to the duration. The total varies mostly through the queue: a skewed, log-normal
wait with a median of ``QUEUE_MEDIAN_SECONDS`` (mean ≈ 3 s, 90th percentile ≈ 5.4 s, kept
between ``QUEUE_MIN_SECONDS`` and ``QUEUE_MAX_SECONDS``). A plus model's 1080P 5 s clip thus runs
for about 21 s after about 3 s queued; Flash at 720P about 8 + 3 s; every time is divided by
``speed``. Both draws come from a generator seeded with the task id, so a task's timeline is
fixed when it is created.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

from simulator._faults import FAIL_TASK, NEVER_FINISH, REPORT_USAGE, FaultRule
from simulator._images import ImageRejected, decode_image, fetch_image_bytes
from simulator._render import RenderCancelled, camera_move, render_video
from simulator._rules import FIRST_AND_LAST_FRAME, GatewayRules, output_size

log = logging.getLogger("simulator")

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
UNKNOWN = "UNKNOWN"

QUEUE_MEDIAN_SECONDS = 2.5
QUEUE_SIGMA = 0.6  # of the log-normal queue wait: a long tail, as a busy service has
QUEUE_MIN_SECONDS = 0.5
QUEUE_MAX_SECONDS = 12.0
RUN_SECONDS = 11.0  # a plus model, 480P, 5 s
FAST_RUN_FACTOR = 0.5  # flash and turbo models run about twice as fast
RUN_JITTER = 0.06  # ± share of a class's running time
TASK_TTL_SECONDS = 24 * 3600
# Renders at once: enough to keep two cores busy with ffmpeg without starving the HTTP server.
RENDER_WORKERS = 1
INTAKE_WORKERS = 4
# A render that fails is tried once more, unless a stop is under way: a stop that kills the
# encoder first is usually heard within this many seconds.
RENDER_ATTEMPTS = 2
STOP_GRACE_SECONDS = 2.0
SEED_MAX = 2147483647

_UPSTREAM_TZ = timezone(timedelta(hours=8))
_LIGHTING = (
    "soft golden-hour light",
    "gentle diffused daylight",
    "warm cinematic lighting",
    "cool morning light with soft shadows",
    "dramatic side lighting",
)
_CAMERA = {
    "push_in": "the camera slowly pushes in",
    "pull_out": "the camera slowly pulls back to reveal the scene",
    "pan": "the camera pans smoothly across the scene",
}


def upstream_time(epoch: float) -> str:
    """Format a time as upstream does: UTC+8, ``YYYY-MM-DD HH:MM:SS.mmm``."""
    moment = datetime.fromtimestamp(epoch, UTC).astimezone(_UPSTREAM_TZ)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def queue_seconds(rng: random.Random) -> float:
    """How long a task waits before its model starts, at speed 1 (log-normal, capped)."""
    wait = QUEUE_MEDIAN_SECONDS * math.exp(rng.gauss(0.0, QUEUE_SIGMA))
    return min(max(wait, QUEUE_MIN_SECONDS), QUEUE_MAX_SECONDS)


def run_seconds(
    rng: random.Random,
    *,
    fast: bool,
    tier_pixels: int,
    smallest_tier_pixels: int,
    duration: int,
    jitter: float = RUN_JITTER,
) -> float:
    """How long the model runs for a task of this class, at speed 1 (see the module docstring)."""
    base = RUN_SECONDS * (FAST_RUN_FACTOR if fast else 1.0)
    size = (tier_pixels / smallest_tier_pixels) ** (1 / 3)
    return base * size * (duration / 5) * (1 + rng.uniform(-jitter, jitter))


def extend_prompt(prompt: str, seed: int) -> str:
    """The "improved" prompt a task reports when prompt_extend is on: the original plus detail."""
    rng = random.Random(seed)
    move = camera_move(seed)
    if move.zoom_end < move.zoom_start:
        camera = _CAMERA["push_in"]
    elif move.zoom_end > move.zoom_start + 0.05:
        camera = _CAMERA["pull_out"]
    else:
        camera = _CAMERA["pan"]
    subject = prompt.strip().rstrip(".") or "The scene in the image comes gently to life"
    return (
        f"{subject}. {camera[0].upper()}{camera[1:]}, {rng.choice(_LIGHTING)}, "
        "natural motion, rich detail, high quality, cinematic composition."
    )


@dataclass
class Task:
    """One task as stored on disk."""

    task_id: str
    model: str
    kind: str
    submitted: dict
    resolution: str
    duration: int
    prompt_extend: bool
    watermark: bool
    seed: int
    submit_time: float
    queue_seconds: float
    run_seconds: float
    fault: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    failure_time: float | None = None
    width: int | None = None
    height: int | None = None
    rendered_time: float | None = None
    actual_prompt: str | None = None
    # Seconds reported in usage when a report_usage fault says so; the requested duration otherwise.
    usage_seconds: float | None = None

    @property
    def scheduled_time(self) -> float:
        return self.submit_time + self.queue_seconds

    @property
    def due_time(self) -> float:
        return self.scheduled_time + self.run_seconds

    @property
    def needs_render(self) -> bool:
        return self.fault is None and self.failure_code is None and self.rendered_time is None

    def status(self, now: float) -> tuple[str, float | None]:
        """The status at ``now`` and, when it is final, the end time."""
        if now < self.scheduled_time:
            return PENDING, None
        if self.fault == NEVER_FINISH:
            return RUNNING, None
        if self.failure_code is not None:
            end = max(self.scheduled_time, self.failure_time or self.scheduled_time)
            return (FAILED, end) if now >= end else (RUNNING, None)
        if self.fault is not None:  # a fail_task fault fails the task when it was due to finish
            return (FAILED, self.due_time) if now >= self.due_time else (RUNNING, None)
        if now < self.due_time or self.rendered_time is None:
            # A slow render keeps the task running: it never succeeds before its file is complete.
            return RUNNING, None
        return SUCCEEDED, max(self.due_time, self.rendered_time)


@dataclass
class TaskBook:
    """Every task of one simulator, their files in ``state_dir``, and the workers that render."""

    state_dir: Path
    rules: GatewayRules
    speed: float
    fps: int
    _tasks: dict[str, Task] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        for folder in (self.tasks_dir, self.videos_dir, self.images_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._intake = ThreadPoolExecutor(INTAKE_WORKERS, thread_name_prefix="sim-intake")
        self._renders = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="sim-render")
        self._load()

    @property
    def tasks_dir(self) -> Path:
        return self.state_dir / "tasks"

    @property
    def videos_dir(self) -> Path:
        return self.state_dir / "videos"

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    def video_path(self, task_id: str) -> Path:
        return self.videos_dir / f"{task_id}.mp4"

    def _load(self) -> None:
        for folder in (self.tasks_dir, self.videos_dir, self.images_dir):
            _remove_partial_files(folder)
        for path in sorted(self.tasks_dir.glob("*.json")):
            try:
                task = Task(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as error:
                log.warning("skipping unreadable task file %s: %s", path.name, error)
                continue
            video = self.video_path(task.task_id)
            if task.rendered_time is None and video.exists():
                # Stopped between the file's rename and the record's update: the file is whole.
                task.rendered_time = video.stat().st_mtime
                self._save(task)
            elif task.rendered_time is not None and not video.exists():
                task.rendered_time = None  # the file went missing: render it again, same seed
            self._tasks[task.task_id] = task
            if task.needs_render:
                self._intake.submit(self._prepare, task)

    def _save(self, task: Task) -> None:
        path = self.tasks_dir / f"{task.task_id}.json"
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(asdict(task)), encoding="utf-8")
        os.replace(partial, path)

    def create(
        self,
        *,
        model: str,
        kind: str,
        submitted: dict,
        resolution: str,
        duration: int,
        prompt_extend: bool,
        watermark: bool,
        seed: int | None,
        fast: bool,
        task_faults: list[FaultRule],
    ) -> Task:
        """Create, store and start one task from a validated submit."""
        task_id = str(uuid.uuid4())
        timing = random.Random(task_id)
        queued = queue_seconds(timing)
        running = run_seconds(
            timing,
            fast=fast,
            tier_pixels=self.rules.tier_pixels[resolution],
            smallest_tier_pixels=min(self.rules.tier_pixels.values()),
            duration=duration,
            jitter=RUN_JITTER,  # read per submit, so a process can widen it for experiments
        )
        fault = None
        usage_seconds = None
        for rule in task_faults:
            if rule.kind == REPORT_USAGE:
                usage_seconds = rule.video_duration
            else:
                fault = NEVER_FINISH if rule.kind == NEVER_FINISH else f"{FAIL_TASK}:{rule.code}"
        used_seed = seed if seed is not None else secrets.randbelow(SEED_MAX + 1)
        prompt = str(submitted.get("input", {}).get("prompt") or "")
        task = Task(
            task_id=task_id,
            model=model,
            kind=kind,
            submitted=submitted,
            resolution=resolution,
            duration=duration,
            prompt_extend=prompt_extend,
            watermark=watermark,
            seed=used_seed,
            submit_time=time.time(),
            queue_seconds=queued / self.speed,
            run_seconds=running / self.speed,
            fault=fault,
            actual_prompt=extend_prompt(prompt, used_seed) if prompt_extend else None,
            usage_seconds=usage_seconds,
        )
        with self._lock:
            self._tasks[task_id] = task
            self._save(task)
        if task.needs_render:
            self._intake.submit(self._prepare, task)
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def all(self) -> list[Task]:
        with self._lock:
            return sorted(self._tasks.values(), key=lambda task: task.submit_time)

    def _fail(self, task: Task, code: str, message: str) -> None:
        with self._lock:
            task.failure_code, task.failure_message = code, message
            task.failure_time = time.time()
            self._save(task)

    def _image_bytes(self, task: Task, role: str, url: str) -> bytes:
        # Kept after the first fetch, so a restart re-renders without the link still working.
        cached = self.images_dir / f"{task.task_id}.{role}"
        if cached.exists():
            return cached.read_bytes()
        data = fetch_image_bytes(url, max_bytes=self.rules.image_max_bytes)
        partial = cached.with_name(f".{cached.name}.partial")
        partial.write_bytes(data)
        os.replace(partial, cached)
        return data

    def _prepare(self, task: Task) -> None:
        """Fetch and check the task's images, then queue its render (runs on an intake thread)."""
        if self._stopping.is_set():
            return
        task_input = task.submitted.get("input", {})
        roles = (
            [("first", "first_frame_url"), ("last", "last_frame_url")]
            if task.kind == FIRST_AND_LAST_FRAME
            else [("first", "img_url")]
        )
        try:
            images = [
                decode_image(self._image_bytes(task, role, task_input[name]), rules=self.rules)
                for role, name in roles
            ]
        except ImageRejected as problem:
            self._fail(task, "InvalidParameter", str(problem))
            return
        except Exception:
            if self._stop_under_way():
                return  # cut short by a stop: the next start reads the image again
            log.exception("task %s: reading its image failed", task.task_id)
            self._fail(task, "InternalError", "The image could not be processed.")
            return
        size = output_size(*images[0].size, self.rules.tier_pixels[task.resolution])
        with self._lock:
            task.width, task.height = size
            self._save(task)
        self._renders.submit(self._render, task, images)

    def _stop_under_way(self) -> bool:
        """Whether this simulator, or the process it runs in, is stopping."""
        return self._stopping.is_set() or _interpreter_exiting()

    def _render(self, task: Task, images: list[Image.Image]) -> None:
        started = time.monotonic()
        for attempt in range(1, RENDER_ATTEMPTS + 1):
            if self._stopping.is_set():
                return
            try:
                render_video(
                    first=images[0],
                    last=images[1] if len(images) > 1 else None,
                    size=(task.width or 0, task.height or 0),
                    duration=task.duration,
                    fps=self.fps,
                    seed=task.seed,
                    watermark=task.watermark,
                    out_path=self.video_path(task.task_id),
                    cancel=self._stopping,
                )
            except RenderCancelled:
                return
            except Exception:
                # A stop can reach the encoder first (a signal to every process of a service)
                # or shut the thread pools down under the render. Such a render is left
                # unrecorded, so the next start renders it again; only a render that fails
                # while the simulator keeps running is the task's failure.
                if self._stop_under_way() or self._stopping.wait(STOP_GRACE_SECONDS):
                    log.info(
                        "task %s: render cut short by a stop; next start redoes it", task.task_id
                    )
                    return
                if attempt < RENDER_ATTEMPTS:
                    log.warning("task %s: rendering failed; trying once more", task.task_id)
                    continue
                log.exception("task %s: rendering failed", task.task_id)
                self._fail(task, "InternalError", "The video could not be generated.")
                return
            break
        with self._lock:
            task.rendered_time = time.time()
            self._save(task)
        log.info(
            "task %s rendered %dx%d in %.1f s",
            task.task_id,
            task.width,
            task.height,
            time.monotonic() - started,
        )

    def close(self) -> None:
        """Stop rendering (an unfinished render leaves no file) and wait for the workers."""
        self._stopping.set()
        self._intake.shutdown(wait=True, cancel_futures=True)
        self._renders.shutdown(wait=True, cancel_futures=True)

    def describe(self, task: Task, now: float) -> dict:
        """What ``RunningSimulator.tasks()`` reports for one task (never a key: none is kept)."""
        status, _ = task.status(now)
        return {
            "task_id": task.task_id,
            "model": task.model,
            "status": status,
            "submitted": task.submitted,
            "resolution": task.resolution,
            "duration": task.duration,
            "seed": task.seed,
            "width": task.width,
            "height": task.height,
            "fault": task.fault,
        }


def poll_output(task: Task, *, now: float, video_url: str | None) -> tuple[dict, dict | None]:
    """The ``output`` and ``usage`` a poll answers for ``task`` at ``now``.

    ``video_url`` is the signed link to use if the task has succeeded.
    """
    status, end = task.status(now)
    output: dict = {
        "task_id": task.task_id,
        "task_status": status,
        "submit_time": upstream_time(task.submit_time),
    }
    if status == PENDING:
        return output, None
    output["scheduled_time"] = upstream_time(task.scheduled_time)
    if end is not None:
        output["end_time"] = upstream_time(end)
    if status == FAILED:
        if task.failure_code is not None:
            output["code"], output["message"] = task.failure_code, task.failure_message
        else:
            code = (task.fault or "").partition(":")[2]
            output["code"], output["message"] = code, _FAULT_MESSAGES.get(code, code)
        return output, None
    if status != SUCCEEDED:
        return output, None
    output["video_url"] = video_url
    output["orig_prompt"] = str(task.submitted.get("input", {}).get("prompt") or "")
    if task.actual_prompt is not None:
        output["actual_prompt"] = task.actual_prompt
    reported = task.duration if task.usage_seconds is None else task.usage_seconds
    usage: dict = {"video_duration": reported, "video_count": 1}
    if task.model.startswith("wan2.2"):
        usage["SR"] = int(task.resolution.rstrip("Pp"))
    else:
        usage["video_ratio"] = "standard"
    return output, usage


_FAULT_MESSAGES = {
    "DataInspectionFailed": "Output data may contain inappropriate content.",
    "InternalError": "An internal error has occurred, please try again later.",
}


def _interpreter_exiting() -> bool:
    """Whether Python is shutting down: thread pools then refuse new work, renders included.

    A host such as a Streamlit app may exit without stopping the simulator; its render threads
    then fail on their frame pools while the main thread still counts as alive.
    """
    probe = ThreadPoolExecutor(1, thread_name_prefix="sim-probe")
    try:
        probe.submit(int).result()
    except RuntimeError:
        return True
    finally:
        probe.shutdown(wait=False)
    return False


def _remove_partial_files(folder: Path) -> None:
    """Delete leftovers of writes cut short by a crash (files named ``.<name>.partial...``)."""
    for partial in folder.glob(".*.partial*"):
        with contextlib.suppress(OSError):
            partial.unlink()
