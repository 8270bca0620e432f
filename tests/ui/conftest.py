"""AppTest fixtures: the app on a fresh data folder in demo mode, and jobs written to its store."""

from __future__ import annotations

import builtins
import io
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from simulator import RunningSimulator
from studio.images import ImageLibrary
from studio.migrations import jobs as jobs_table
from studio.records import DEMO, Job, JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.images import image_bytes, prepare_image
from tests.plugins.processes import OUTSIDE_SETTINGS

APP = Path(__file__).resolve().parents[2] / "app.py"
# What a finished demo job would have cost (Flash 480P, 5 s): demo jobs record it as the real
# ones do, so a total that mixed demo into billed spend would show it.
DEMO_WOULD_BE_COST = "0.085"
# The embedded demo gateway runs this many times faster than a real one.
DEMO_SPEED = "50"


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder for the app, in demo mode, with a fast demo gateway."""
    home = tmp_path / "studio-home"
    for name in OUTSIDE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WAN_STUDIO_HOME", str(home))
    monkeypatch.setenv("WAN_STUDIO_DEMO_SPEED", DEMO_SPEED)
    yield home
    # Releases the cached Studio: its watcher and demo gateway stop with this test.
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def gateway_taking(
    start_simulator: Callable[..., RunningSimulator],
    monkeypatch: pytest.MonkeyPatch,
    studio_home: Path,
) -> Callable[[str], RunningSimulator]:
    """Start a local gateway that takes only the given key, and point the app at it.

    A key typed in Settings is checked with the gateway before it is used: tests that type one
    need a gateway on this machine to ask.
    """

    def _start(key: str) -> RunningSimulator:
        running = start_simulator(key=key)
        monkeypatch.setenv("PIXAZO_BASE_URL", running.url)
        return running

    return _start


@pytest.fixture
def app(studio_home: Path) -> AppTest:
    """The app, run once on its first page."""
    return AppTest.from_file(str(APP), default_timeout=30).run()


@pytest.fixture
def store(studio_home: Path, app: AppTest) -> Iterator[JobStore]:
    """The app's own job store (opened after the app created it)."""
    opened = JobStore.open(sqlite_url(studio_home / "studio.db"))
    yield opened
    opened.close()


def run_until(
    at: AppTest, predicate: Callable[[AppTest], bool], *, timeout: float = 60.0
) -> AppTest:
    """Rerun the app (AppTest has no timer) until the predicate holds."""
    ends = time.monotonic() + timeout
    while not predicate(at.run()):
        if time.monotonic() > ends:
            raise AssertionError("the app never reached the expected state")
        time.sleep(0.2)
    return at


def note_video_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the path of every MP4 file opened in this process, in order."""
    opened: list[str] = []

    def noting(open_file: Callable[..., Any]) -> Callable[..., Any]:
        def opening(file: Any, *args: Any, **kwargs: Any) -> Any:
            if str(file).endswith(".mp4"):
                opened.append(str(file))
            return open_file(file, *args, **kwargs)

        return opening

    monkeypatch.setattr(builtins, "open", noting(builtins.open))
    monkeypatch.setattr(io, "open", noting(io.open))
    return opened


def as_read(markdown: str) -> str:
    """What a reader sees of Markdown text escaped as plain: the escapes and word joiners gone."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Every piece of text on the page (main area and sidebar), as read, for "is it said" checks."""
    parts = [element.value for element in at.markdown]
    for kind in ("caption", "success", "warning", "error", "info", "title", "subheader", "text"):
        parts += [str(element.value) for element in at.get(kind)]
    parts += [str(metric.value) for metric in at.metric]
    parts += [str(metric.label) for metric in at.metric]
    return as_read("\n".join(parts))


def upload(at: AppTest, data: bytes, *, name: str, mime: str) -> AppTest:
    """Drop a file into the first frame's uploader."""
    at.file_uploader(key="gen.image.upload").set_value((name, data, mime))
    return at.run()


@dataclass
class JobMaker:
    """Writes finished jobs straight into the store, with a stored image and a video file."""

    store: JobStore
    home: Path

    def make(
        self,
        *,
        mode: str = DEMO,
        model: str = "wan2.2-i2v-flash",
        resolution: str = "480P",
        prompt: str = "waves rolling onto the shore",
        status: JobStatus = JobStatus.SUCCEEDED,
        cost: str | None = None,
        session_id: str | None = None,
        seed: int = 1234,
        **fields: object,
    ) -> Job:
        """One job in the given state; a succeeded one gets a small file as its video.

        A demo job without a ``cost`` carries ``DEMO_WOULD_BE_COST``, as the watcher records it.
        ``fields`` sets any other job field, e.g. ``explanation`` or ``submitted_at``.
        """
        if cost is None and mode == DEMO:
            cost = DEMO_WOULD_BE_COST
        prepared = prepare_image(image_bytes(640, 400, "JPEG"), filename="shore.jpg")
        sha = ImageLibrary(self.home).save(prepared.data, format=prepared.format)
        job, _ = self.store.create_job(
            submission_id=str(uuid.uuid4()),
            mode=mode,
            session_id=session_id,
            model=model,
            resolution=resolution,
            duration=5,
            prompt=prompt,
            negative_prompt="blurry",
            prompt_extend=False,
            watermark=True,
            seed=seed,
            image_sha256=sha,
            image_source="shore.jpg",
            last_frame_sha256=None,
            estimate_usd=Decimal(cost or "0.1"),
            output_width=832,
            output_height=512,
            key_fingerprint=None,
            request_json=None,
        )
        fields = {"status": status, **fields}
        if status is JobStatus.SUCCEEDED:
            video = self.home / "videos" / f"test-{job.id}.mp4"
            video.parent.mkdir(parents=True, exist_ok=True)
            video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
            fields = {
                "video_path": str(video.relative_to(self.home)),
                "billed_seconds": 5,
                "cost_usd": Decimal(cost) if cost else None,
            } | fields
        clicked = fields.pop("created_at", None)
        made = self.store.update(job.id, **fields)
        if clicked is not None:
            # Not a field the store lets anyone change: written as an older store would hold it.
            with self.store.engine.begin() as conn:
                conn.execute(
                    sa.update(jobs_table)
                    .where(jobs_table.c.id == job.id)
                    .values(created_at=clicked)
                )
            made = replace(made, created_at=clicked)  # type: ignore[arg-type]
        if made.video_path and made.finished_at is not None:
            # The watcher saves the video as the job finishes: the file's time says when.
            saved = made.finished_at.timestamp()
            os.utime(self.home / made.video_path, (saved, saved))
        return made


@pytest.fixture
def jobs(store: JobStore, studio_home: Path) -> JobMaker:
    """Make jobs, in any state, in the app's store."""
    return JobMaker(store=store, home=studio_home)
