"""How fast the app answers with 10,000 jobs in its store, and how much memory it holds.

A temporary data folder is seeded with 10,000 finished jobs (a few real images, one real video
shared by this browser session's five cards), then:

- the server-side time of one rerun of Generate and of History, from AppTest (median of several
  runs after the first);
- in Chromium, the time from ``streamlit run app.py`` being healthy to the Generate form being
  usable, beside a one-line Streamlit page (the floor), each on a freshly started server: for the
  first visitor (cold: the server imports and opens everything) and for a new tab after that
  (warm); every tab starts with an empty browser cache;
- the app server's resident memory after it has served Generate and History.

Run: ``python bench/ui.py [--jobs N] [--reruns N] [--loads N]``. Targets: Generate rerun under
100 ms, History under 400 ms, first usable form within 1.5x the floor, under 400 MB resident.
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
from studio.records import BILLED, DEMO, JobStatus
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
FLOOR_PAGE = 'import streamlit as st; st.button("Go")\n'
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
TARGET_LOAD_RATIO = 1.5
TARGET_RSS_MB = 400.0


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
        prepared = prepare_image(_png(scene(index)), filename=f"scene-{index}.png")
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
                "last_image_sha256": None,
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
    cards = list(at.get("video"))
    if len(cards) != SESSION_CARDS:
        raise RuntimeError(f"expected {SESSION_CARDS} videos on Generate, found {len(cards)}")
    generate_ms = median_rerun_ms(at, reruns=reruns)
    at.switch_page("pages/history.py").run()
    history_ms = median_rerun_ms(at, reruns=reruns)
    st.cache_resource.clear()  # stops the Studio's watcher and demo gateway
    return generate_ms, history_ms


@dataclass(frozen=True)
class Loads:
    """Median seconds from a healthy server to a usable page, for one script."""

    cold: float  # the first visitor after the server started
    warm: float  # a new tab once the server has served one


def open_until_usable(
    browser: Browser, url: str, usable: Callable[[Page], None]
) -> tuple[float, Page]:
    """Open ``url`` in a fresh browser context (empty cache); seconds until ``usable`` holds."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    usable(page)
    return time.perf_counter() - started, page


def generate_form_usable(page: Page) -> None:
    """The model can be chosen, an image dropped, and the Generate button is drawn."""
    expect(page.locator(".st-key-gen-model").get_by_role("combobox")).to_be_enabled(timeout=60_000)
    expect(page.locator('[data-testid="stFileUploaderDropzoneInput"]')).to_be_attached()
    expect(page.get_by_role("button", name="Generate video")).to_be_visible()


def floor_usable(page: Page) -> None:
    """The one button of the one-line page can be clicked."""
    expect(page.get_by_role("button", name="Go")).to_be_enabled(timeout=60_000)


def open_history(page: Page) -> None:
    """Visit History so the server has served both heavy pages before its memory is read."""
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="History").click()
    expect(page.locator(".st-key-history-table [data-testid='stDataFrame']")).to_be_visible(
        timeout=60_000
    )


def resident_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in {"VmRSS", "VmHWM"}:
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def start_server(script: Path, home: Path) -> StreamlitServer:
    """``streamlit run script`` in demo mode on the seeded data folder, once healthy."""
    server = StreamlitServer(
        script=script,
        workdir=app_workdir(home.parent),
        env=app_environment(home=home),
        log_path=home.parent / f"streamlit-{time.monotonic_ns()}.log",
    )
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def measure_loads(
    browser: Browser,
    *,
    script: Path,
    home: Path,
    usable: Callable[[Page], None],
    loads: int,
    before_stop: Callable[[Page, StreamlitServer], None] | None = None,
) -> Loads:
    """Cold and warm loads of one script, each cold load on a freshly started server."""
    cold, warm = [], []
    for _ in range(loads):
        server = start_server(script, home)
        try:
            seconds, page = open_until_usable(browser, server.url, usable)
            cold.append(seconds)
            page.context.close()
            seconds, page = open_until_usable(browser, server.url, usable)
            warm.append(seconds)
            if before_stop is not None:
                before_stop(page, server)
            page.context.close()
        finally:
            server.stop()
    return Loads(cold=statistics.median(cold), warm=statistics.median(warm))


