"""How fast the app answers with 10,000 jobs in its store, and how much memory it holds.

A temporary data folder is seeded with 10,000 finished jobs (a few real images, one real video
shared by this browser session's five cards), then:

- the server-side time of one rerun of Generate, of History and of Compare with four clips, from
  AppTest (median of several runs after the first), and of Generate with a batch of eight clips in
  flight;
- in Chromium, on a ``streamlit run app.py`` that has just turned healthy, the time from the
  navigation start to the Generate form being usable (the model list enabled, the drop zone and
  the Generate button shown, as the page itself noted them), beside a one-line Streamlit page's
  button (the floor), each on a freshly started server: for the first visitor (cold: the server
  imports and opens everything) and for a new tab after that (warm); every tab starts with an
  empty browser cache, and the servers keep their compiled bytecode as a deployed app does (not
  with ``--compile-each-start``). The floor and the app (and, with ``--baseline``, another
  checkout's app) take turns in each round, so their ratios are taken side by side under the same
  load. Beside the total, the moments the price, the drop zone and an enabled model list first
  showed;
- the same first screen drawn by Streamlit alone (``bench/widgets_only.py``: the same widgets in
  the same layout, without the app), timed in the same rounds: what those widget kinds cost the
  browser by themselves, and what the app adds to that;
- the first History visit: on the first visitor's tab, a few seconds after its form was usable
  (``--history-pause``), the click on History until the table shows;
- the app server's resident memory after it has served Generate and History.

Run: ``python bench/ui.py [--jobs N] [--reruns N] [--loads N] [--baseline CHECKOUT]
[--compile-each-start]``. Targets: Generate rerun under 100 ms, History under 400 ms, Compare with
four clips under 200 ms, first usable form within 1.5x the floor, under 400 MB resident. The
machine's load average is printed with the figures: on a shared machine the browser times move
with it, the ratios much less.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st
from playwright.sync_api import Browser, Page, expect, sync_playwright
from streamlit.testing.v1 import AppTest

from simulator._render import render_video
from studio.catalog import default_catalog
from studio.images import ImageLibrary, prepare_image
from studio.migrations import jobs
from studio.pricing import estimate_cost
from studio.records import BILLED, DEMO, JobFilter, JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.browser import (
    APP,
    CHROMIUM_ARGS,
    StreamlitServer,
    app_environment,
    app_workdir,
    find_chromium,
)

SESSION = str(uuid.uuid4())  # the browser session whose job cards Generate shows
SESSION_CARDS = 5
# Another browser session, whose Generate page shows a batch of this many clips in flight.
BATCH_SESSION = str(uuid.uuid4())
BATCH_CLIPS = 8
FLOOR_PAGE = 'import streamlit as st; st.button("Go")\n'
# Generate's first screen drawn by Streamlit alone, without the app.
WIDGETS_ONLY = Path(__file__).resolve().parent / "widgets_only.py"
PROMPTS = (
    "A slow push-in as the wind moves through her hair, golden light",
    "Waves rolling onto the shore at dusk, gentle camera pan",
    "Steam rising from a cup of coffee, shallow depth of field",
    "City lights flicker as the camera drifts over the rooftops",
    "A cat turns its head towards the window and blinks",
)
# Final statuses only, weighted roughly like real use, so the watcher has nothing to poll.
STATUS_WEIGHTS = {
    JobStatus.SUCCEEDED: 80,
    JobStatus.FAILED: 8,
    JobStatus.REJECTED: 5,
    JobStatus.CANCELED: 2,
    JobStatus.TIMED_OUT: 2,
    JobStatus.EXPIRED: 2,
    JobStatus.LOST: 1,
}
TARGET_GENERATE_MS = 100.0
TARGET_HISTORY_MS = 400.0
TARGET_COMPARE_MS = 200.0
COMPARED_CLIPS = 4
TARGET_LOAD_RATIO = 1.5
TARGET_RSS_MB = 400.0
# Records when each part of the first screen first showed, in ms from the navigation start.
MILESTONES_SCRIPT = """
window.__milestones = {};
const model = () => document.querySelector('.st-key-gen-model [role="combobox"]');
const shownButton = (label) => [...document.querySelectorAll('button')].some(
  (button) => button.innerText.includes(label) && button.getClientRects().length > 0);
