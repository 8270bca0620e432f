"""Fixtures for engine tests: a Studio on a throwaway data folder, SQLite and a fast simulator.

``demo_studio`` runs in demo mode (the embedded simulator); ``billed_studio`` talks to a separate
simulator that accepts only ``ENGINE_KEY`` (plus per-key faults after a ``+``). ``open_studio``
opens more Studios on the same data folder and database, for restarts and second watchers.
Tests wait for outcomes with ``wait_until``; they never assert how long anything took.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from PIL import Image

import simulator
from studio.catalog import Catalog, default_catalog
from studio.generation import FieldProblem, JobDraft
from studio.images import PreparedImage
from studio.records import BILLED, Job, JobStatus
from studio.schedule import PollPolicy
from studio.service import Studio
from studio.settings import KEY_FROM_ENVIRONMENT, KEY_FROM_NOWHERE, Settings
from studio.store import JobStore, sqlite_url
from tests.plugins.images import prepare_image

# The shipped catalog, which every engine test's Studio uses.
CATALOG = default_catalog()
ENGINE_KEY = "engine-test-key-0123456789"
SIMULATOR_SPEED = 40.0
# The standard schedule with time running 20 times faster, so jobs finish in about a second.
FAST_POLICY = replace(PollPolicy().scaled(20), deadline=120.0, submit_grace=30.0)
WAIT_SECONDS = 60.0

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float = WAIT_SECONDS,
    every: float = 0.02,
    what: str = "",
) -> T:
    """Call ``predicate`` until it returns something truthy and return that; fail at ``timeout``."""
    ends = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= ends:
            raise AssertionError(f"gave up waiting {timeout:.0f} s for {what or predicate!r}")
        time.sleep(every)


def first_frame(width: int = 640, height: int = 480, *, shade: int = 0) -> PreparedImage:
    """A small JPEG gradient, prepared for sending; ``shade`` makes distinct images."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    image = Image.merge("RGB", (red, green, Image.new("L", (width, height), shade % 256)))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return prepare_image(buffer.getvalue(), filename="frame.jpg")


def count_draft_checks(monkeypatch: pytest.MonkeyPatch) -> list[JobDraft]:
    """From now on, note every draft that is checked against the catalog."""
    checked: list[JobDraft] = []
    problems = JobDraft.problems

    def noting(draft: JobDraft, catalog: Catalog) -> list[FieldProblem]:
        checked.append(draft)
        return problems(draft, catalog)

    monkeypatch.setattr(JobDraft, "problems", noting)
    return checked


def quick_draft(**changes: object) -> JobDraft:
    """The cheapest, quickest job: Wan 2.1 Turbo, 480P, 3 s."""
    draft = JobDraft(
        model="wan2.1-i2v-turbo",
        resolution="480P",
        duration=3,
        prompt="a slow pan across the hills",
        prompt_extend=False,
        image=first_frame(),
        image_source="frame.jpg",
    )
    return replace(draft, **changes)


def a_job(**changes: object) -> Job:
    """A finished billed job as the store would return it, without a store: for pure functions."""
    job = Job(
        id=1,
        submission_id="submission-1",
        mode=BILLED,
        session_id="s",
        model="wan2.1-i2v-turbo",
        resolution="480P",
        duration=3,
        prompt="a slow pan across the hills",
        negative_prompt="",
        prompt_extend=False,
        watermark=False,
        seed=7,
        image_sha256="0" * 64,
        image_source="frame.jpg",
        last_frame_sha256=None,
        status=JobStatus.SUCCEEDED,
        created_at=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        estimate_usd=Decimal("0.135"),
    )
    return replace(job, **changes)


def settings_for(
    home: Path, *, api_key: str | None = None, base_url: str = "http://127.0.0.1:9"
) -> Settings:
    """Settings for a data folder, SQLite inside it, and a fast demo simulator."""
    return Settings(
        api_key=api_key,
        key_source=KEY_FROM_ENVIRONMENT if api_key else KEY_FROM_NOWHERE,
        base_url=base_url,
        home=home,
        database_url=sqlite_url(home / "studio.db"),
        demo_speed=SIMULATOR_SPEED,
    )


@dataclass
class RequestLog:
    """Every request a simulator answered, as (monotonic time, method, path, status) rows."""

    rows: list[tuple[float, str, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, path_part: str) -> int:
        with self._lock:
            return sum(1 for row in self.rows if path_part in row[2])

    def times(self, path_part: str = "") -> list[float]:
        with self._lock:
            return [row[0] for row in self.rows if path_part in row[2]]


class _RequestLogHandler(logging.Handler):
    def __init__(self, log: RequestLog) -> None:
        super().__init__(logging.INFO)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) >= 3 and str(args[1]).startswith("/"):
            with self.log._lock:
                self.log.rows.append((time.monotonic(), str(args[0]), str(args[1]), str(args[2])))


@pytest.fixture
def request_log() -> Iterator[RequestLog]:
    """Records every request answered by any simulator in this process during the test."""
    log = RequestLog()
    handler = _RequestLogHandler(log)
    logger = logging.getLogger("simulator")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield log
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture
def engine_gateway(tmp_path: Path) -> Iterator[simulator.RunningSimulator]:
    """A fast simulator that accepts only ``ENGINE_KEY`` (with optional ``+fault`` suffixes)."""
    with simulator.start(
        key=ENGINE_KEY, speed=SIMULATOR_SPEED, state_dir=tmp_path / "gateway"
    ) as running:
        yield running


@pytest.fixture
def open_studio(tmp_path: Path) -> Iterator[Callable[..., Studio]]:
    """Opens Studios on this test's data folder (same home, same database); all closed at the end.

    Call it as ``open_studio(api_key=..., base_url=..., policy=..., start_watcher=...)``.
    """
    opened: list[Studio] = []

    def open_one(
        *,
        api_key: str | None = None,
        base_url: str = "http://127.0.0.1:9",
        policy: PollPolicy = FAST_POLICY,
        start_watcher: bool = True,
    ) -> Studio:
        settings = settings_for(tmp_path / "data", api_key=api_key, base_url=base_url)
        studio = Studio.open(
            settings, start_watcher=start_watcher, catalog=CATALOG, poll_policy=policy
        )
        opened.append(studio)
        return studio

    yield open_one
    for studio in reversed(opened):
        studio.close()


@pytest.fixture
def store_of() -> Iterator[Callable[[Studio], JobStore]]:
    """Opens the job store of a Studio's database beside it, as another process would.

    For tests that set a job's fields directly; ``store_of(studio)`` is the same store each time.
    """
    opened: dict[str, JobStore] = {}

    def open_for(studio: Studio) -> JobStore:
        url = studio.settings.database_url
        if url not in opened:
            opened[url] = JobStore.open(url)
        return opened[url]

    yield open_for
    for store in opened.values():
        store.close()


@pytest.fixture
def demo_studio(open_studio: Callable[..., Studio]) -> Studio:
    """A Studio in demo mode with its watcher running."""
    return open_studio()


@pytest.fixture
def billed_studio(
    open_studio: Callable[..., Studio], engine_gateway: simulator.RunningSimulator
) -> Studio:
    """A Studio with ``ENGINE_KEY`` configured, pointed at ``engine_gateway``, watcher running."""
    return open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url)


def finished(studio: Studio, job: Job) -> Callable[[], Job | None]:
    """A predicate for ``wait_until``: the job, once it is no longer in flight."""

    def check() -> Job | None:
        current = studio.job(job.id)
        return current if current is not None and not current.in_flight else None

    return check