def browser_loads(home: Path, *, loads: int) -> tuple[Loads, Loads, tuple[float, float]]:
    """Loads of the app and of the floor page; the app server's resident and peak memory (MB)."""
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("Chromium not found: install Debian's chromium to run this benchmark")
    floor_script = home.parent / "floor" / "floor.py"
    floor_script.parent.mkdir(parents=True, exist_ok=True)
    floor_script.write_text(FLOOR_PAGE)
    memory: list[tuple[float, float]] = []

    def read_memory(page: Page, server: StreamlitServer) -> None:
        open_history(page)
        memory.append(resident_mb(server.pid))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        # One throwaway round warms the OS file cache, so neither script pays for it alone.
        measure_loads(browser, script=floor_script, home=home, usable=floor_usable, loads=1)
        measure_loads(browser, script=APP, home=home, usable=generate_form_usable, loads=1)
        floor = measure_loads(
            browser, script=floor_script, home=home, usable=floor_usable, loads=loads
        )
        app = measure_loads(
            browser,
            script=APP,
            home=home,
            usable=generate_form_usable,
            loads=loads,
            before_stop=read_memory,
        )
        browser.close()
    return app, floor, max(memory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs in the store")
    parser.add_argument("--reruns", type=int, default=9, help="timed reruns per page")
    parser.add_argument("--loads", type=int, default=3, help="server starts per script")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wan-studio-bench-ui-") as folder:
        home = Path(folder) / "studio-home"
        started = time.perf_counter()
        seed_store(home, count=args.jobs)
        print(f"seeded {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
        generate_ms, history_ms = server_side_reruns(home, reruns=args.reruns)
        app, floor, (rss, peak) = browser_loads(home, loads=args.loads)

    cold_ratio, warm_ratio = app.cold / floor.cold, app.warm / floor.warm
    rows = [
        Row(
            "Generate rerun",
            f"< {TARGET_GENERATE_MS:.0f} ms",
            f"{generate_ms:.0f} ms",
            generate_ms < TARGET_GENERATE_MS,
        ),
        Row(
            "History rerun",
            f"< {TARGET_HISTORY_MS:.0f} ms",
            f"{history_ms:.0f} ms",
            history_ms < TARGET_HISTORY_MS,
        ),
        Row(
            "usable form / floor, cold",
            f"<= {TARGET_LOAD_RATIO}x",
            f"{app.cold:.2f} s / {floor.cold:.2f} s = {cold_ratio:.2f}x",
            cold_ratio <= TARGET_LOAD_RATIO,
        ),
        Row(
            "usable form / floor, warm",
            f"<= {TARGET_LOAD_RATIO}x",
            f"{app.warm:.2f} s / {floor.warm:.2f} s = {warm_ratio:.2f}x",
            warm_ratio <= TARGET_LOAD_RATIO,
        ),
        Row(
            "app server resident memory",
            f"< {TARGET_RSS_MB:.0f} MB",
            f"{rss:.0f} MB (peak {peak:.0f} MB)",
            rss < TARGET_RSS_MB,
        ),
    ]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\n{args.jobs} jobs · median of {args.reruns} reruns · {args.loads} server starts each"
        f" · {os.cpu_count()} CPUs, load average {load}"
    )
    print("cold: the first visitor after the server turned healthy; warm: a new tab after that")
    width = max(len(row.name) for row in rows)
    measured_width = max(len(row.measured) for row in rows)
    print(f"{'measure':<{width}}  {'target':<10}  {'measured':<{measured_width}}  ok")
    for row in rows:
        mark = "yes" if row.ok else "NO"
        print(f"{row.name:<{width}}  {row.target:<10}  {row.measured:<{measured_width}}  {mark}")


if __name__ == "__main__":
    main()