const checks = {
  button: () => shownButton('Generate video'),
  floor_button: () => [...document.querySelectorAll('button')].some(
    (button) => button.innerText.trim() === 'Go' && !button.disabled),
  price: () => document.querySelector('.st-key-gen-estimate'),
  drop_zone: () => document.querySelector('[data-testid="stFileUploaderDropzoneInput"]'),
  model_list: () => {
    const box = model();
    return box && !box.disabled && box.getAttribute('aria-disabled') !== 'true';
  },
};
const look = () => {
  for (const [name, shown] of Object.entries(checks)) {
    if (!(name in window.__milestones) && shown()) {
      window.__milestones[name] = performance.now();
    }
  }
};
new MutationObserver(look).observe(document, {subtree: true, childList: true, attributes: true});
"""
MILESTONES = ("price", "drop_zone", "model_list")
# What "usable" means, as moments the page itself noted: Playwright's own checks poll at growing
# intervals (up to a second apart), too coarse for a ratio of two three-second loads.
USABLE_FORM = ("model_list", "drop_zone", "button")
USABLE_FLOOR = ("floor_button",)


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    target: str
    measured: str
    ok: bool


def scene(seed: int, size: tuple[int, int] = (1280, 720)) -> Image.Image:
    """A simple landscape whose colours and shapes vary with the seed."""
    pick = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size, (pick.randrange(80, 160), 170, 230))
    draw = ImageDraw.Draw(image)
    horizon = height * pick.uniform(0.45, 0.7)
    draw.polygon(
        [
            (0, height),
            (0, horizon),
            (width * pick.random(), horizon * 0.8),
            (width, horizon),
            (width, height),
        ],
        fill=(60, pick.randrange(100, 180), 70),
    )
    x, y = width * pick.uniform(0.1, 0.8), height * pick.uniform(0.05, 0.3)
    draw.ellipse((x, y, x + width * 0.12, y + width * 0.12), fill=(255, 210, 60))
    return image


def seed_store(home: Path, *, count: int) -> None:
    """Write ``count`` finished jobs, five real images and one real video into a data folder."""
    catalog = default_catalog()
    library = ImageLibrary(home)
    images = []
    for index in range(5):
        prepared = prepare_image(
            _png(scene(index)), filename=f"scene-{index}.png", limits=default_catalog().limits
        )
        images.append(library.save(prepared.data, format=prepared.format))
    video = home / "videos" / "bench-session.mp4"
    video.parent.mkdir(parents=True, exist_ok=True)
    render_video(
        first=scene(0),
        size=(832, 480),
        duration=3,
        fps=30,
        seed=1,
        watermark=False,
        out_path=video,
    )
    pick = random.Random(20251126)
    combos = [
        (spec, resolution, duration)
        for spec in catalog.first_frame_models()
        for resolution in spec.resolutions
        for duration in spec.durations
    ]
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    now = datetime.now(UTC)
    sessions = [str(uuid.uuid4()) for _ in range(count // 20 + 1)]
    rows = []
    for index in range(count):
        spec, resolution, duration = pick.choice(combos)
        status = pick.choices(statuses, weights)[0]
        mode = BILLED if pick.random() < 0.3 else DEMO
        # The newest jobs belong to this browser session and play one real video.
        mine = index >= count - SESSION_CARDS
        if mine:
            status, mode = JobStatus.SUCCEEDED, DEMO
        created = now - timedelta(seconds=(count - index) * 900 + pick.randrange(900))
        finished = created + timedelta(seconds=pick.randrange(60, 600))
        estimate = estimate_cost(spec, resolution, duration)
        succeeded = status is JobStatus.SUCCEEDED
        rows.append(
            {
                "submission_id": str(uuid.UUID(int=pick.getrandbits(128))),
                "mode": mode,
                "session_id": SESSION if mine else pick.choice(sessions),
                "model": spec.id,
                "resolution": resolution,
                "duration": duration,
                "prompt": f"{pick.choice(PROMPTS)} (take {index})",
                "negative_prompt": "blurry, text" if index % 3 == 0 else "",
                "prompt_extend": index % 2 == 0,
                "watermark": index % 5 == 0,
                "seed": pick.randrange(2**31),
                "image_sha256": images[index % len(images)],
                "image_source": f"scene-{index % len(images)}.png",
                "last_frame_sha256": None,
                "status": status,
                "created_at": created,
                "estimate_usd": estimate,
                "output_width": 832,
                "output_height": 480,
                "task_id": f"bench-task-{index}",
                "submitted_at": created,
                "queued_at": created,
                "started_at": created + timedelta(seconds=5),
                "finished_at": finished,
                "error_code": None if succeeded else "InternalError",
                "error_message": None if succeeded else "The model hit an internal error.",
                "video_path": (
                    str(video.relative_to(home))
                    if mine
                    else f"videos/job-{index}.mp4"
                    if succeeded
                    else None
                ),
                "billed_seconds": duration if succeeded and mode == BILLED else None,
                "cost_usd": estimate if succeeded and mode == BILLED else None,
                "key_fingerprint": "0" * 32 if mode == BILLED else None,
                "poll_count": pick.randrange(3, 15),
            }
        )
    with JobStore.open(sqlite_url(home / "studio.db")) as store, store.engine.begin() as conn:
        conn.execute(jobs.insert(), rows)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def median_rerun_ms(at: AppTest, *, reruns: int) -> float:
    """Median wall time of ``at.run()`` after the app has already run once."""
    times = []
    for _ in range(reruns):
        started = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - started) * 1000)
        if at.exception:
            raise RuntimeError(f"the app raised: {at.exception}")
    return statistics.median(times)


def _has_key(at: AppTest, key: str) -> bool:
    try:
        at.main.get_by_key(key)
    except KeyError:
        return False
    return True


def _session_job_ids(home: Path) -> list[int]:
    store = JobStore.open(sqlite_url(home / "studio.db"))
    try:
        return [job.id for job in store.list_jobs(JobFilter(session_id=SESSION))]
    finally:
        store.close()


def server_side_reruns(home: Path, *, reruns: int) -> tuple[float, float]:
    """Median rerun of Generate (with this session's cards) and of History, in milliseconds."""
    # The same demo-mode environment the browser's server gets, for the app run in this process.
    environment = app_environment(home=home)
    # AppTest and the cache clearing below run outside a script run, which Streamlit warns about.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").setLevel(
        logging.ERROR
    )
    os.environ.clear()
    os.environ.update(environment)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["session"] = SESSION
    at.run()
    # The newest job plays in the card in focus; the session's other clips are gallery tiles.
    players = list(at.get("video"))
    tiles = [job_id for job_id in _session_job_ids(home) if _has_key(at, f"job-tile-{job_id}")]
    if len(players) != 1 or len(tiles) != SESSION_CARDS - 1:
        raise RuntimeError(
            f"expected 1 player and {SESSION_CARDS - 1} tiles on Generate, "
            f"found {len(players)} and {len(tiles)}"
        )
    generate_ms = median_rerun_ms(at, reruns=reruns)
    at.switch_page("pages/history.py").run()
    history_ms = median_rerun_ms(at, reruns=reruns)
    st.cache_resource.clear()  # stops the Studio's watcher and demo gateway
    return generate_ms, history_ms


