"""Started as README says, the app serves this machine only.

The app has no sign-in, so an app that listens on every interface lets anyone on the network
spend its key and read its history. This starts ``streamlit run app.py`` from the repository root
with nothing but a port and headless mode, and checks where it can be reached.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.plugins.browser import REPO, STARTUP_TIMEOUT_SECONDS, app_environment, free_port

# /proc/net/tcp's state code for a listening socket.
_TCP_LISTEN = "0A"


def streamlit_command() -> list[str]:
    """README's ``.venv/bin/streamlit``: the console script beside this Python, if there is one."""
    script = Path(sys.executable).parent / "streamlit"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "streamlit"]


@pytest.fixture
def readme_app(tmp_path: Path) -> Iterator[int]:
    """``streamlit run app.py`` from the repository root, headless, on a free port; its port."""
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    command = [
        *streamlit_command(),
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=app_environment(home=tmp_path / "studio-home"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ends = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not _healthy(f"http://127.0.0.1:{port}"):
            if process.poll() is not None or time.monotonic() > ends:
                pytest.fail(f"the app did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _healthy(base: str) -> bool:
    try:
        answer = requests.get(f"{base}/_stcore/health", timeout=2)
    except requests.ConnectionError:
        return False
    return answer.ok and answer.text.strip() == "ok"


def non_loopback_addresses() -> list[str]:
    """This machine's own addresses other than loopback and link-local (which need a scope)."""
    found: set[str] = set()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        listing = subprocess.run(
            ["ip", "-o", "addr", "show"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        for line in listing.splitlines():
            words = line.split()
            if "inet" in words or "inet6" in words:
                found.add(words[words.index("inet6" if "inet6" in words else "inet") + 1])
    with contextlib.suppress(OSError):
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(sockaddr[0]))
    addresses = []
    for text in found:
        address = ipaddress.ip_interface(text.split("%")[0]).ip
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            addresses.append(str(address))
    return sorted(addresses)


def listening_addresses(port: int) -> list[str]:
    """The local addresses of the sockets listening on ``port``, from /proc/net/tcp and tcp6."""
    bound = []
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                local, _remote, status = line.split()[1:4]
                address_hex, port_hex = local.split(":")
                if status != _TCP_LISTEN or int(port_hex, 16) != port:
                    continue
                # The kernel writes each 32-bit word of the address in host (little-endian) order.
                raw = bytes.fromhex(address_hex)
                packed = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
                bound.append(str(ipaddress.ip_address(packed)))
    return bound


def test_the_app_as_readme_starts_it_serves_this_machine_only(readme_app: int) -> None:
    port = readme_app
    assert _healthy(f"http://127.0.0.1:{port}")
    # What a browser on this machine opens: localhost resolves to the loopback address.
    assert _healthy(f"http://localhost:{port}")

    bound = listening_addresses(port)
    assert bound, "no listening socket for the app's port in /proc/net/tcp or tcp6"
    every_interface = {"0.0.0.0", "::"}  # noqa: S104 - what the app must not be bound to
    assert not every_interface & set(bound), f"the app listens on every interface: {bound}"

    for address in non_loopback_addresses():
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            refused = probe.connect_ex((address, port)) != 0
        assert refused, f"the app accepted a connection on {address}:{port}"
