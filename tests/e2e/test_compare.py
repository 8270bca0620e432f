"""Compare in a real Chromium: four clips play in step under one button and one slider.

The data folder is seeded with four finished jobs whose videos are real H.264 files, so the page
plays what the app saved, served by the app server itself (with HTTP Range requests).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import imageio_ffmpeg
import pytest
from playwright.sync_api import Browser, Page, expect

from studio.images import ImageLibrary
from studio.records import DEMO, JobStatus
from studio.store import JobStore, sqlite_url
from tests.e2e.test_accessibility import serious_violations
from tests.plugins.browser import APP, StreamlitServer, app_environment, app_workdir
from tests.plugins.images import image_bytes, prepare_image

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
CLIP_SECONDS = 6
MODELS = ("wan2.2-i2v-flash", "wan2.2-i2v-plus", "wan2.1-i2v-turbo", "wan2.1-i2v-plus")
# What "in step" means here: every clip's time within this of every other's.
IN_STEP_SECONDS = 0.2
WAIT_MS = 30_000
VIDEOS = '[class*="st-key-compare-clip-"] video'
TIMES = f"() => [...document.querySelectorAll('{VIDEOS}')].map((v) => v.currentTime)"


def make_clip(path: Path, *, hue: int, seconds: float) -> None:
    """A real H.264 MP4 of a moving test pattern, tinted so that each clip differs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern = f"testsrc2=duration={seconds}:size=480x272:rate=24,hue=h={hue}"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            pattern,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )


def seed_clips(home: Path, lengths: tuple[float, ...]) -> list[int]:
    """Finished demo jobs, each with its own saved video of these lengths; returns their ids."""
    prepared = prepare_image(image_bytes(640, 400, "JPEG"), filename="shore.jpg")
    image = ImageLibrary(home).save(prepared.data, format=prepared.format)
    ids = []
    with JobStore.open(sqlite_url(home / "studio.db")) as store:
        for index, (model, seconds) in enumerate(zip(MODELS, lengths, strict=False)):
            job, _ = store.create_job(
                submission_id=str(uuid.uuid4()),
                mode=DEMO,
                session_id=None,
                model=model,
                resolution="480P",
                duration=5,
                prompt="waves rolling onto the shore",
                negative_prompt="",
                prompt_extend=False,
                watermark=False,
                seed=100 + index,
                image_sha256=image,
                image_source="shore.jpg",
                last_frame_sha256=None,
                estimate_usd=Decimal("0.085"),
                output_width=480,
                output_height=272,
                key_fingerprint=None,
                request_json=None,
            )
            video = Path("videos") / f"{job.id}.mp4"
            make_clip(home / video, hue=index * 90, seconds=seconds)
            store.update(
                job.id,
                status=JobStatus.SUCCEEDED,
                video_path=str(video),
                cost_usd=Decimal("0.085"),
                finished_at=datetime.now(UTC) + timedelta(seconds=20 + 10 * index),
            )
            ids.append(job.id)
    return ids


def serve_clips(tmp_path: Path, lengths: tuple[float, ...]) -> Iterator[str]:
    """The app, in demo mode, with clips saved; yields the Compare page's address for them."""
    home = tmp_path / "studio-home"
    ids = seed_clips(home, lengths)
    server = StreamlitServer(
        script=APP,
        workdir=app_workdir(tmp_path),
        env=app_environment(home=home),
        log_path=tmp_path / "streamlit.log",
    )
    try:
        server.wait_healthy()
        yield f"{server.url}/compare?compare={','.join(map(str, ids))}"
    finally:
        server.stop()


@pytest.fixture
def compare_address(tmp_path: Path) -> Iterator[str]:
    """Compare with four clips of the same length."""
    yield from serve_clips(tmp_path, (CLIP_SECONDS,) * 4)


@pytest.fixture
def mixed_address(tmp_path: Path) -> Iterator[str]:
    """Compare with a clip half as long as the other."""
    yield from serve_clips(tmp_path, (CLIP_SECONDS / 2, CLIP_SECONDS))


def open_compare(
    browser: Browser, address: str, viewport: dict[str, int], *, clips: int = 4
) -> Page:
    """A new tab on Compare, once all its clips can play."""
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page = context.new_page()
    # The app's first page first: a fresh server learns its pages from the app's first run, and
    # until then it would run a page's own file alone, without the app around it.
    page.goto(address.split("/compare?")[0])
    expect(page.get_by_role("heading", name="Generate a video")).to_be_visible()
    page.goto(address)
    expect(page.get_by_role("heading", name="Compare clips")).to_be_visible()
    expect(page.locator(VIDEOS)).to_have_count(clips)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{VIDEOS}')].every((v) => v.readyState >= 3)"
    )
    expect(page.get_by_role("button", name="Play all")).to_be_enabled()
    return page


def spread(times: list[float]) -> float:
    return max(times) - min(times)