def compare_rerun_ms(home: Path, *, reruns: int) -> float:
    """Median rerun of Compare with four of this session's clips, each its own real file.

    Each clip gets a copy of the session's video with a distinct padding box at its end, so that
    Streamlit's media manager sees four different files, as it would with four real clips.
    """
    with JobStore.open(sqlite_url(home / "studio.db")) as store:
        clips = store.list_jobs(JobFilter(session_id=SESSION))[:COMPARED_CLIPS]
        video = (home / clips[0].video_path).read_bytes()
        for index, job in enumerate(clips):
            copy = home / "videos" / f"bench-compare-{index}.mp4"
            padding = bytes(64 * 1024 * (index + 1))
            copy.write_bytes(video + (8 + len(padding)).to_bytes(4, "big") + b"free" + padding)
            store.update(job.id, video_path=str(copy.relative_to(home)))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["session"] = SESSION
    at.query_params["compare"] = ",".join(str(job.id) for job in clips)
    at.run()
    at.switch_page("pages/compare.py").run()
    if len(at.get("video")) != COMPARED_CLIPS:
        raise RuntimeError(f"expected {COMPARED_CLIPS} players on Compare: {at.exception}")
    compare_ms = median_rerun_ms(at, reruns=reruns)
    st.cache_resource.clear()
    return compare_ms


