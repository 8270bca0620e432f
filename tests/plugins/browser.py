"""Browser fixtures: Debian's Chromium driven by Playwright, and the app under ``streamlit run``.

The app runs as a real server on a free loopback port, in demo mode, on a fresh data folder, with
the project's ``.streamlit/config.toml`` but never a secrets file (a developer's real key must not
be billed by a test).
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, sync_playwright

from tests.plugins.ci import skip_unless_ci
from tests.plugins.processes import REPO, Process, environment_without_outside_settings

APP = REPO / "app.py"
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The embedded demo gateway runs this many times faster than a real one.
DEMO_SPEED = "50"
STARTUP_TIMEOUT_SECONDS = 60.0


def find_chromium() -> str | None:
    """Debian's Chromium, or a ``chromium`` on PATH, or None."""
    if DEBIAN_CHROMIUM.is_file():
        return str(DEBIAN_CHROMIUM)
    return shutil.which("chromium")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StreamlitServer(Process):
    """One ``streamlit run`` process in its own process group, logging to a file."""

    def __init__(
        self,
        *,
        script: Path,
        workdir: Path,
        env: Mapping[str, str],
        log_path: Path,
        port: int | None = None,
    ) -> None:
        # A port chosen beforehand when the server's own settings must name it (sign-in).
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--browser.gatherUsageStats",
            "false",
        ]
        super().__init__(command, env=env, log_path=log_path, cwd=workdir)

    def wait_healthy(self, *, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        """Block until ``/_stcore/health`` answers ``ok``; raise with the log if it never does."""
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"streamlit exited with code {self.process.returncode}:\n{self.log()}"
                )
            try:
                answer = requests.get(f"{self.url}/_stcore/health", timeout=2)
                if answer.ok and answer.text.strip() == "ok":
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"streamlit was not healthy after {timeout:.0f} s:\n{self.log()}")


def app_environment(*, home: Path, demo_speed: str = DEMO_SPEED) -> dict[str, str]:
    """This process's environment in demo mode, on the given data folder, isolated from HOME."""
    env = environment_without_outside_settings()
    env |= {
        "WAN_STUDIO_HOME": str(home),
        "WAN_STUDIO_DEMO_SPEED": demo_speed,
        # A private HOME, so no ~/.streamlit/secrets.toml or config is read.
        "HOME": str(home.parent / "server-home"),
    }
    return env


def app_workdir(root: Path) -> Path:
    """A working folder holding only the project's Streamlit config (no secrets)."""
    workdir = root / "server-workdir"
    (workdir / ".streamlit").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / ".streamlit" / "config.toml", workdir / ".streamlit" / "config.toml")
    return workdir


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; skipped where it is missing, but a failure in CI."""
    found = find_chromium()
    if found is None:
        skip_unless_ci(
            "Chromium not found: the browser tests were skipped "
            "(install Debian's chromium to run them)"
        )
    return found


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    """A headless Chromium shared by the session's browser tests."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def streamlit_app(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """``streamlit run app.py`` in demo mode on a fresh data folder; yields its URL."""
    server = StreamlitServer(
        script=APP,
        workdir=app_workdir(tmp_path),
        env=app_environment(home=tmp_path / "studio-home"),
        log_path=tmp_path / "streamlit.log",
    )
    try:
        server.wait_healthy()
    except RuntimeError:
        server.stop()
        raise
    request.node.stash[_SERVER] = server
    yield server.url
    server.stop()


_SERVER = pytest.StashKey[StreamlitServer]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Attach the app server's log to the report of a browser test that failed."""
    report: pytest.TestReport = yield
    server = item.stash.get(_SERVER, None)
    if report.failed and server is not None:
        report.sections.append(("streamlit log", server.log()))
    return report


_SCREENSHOTS = pytest.StashKey[Path]()


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig: pytest.Config) -> Path:
    """Where browser tests save screenshots: a new folder in the system's temporary folder.

    Never the source tree. pytest prunes its own temporary folders after a few runs, so this one is
    separate: a person can look at it later. The path is printed at the end of the run.
    """
    folder = Path(tempfile.mkdtemp(prefix="wan-studio-screenshots-"))
    pytestconfig.stash[_SCREENSHOTS] = folder
    return folder


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    """Say where this run's screenshots are, when it took any."""
    folder = config.stash.get(_SCREENSHOTS, None)
    if folder is not None and any(folder.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {folder}")