def wait_playing_past(page: Page, seconds: float) -> None:
    """Until every clip plays, past ``seconds``, and none is seeking."""
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{VIDEOS}')].every(
            (v) => !v.paused && !v.seeking && v.currentTime > {seconds})"""
    )


def test_the_clips_play_in_step_after_play_and_after_a_seek(
    browser: Browser, compare_address: str, screenshot_dir: Path
) -> None:
    page = open_compare(browser, compare_address, LAPTOP)
    flags = page.evaluate(
        f"() => [...document.querySelectorAll('{VIDEOS}')].map((v) => [v.muted, v.loop])"
    )
    assert flags == [[True, True]] * 4
    assert page.evaluate(TIMES) == [0, 0, 0, 0]

    page.get_by_role("button", name="Play all").click()
    wait_playing_past(page, 1.0)
    after_play = page.evaluate(TIMES)
    assert spread(after_play) <= IN_STEP_SECONDS, after_play
    page.screenshot(path=screenshot_dir / "compare-playing-laptop.png")

    middle = CLIP_SECONDS / 2
    page.locator(".sync-seek").evaluate(
        """(slider, time) => {
            slider.value = String(time);
            slider.dispatchEvent(new Event("input", { bubbles: true }));
            slider.dispatchEvent(new Event("change", { bubbles: true }));
        }""",
        middle,
    )
    wait_playing_past(page, middle)
    after_seek = page.evaluate(TIMES)
    assert spread(after_seek) <= IN_STEP_SECONDS, after_seek
    assert all(middle <= time < middle + 2 for time in after_seek), after_seek

    page.get_by_role("button", name="Pause all").click()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{VIDEOS}')].every((v) => v.paused)"
    )
    paused = page.evaluate(TIMES)
    assert spread(paused) <= IN_STEP_SECONDS, paused
    page.context.close()


def test_a_shorter_clip_waits_on_its_last_frame_and_starts_again_with_the_longer(
    browser: Browser, mixed_address: str
) -> None:
    page = open_compare(browser, mixed_address, LAPTOP, clips=2)
    short_end = CLIP_SECONDS / 2
    page.get_by_role("button", name="Play all").click()

    page.wait_for_function(
        f"""() => {{
            const [short, long] = document.querySelectorAll('{VIDEOS}');
            return long.currentTime > {short_end + 1} && !long.paused;
        }}"""
    )
    short, long = page.evaluate(TIMES)
    assert short_end - 0.3 <= short <= short_end, (short, long)
    # The longer one loops; the shorter starts again with it.
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{VIDEOS}')].every(
            (v) => !v.paused && !v.seeking && v.currentTime > 0.5 && v.currentTime < 2)"""
    )
    times = page.evaluate(TIMES)
    assert spread(times) <= IN_STEP_SECONDS, times
    page.context.close()


def test_a_rerun_keeps_the_clips_playing_in_step(browser: Browser, compare_address: str) -> None:
    page = open_compare(browser, compare_address, LAPTOP)
    page.get_by_role("button", name="Play all").click()
    wait_playing_past(page, 0.5)

    # Marking a favourite reruns the page; the players stay and keep going together.
    page.get_by_role("button", name="Keep as favourite").first.click()
    expect(page.get_by_role("button", name="Remove from favourites")).to_have_count(1)
    played = max(page.evaluate(TIMES))
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('{VIDEOS}')].every(
            (v) => !v.paused && !v.seeking && Math.abs(v.currentTime - {played}) > 0.3)"""
    )
    times = page.evaluate(TIMES)
    assert spread(times) <= IN_STEP_SECONDS, times
    page.context.close()


def test_the_videos_are_served_in_ranges_by_the_app(browser: Browser, compare_address: str) -> None:
    page = open_compare(browser, compare_address, LAPTOP)
    sources = page.evaluate(f"() => [...document.querySelectorAll('{VIDEOS}')].map((v) => v.src)")
    assert len(set(sources)) == 4
    assert all("/media/" in source and not source.startswith("data:") for source in sources)

    answer = page.request.get(sources[0], headers={"Range": "bytes=100-199"})

    assert answer.status == 206
    assert answer.headers["content-range"].startswith("bytes 100-199/")
    assert len(answer.body()) == 100
    page.context.close()


def test_four_clips_fit_a_phone_two_by_two(
    browser: Browser, compare_address: str, screenshot_dir: Path
) -> None:
    page = open_compare(browser, compare_address, PHONE)
    boxes = [page.locator(VIDEOS).nth(index).bounding_box() for index in range(4)]
    page.screenshot(path=screenshot_dir / "compare-phone.png")

    assert all(box is not None for box in boxes)
    assert all(box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] for box in boxes)
    rows = sorted({round(box["y"]) for box in boxes})
    assert len(rows) == 2, boxes
    assert all(box["width"] >= 120 for box in boxes)
    page.context.close()


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_player_has_no_serious_accessibility_violation(
    browser: Browser, compare_address: str, viewport: dict[str, int]
) -> None:
    page = open_compare(browser, compare_address, viewport)
    expect(page.get_by_role("slider", name="Position in every clip")).to_be_visible()
    expect(page.get_by_role("table")).to_be_attached()

    assert serious_violations(page) == []
    page.context.close()