def seed_batch_in_flight(home: Path) -> list[int]:
    """A batch of ``BATCH_CLIPS`` clips, generating, in ``BATCH_SESSION``; returns their ids.

    Billed with a key this app does not hold, so no watcher moves them on while they are timed.
    """
    with JobStore.open(sqlite_url(home / "studio.db")) as store:
        (like,) = store.list_jobs(JobFilter(session_id=SESSION), limit=1)
        clip = {
            "mode": BILLED,
            "session_id": BATCH_SESSION,
            "model": like.model,
            "resolution": like.resolution,
            "duration": like.duration,
            "prompt": like.prompt,
            "negative_prompt": "",
            "prompt_extend": False,
            "watermark": False,
            "seed": None,
            "image_sha256": like.image_sha256,
            "image_source": like.image_source,
            "last_frame_sha256": None,
            "estimate_usd": like.estimate_usd,
            "output_width": like.output_width,
            "output_height": like.output_height,
            "key_fingerprint": "0" * 32,
            "request_json": None,
        }
        batch, _ = store.create_batch(
            submission_id=str(uuid.uuid4()),
            session_id=BATCH_SESSION,
            kind="seeds",
            clips=[{**clip, "seed": seed} for seed in range(BATCH_CLIPS)],
        )
        started = datetime.now(UTC)
        for job in batch.jobs:
            store.update(
                job.id,
                status=JobStatus.RUNNING,
                task_id=f"bench-batch-{job.id}",
                submitted_at=started,
                queued_at=started,
                started_at=started,
            )
        return [job.id for job in batch.jobs]


def batch_rerun_ms(home: Path, clip_ids: list[int], *, reruns: int) -> float:
    """Median rerun of Generate with a batch of clips in flight, in milliseconds.

    Run after ``server_side_reruns``, whose environment it keeps.
    """
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params["session"] = BATCH_SESSION
    at.run()
    cards = [job_id for job_id in clip_ids if _has_key(at, f"job-card-{job_id}")]
    if len(cards) != BATCH_CLIPS:
        raise RuntimeError(f"expected {BATCH_CLIPS} clip cards on Generate, found {len(cards)}")
    generate_ms = median_rerun_ms(at, reruns=reruns)
    st.cache_resource.clear()
    return generate_ms


@dataclass(frozen=True)
class Visit:
    """One tab's load: seconds until usable, and when each milestone showed (seconds)."""

    seconds: float
    milestones: dict[str, float]


@dataclass
class Loads:
    """Every round's loads of one script on freshly started servers."""

    cold: list[Visit]  # the first visitor after the server started
    warm: list[Visit]  # a new tab once the server has served one
    history: list[float]  # the first visit of History (the app only)
    memory: list[tuple[float, float]]  # resident and peak MB after Generate and History

    @classmethod
    def empty(cls) -> Loads:
        return cls(cold=[], warm=[], history=[], memory=[])


