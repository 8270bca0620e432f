"""Demo mode: the built-in local gateway, started inside this process when there is no API key.

The simulator answers like the real gateway and renders real videos, so the same client, store and
watcher run unchanged; only the address and a fixed demo key differ. It keeps its tasks in the data
folder, so a demo job in flight survives a restart the way a real one does.

One simulator serves a data folder, even across processes (the app and ``python -m studio``, say):
the process holding an exclusive lock on ``gateway.lock`` runs it and writes its address to
``gateway.url``; the others follow that address, and the first follower to get the lock after the
owner exits starts a new simulator on the same folder, which picks up the tasks where they were.
Two simulators on one folder would each think the other's tasks unknown.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import simulator
from simulator._tasks import QUEUE_MEDIAN_SECONDS, RUN_JITTER, run_seconds
from studio.catalog import Catalog

DEMO_KEY = "wan-studio-demo-key"
LOOPBACK = "127.0.0.1"
LOCK_FILE = "gateway.lock"
URL_FILE = "gateway.url"
# How often a follower checks whether the owner has gone and it should take over.
TAKEOVER_CHECK_SECONDS = 1.0
_OWNER_URL_WAIT_SECONDS = 15.0


class DemoGateway:
    """The simulator serving one data folder, run here or followed in another process."""

    def __init__(self, state_dir: Path, *, speed: float) -> None:
        self.key = DEMO_KEY
        self.state_dir = state_dir
        self._speed = speed
        self._guard = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._running: simulator.RunningSimulator | None = None
        self._lock_file: IO[str] | None = None
        self._stopped = threading.Event()
        self._users = 1
        self._url = self._take_over() if self._try_lock() else self._owner_url()
        self._follower: threading.Thread | None = None
        if self._running is None:
            self._follower = threading.Thread(
                target=self._follow, name="demo-gateway-follower", daemon=True
            )
            self._follower.start()

    @property
    def url(self) -> str:
        """Where the simulator for this data folder answers now."""
        with self._guard:
            return self._url

    @property
    def host(self) -> str:
        """``host:port`` of the simulator, for the link guard's trusted hosts."""
        return urlsplit(self.url).netloc

    @property
    def runs_here(self) -> bool:
        """True when this process runs the simulator, False when it follows another's."""
        return self._running is not None

    def on_url_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(new_url)`` whenever the simulator moves to another address."""
        with self._guard:
            self._listeners.append(listener)

    def stop(self) -> None:
        """Stop following, or stop the simulator and let another process take over."""
        self._stopped.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        if self._running is not None:
            self._running.stop()
            self._running = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def _try_lock(self) -> bool:
        handle = (self.state_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _take_over(self) -> str:
        self._running = simulator.start(
            host=LOOPBACK, port=0, key=DEMO_KEY, speed=self._speed, state_dir=self.state_dir
        )
        url_file = self.state_dir / URL_FILE
        partial = url_file.with_suffix(".partial")
        partial.write_text(self._running.url, encoding="utf-8")
        os.replace(partial, url_file)
        return self._running.url

    def _owner_url(self) -> str:
        # The owner writes its address just after taking the lock; wait until it answers.
        deadline = time.monotonic() + _OWNER_URL_WAIT_SECONDS
        while True:
            try:
                url = (self.state_dir / URL_FILE).read_text(encoding="utf-8").strip()
                if _answers(url):
                    return url
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "Another Wan Studio process holds the demo gateway for this data folder but "
                    "does not answer; stop it, or give this one its own WAN_STUDIO_HOME."
                )
            time.sleep(0.1)

    def _follow(self) -> None:
        while not self._stopped.wait(TAKEOVER_CHECK_SECONDS):
            if self._try_lock():
                self._move_to(self._take_over())
                return
            try:
                current = (self.state_dir / URL_FILE).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if current and current != self.url:
                self._move_to(current)

    def _move_to(self, url: str) -> None:
        with self._guard:
            self._url = url
            listeners = list(self._listeners)
        for listener in listeners:
            listener(url)


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def demo_running_seconds(
    catalog: Catalog, *, model: str, resolution: str, duration: int, speed: float
) -> tuple[float, float]:
    """The demo gateway's running time for a class, known because it runs in this process.

    Parameters
    ----------
    catalog
        The models' speed classes and the tiers' pixel counts.
    model, resolution, duration
        The job's class.
    speed
        The demo speed: every time of the demo gateway is divided by it.

    Returns
    -------
    tuple of float
        The running time in seconds, and the ± share by which one task's varies.
    """
    tiers = catalog.tier_pixels
    seconds = run_seconds(
        random.Random(0),
        fast=catalog.model(model).is_fast,
        tier_pixels=tiers.get(resolution, min(tiers.values())),
        smallest_tier_pixels=min(tiers.values()),
        duration=duration,
        jitter=0.0,
    )
    return seconds / speed, RUN_JITTER


def demo_queue_seconds(*, speed: float) -> float:
    """The demo gateway's usual wait before a task starts, in seconds (its median)."""
    return QUEUE_MEDIAN_SECONDS / speed


_lock = threading.Lock()
_gateways: dict[Path, DemoGateway] = {}


def acquire_demo_gateway(state_dir: Path, *, speed: float = 1.0) -> DemoGateway:
    """Start or follow the simulator for this data folder, or share this process's one.

    Parameters
    ----------
    state_dir
        Where the simulator keeps its tasks and videos (``<data folder>/simulator``).
    speed
        How much faster than the defaults tasks finish (1.0: a demo-friendly 15-25 s).

    Returns
    -------
    DemoGateway
        Call ``release_demo_gateway`` once for every ``acquire_demo_gateway``.
    """
    state_dir = Path(state_dir).resolve()
    with _lock:
        gateway = _gateways.get(state_dir)
        if gateway is not None:
            gateway._users += 1
            return gateway
        state_dir.mkdir(parents=True, exist_ok=True)
        gateway = DemoGateway(state_dir, speed=speed)
        _gateways[state_dir] = gateway
        return gateway


def release_demo_gateway(gateway: DemoGateway) -> None:
    """Stop the simulator (or stop following it) once its last user lets go of it."""
    with _lock:
        gateway._users -= 1
        if gateway._users > 0:
            return
        _gateways.pop(gateway.state_dir, None)
    gateway.stop()
