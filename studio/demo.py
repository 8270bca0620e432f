"""Demo mode: the built-in local gateway, started inside this process when there is no API key.

The simulator answers like the real gateway and renders real videos, so the same client, store and
watcher run unchanged; only the address and a fixed demo key differ. It keeps its tasks in the data
folder, so a demo job in flight survives a restart the way a real one does. One simulator serves
every ``Studio`` of a process that uses the same data folder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import simulator

DEMO_KEY = "wan-studio-demo-key"
LOOPBACK = "127.0.0.1"


@dataclass
class DemoGateway:
    """A running embedded simulator and the key demo jobs are sent with."""

    url: str
    key: str
    state_dir: Path
    _running: simulator.RunningSimulator = field(repr=False)
    _users: int = 1

    @property
    def host(self) -> str:
        """``host:port`` of the simulator, for the link guard's trusted hosts."""
        return urlsplit(self.url).netloc


_lock = threading.Lock()
_gateways: dict[Path, DemoGateway] = {}


def acquire_demo_gateway(state_dir: Path, *, speed: float = 1.0) -> DemoGateway:
    """Start the simulator for this data folder, or share the one already running.

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
        running = simulator.start(
            host=LOOPBACK, port=0, key=DEMO_KEY, speed=speed, state_dir=state_dir
        )
        gateway = DemoGateway(url=running.url, key=DEMO_KEY, state_dir=state_dir, _running=running)
        _gateways[state_dir] = gateway
        return gateway


def release_demo_gateway(gateway: DemoGateway) -> None:
    """Stop the simulator once its last user lets go of it."""
    with _lock:
        gateway._users -= 1
        if gateway._users > 0:
            return
        _gateways.pop(gateway.state_dir, None)
    gateway._running.stop()