def open_until_usable(
    browser: Browser, url: str, usable: Callable[[Page], None]
) -> tuple[Visit, Page]:
    """Open ``url`` in a fresh browser context (empty cache); seconds until ``usable`` holds.

    Waits for ``usable``, then takes the moment from the page's own notes: from the navigation
    start until the last of the page's usable milestones showed.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.add_init_script(MILESTONES_SCRIPT)
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    usable(page)
    polled = time.perf_counter() - started
    shown = {name: ms / 1000 for name, ms in page.evaluate("window.__milestones").items()}
    required = USABLE_FLOOR if usable is floor_usable else USABLE_FORM
    noted = all(name in shown for name in required)
    seconds = max(shown[name] for name in required) if noted else polled
    return Visit(seconds, shown), page


def generate_form_usable(page: Page) -> None:
    """The model can be chosen, an image dropped, and the Generate button is drawn."""
    expect(page.locator(".st-key-gen-model").get_by_role("combobox")).to_be_enabled(timeout=60_000)
    # Each may come first (the form is drawn before the Studio opens): each gets the same wait.
    expect(page.locator('[data-testid="stFileUploaderDropzoneInput"]')).to_be_attached(
        timeout=60_000
    )
    expect(page.get_by_role("button", name="Generate video")).to_be_visible(timeout=60_000)


def floor_usable(page: Page) -> None:
    """The one button of the one-line page can be clicked."""
    expect(page.get_by_role("button", name="Go")).to_be_enabled(timeout=60_000)


def open_history(page: Page) -> float:
    """Click History in the sidebar; seconds until its table shows."""
    started = time.perf_counter()
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="History").click()
    expect(page.locator(".st-key-history-table [data-testid='stDataFrame']")).to_be_visible(
        timeout=60_000
    )
    return time.perf_counter() - started


def resident_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def server_environment(home: Path, *, bytecode: bool) -> dict[str, str]:
    """The app's demo-mode environment; with ``bytecode``, Python keeps what it compiles.

    A deployed app compiles its modules once and reads the bytecode at every later start; an
    environment with ``PYTHONDONTWRITEBYTECODE`` (as on some build machines) makes every start
    compile the app's own modules again on the first visitor's run, which the floor page does
    not have. The bytecode goes to a folder of this run, not next to the sources.
    """
    env = app_environment(home=home)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(home.parent / "bytecode")
    return env


def start_server(script: Path, home: Path, *, bytecode: bool) -> StreamlitServer:
    """``streamlit run script`` in demo mode on the seeded data folder, once healthy."""
    server = StreamlitServer(
        script=script,
        workdir=app_workdir(home.parent),
        env=server_environment(home, bytecode=bytecode),
        log_path=home.parent / f"streamlit-{time.monotonic_ns()}.log",
    )
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def load_once(
    browser: Browser,
    *,
    script: Path,
    home: Path,
    usable: Callable[[Page], None],
    into: Loads,
    bytecode: bool,
    history_pause: float | None = None,
) -> None:
    """One freshly started server: a cold visit, then a warm one; with ``history_pause``, also
    History's first visit on the cold tab and the server's memory after it."""
    server = start_server(script, home, bytecode=bytecode)
    try:
        visit, page = open_until_usable(browser, server.url, usable)
        into.cold.append(visit)
        if history_pause is not None:
            # A person reads the form before going elsewhere; the warm tab waits for this one.
            page.wait_for_timeout(history_pause * 1000)
            into.history.append(open_history(page))
            into.memory.append(resident_mb(server.pid))
        page.context.close()
        visit, page = open_until_usable(browser, server.url, usable)
        into.warm.append(visit)
        page.context.close()
    finally:
        server.stop()


def browser_loads(
    home: Path, *, loads: int, history_pause: float, baseline: Path | None, bytecode: bool
) -> tuple[Loads, Loads, Loads, Loads | None]:
    """Loads of the app, the floor page, the widgets-only page and a baseline's app, by turns."""
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("Chromium not found: install Debian's chromium to run this benchmark")
    floor_script = home.parent / "floor" / "floor.py"
    floor_script.parent.mkdir(parents=True, exist_ok=True)
    floor_script.write_text(FLOOR_PAGE)
    app, floor, widgets = Loads.empty(), Loads.empty(), Loads.empty()
    before = Loads.empty() if baseline is not None else None

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # One throwaway round warms the OS file cache (and writes the bytecode), so that no
        # script pays for it alone.
        scripts = [
            (floor_script, floor_usable),
            (WIDGETS_ONLY, generate_form_usable),
            (APP, generate_form_usable),
        ]
        if baseline is not None:
            scripts.append((baseline / "app.py", generate_form_usable))
        for script, usable in scripts:
            load_once(
                browser,
                script=script,
                home=home,
                usable=usable,
                into=Loads.empty(),
                bytecode=bytecode,
                history_pause=0.0 if script.name == "app.py" else None,
            )
        for _ in range(loads):
            load_once(
                browser,
                script=floor_script,
                home=home,
                usable=floor_usable,
                into=floor,
                bytecode=bytecode,
            )
            load_once(
                browser,
                script=WIDGETS_ONLY,
                home=home,
                usable=generate_form_usable,
                into=widgets,
                bytecode=bytecode,
            )
            load_once(
                browser,
                script=APP,
                home=home,
                usable=generate_form_usable,
                into=app,
                bytecode=bytecode,
                history_pause=history_pause,
            )
            if before is not None and baseline is not None:
                load_once(
                    browser,
                    script=baseline / "app.py",
                    home=home,
                    usable=generate_form_usable,
                    into=before,
                    bytecode=bytecode,
                    history_pause=history_pause,
                )
        browser.close()
    return app, floor, widgets, before


def ratio_text(visits: list[Visit], floors: list[Visit]) -> tuple[str, float]:
    """Median seconds against the floor's, and the median of the rounds' side-by-side ratios."""
    ratios = [visit.seconds / floor.seconds for visit, floor in zip(visits, floors, strict=True)]
    ratio = statistics.median(ratios)
    seconds = statistics.median(visit.seconds for visit in visits)
    floor_seconds = statistics.median(floor.seconds for floor in floors)
    spread = f"{min(ratios):.2f}–{max(ratios):.2f}"
    return f"{seconds:.2f} s / {floor_seconds:.2f} s, {ratio:.2f}x ({spread})", ratio


def milestone_text(visits: list[Visit]) -> str:
    """The median moment each milestone showed, in seconds from the navigation start."""
    parts = []
    for name in MILESTONES:
        moments = [visit.milestones[name] for visit in visits if name in visit.milestones]
        if moments:
            parts.append(f"{name.replace('_', ' ')} {statistics.median(moments):.2f}")
    return ", ".join(parts)


def load_rows(label: str, loads: Loads, floor: Loads) -> list[Row]:
    """The usable-form ratios (cold and warm), History's first visit and the memory."""
    rows = []
    for kind, visits, floors in (
        ("cold", loads.cold, floor.cold),
        ("warm", loads.warm, floor.warm),
    ):
        text, ratio = ratio_text(visits, floors)
        rows.append(
            Row(
                f"{label}usable form / floor, {kind}",
                f"<= {TARGET_LOAD_RATIO}x",
                text,
                ratio <= TARGET_LOAD_RATIO,
            )
        )
        floor_first = statistics.median(visit.seconds for visit in floors)
        rows.append(
            Row(
                f"{label}  milestones, {kind} (s)",
                "",
                f"{milestone_text(visits)}; floor usable {floor_first:.2f}",
                True,
            )
        )
    history = statistics.median(loads.history)
    rows.append(
        Row(
            f"{label}History first visit",
            "",
            f"{history:.2f} s ({min(loads.history):.2f}–{max(loads.history):.2f})",
            True,
        )
    )
    rss, peak = max(loads.memory)
    rows.append(
        Row(
            f"{label}app server resident memory",
            f"< {TARGET_RSS_MB:.0f} MB",
            f"{rss:.0f} MB (peak {peak:.0f} MB)",
            rss < TARGET_RSS_MB,
        )
    )
    return rows


def widgets_rows(app: Loads, widgets: Loads, floor: Loads) -> list[Row]:
    """The same widgets without the app, against the floor; the app against those widgets.

    The first says what the form's widget kinds cost the browser by themselves (a target the app
    cannot beat while it shows them); the second, what the app adds to that.
    """
    rows = []
    for kind, app_visits, widget_visits, floors in (
        ("cold", app.cold, widgets.cold, floor.cold),
        ("warm", app.warm, widgets.warm, floor.warm),
    ):
        text, _ = ratio_text(widget_visits, floors)
        rows.append(Row(f"widgets only / floor, {kind}", "", text, True))
        rows.append(Row(f"  milestones, {kind} (s)", "", milestone_text(widget_visits), True))
        text, _ = ratio_text(app_visits, widget_visits)
        rows.append(Row(f"usable form / widgets only, {kind}", "", text, True))
    return rows


def baseline_rows(app: Loads, before: Loads) -> list[Row]:
    """The app against the baseline checkout, round by round (below 1: the app is faster)."""
    rows = []
    pairs = (("cold", app.cold, before.cold), ("warm", app.warm, before.warm))
    for kind, visits, baseline in pairs:
        ratios = [new.seconds / old.seconds for new, old in zip(visits, baseline, strict=True)]
        faster = sum(ratio < 1 for ratio in ratios)
        rows.append(
            Row(
                f"usable form / baseline's, {kind}",
                "",
                f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f}),"
                f" faster in {faster} of {len(ratios)} rounds",
                True,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the store")
    parser.add_argument("--reruns", type=int, default=9, help="timed reruns per page")
    parser.add_argument("--loads", type=int, default=3, help="server starts per script")
    parser.add_argument(
        "--history-pause",
        type=float,
        default=3.0,
        help="seconds between the first usable form and the click on History",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the app (e.g. a worktree of main) measured in the same rounds",
    )
    parser.add_argument(
        "--compile-each-start",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE if set, so every server start compiles the app again",
    )
    args = parser.parse_args()
    bytecode = not args.compile_each_start
    load_before = ", ".join(f"{value:.1f}" for value in os.getloadavg())

    with tempfile.TemporaryDirectory(prefix="wan-studio-bench-ui-") as folder:
        home = Path(folder) / "studio-home"
        started = time.perf_counter()
        seed_store(home, count=args.jobs)
        print(f"seeded {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
        generate_ms, history_ms = server_side_reruns(home, reruns=args.reruns)
        compare_ms = compare_rerun_ms(home, reruns=args.reruns)
        batch_ms = batch_rerun_ms(home, seed_batch_in_flight(home), reruns=args.reruns)
        app, floor, widgets, before = browser_loads(
            home,
            loads=args.loads,
            history_pause=args.history_pause,
            baseline=args.baseline,
            bytecode=bytecode,
        )

    rows = [
        Row(
            "Generate rerun",
            f"< {TARGET_GENERATE_MS:.0f} ms",
            f"{generate_ms:.0f} ms",
            generate_ms < TARGET_GENERATE_MS,
        ),
        Row(
            f"Generate rerun, batch of {BATCH_CLIPS} in flight",
            f"< {TARGET_GENERATE_MS:.0f} ms",
            f"{batch_ms:.0f} ms",
            batch_ms < TARGET_GENERATE_MS,
        ),
        Row(
            "History rerun",
            f"< {TARGET_HISTORY_MS:.0f} ms",
            f"{history_ms:.0f} ms",
            history_ms < TARGET_HISTORY_MS,
        ),
        Row(
            f"Compare rerun, {COMPARED_CLIPS} clips",
            f"< {TARGET_COMPARE_MS:.0f} ms",
            f"{compare_ms:.0f} ms",
            compare_ms < TARGET_COMPARE_MS,
        ),
        *load_rows("", app, floor),
        *widgets_rows(app, widgets, floor),
        *(load_rows("baseline: ", before, floor) if before is not None else []),
        *(baseline_rows(app, before) if before is not None else []),
    ]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\n{args.jobs} jobs · median of {args.reruns} reruns · {args.loads} server starts each"
        f" · {os.cpu_count()} CPUs, load average {load_before} before, {load} after"
    )
    print("cold: the first visitor after the server turned healthy; warm: a new tab after that")
    if bytecode:
        print("bytecode: compiled in the throwaway round and kept, as in a deployed app")
    else:
        compiles = "again at every start" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "once"
        print(f"bytecode: the app's modules are compiled {compiles}")
    print("ratios: median of the rounds' side-by-side ratios (range); milestones: median seconds")
    width = max(len(row.name) for row in rows)
    measured_width = max(len(row.measured) for row in rows)
    print(f"{'measure':<{width}}  {'target':<10}  {'measured':<{measured_width}}  ok")
    for row in rows:
        mark = ("yes" if row.ok else "NO") if row.target else ""
        print(f"{row.name:<{width}}  {row.target:<10}  {row.measured:<{measured_width}}  {mark}")


if __name__ == "__main__":
    main()
