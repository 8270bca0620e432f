"""README's "Running for a team" stays true: its commands run, its settings and proxy are real.

Every line of the section's ``bash team`` blocks is run as written (through bash, with the
virtual environment's folder for ``.venv/bin``, and a free port for the app's 8501) against a
local PostgreSQL, object store and gateway: one-shot commands must succeed, the app must answer
its health check and the worker must start watching, and both must stop cleanly on SIGTERM. The
sample settings must be read by Wan Studio as what the section says; the nginx configuration is
checked by ``nginx -t`` where nginx is installed, and for what the section promises in any case.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from simulator import RunningSimulator
from studio.people import admins_from
from studio.settings import Settings
from tests.plugins.browser import app_workdir, free_port
from tests.plugins.processes import REPO, Process
from tests.plugins.team import team_environment

pytestmark = pytest.mark.postgres

SECTION = "## Running for a team"
KEY = "readme-team-key-0123456789"
# What boto3 reads from the environment to reach a bucket.
BOTO3_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
}
VENV_BIN = str(Path(sys.executable).parent)
STARTUP_SECONDS = 60.0


def _section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else None]


def _blocks(info: str) -> list[str]:
    pattern = re.compile(rf"^```{re.escape(info)}\n(.*?)^```$", re.S | re.M)
    return pattern.findall(_section())


def _commands() -> list[str]:
    lines = [line.strip() for block in _blocks("bash team") for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _settings() -> dict[str, str]:
    (block,) = _blocks("ini team-settings")
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    pairs = [line.split("=", 1) for line in lines]
    return {name: value for name, value in pairs}


def test_the_section_has_commands_settings_and_a_proxy() -> None:
    commands = _commands()
    assert any("studio migrate" in command for command in commands)
    assert any("streamlit run app.py" in command for command in commands)
    assert any("studio watch" in command for command in commands)
    assert len(_blocks("nginx")) == 1
    assert "WAN_STUDIO_WATCHER" in _settings()


def test_the_sample_settings_are_read_as_the_section_says(tmp_path: Path) -> None:
    sample = _settings()
    settings = Settings.from_environment(sample)
    assert settings.database_url == sample["WAN_STUDIO_DATABASE_URL"]
    assert settings.api_key == sample["PIXAZO_API_KEY"]
    assert settings.shared_key_salt == bytes.fromhex(sample["WAN_STUDIO_KEY_SALT"])
    assert str(settings.home) == sample["WAN_STUDIO_HOME"]
    assert settings.request_budget_per_second == float(sample["WAN_STUDIO_REQUEST_BUDGET"])
    assert settings.run_watcher is False
    assert settings.media_url == sample["WAN_STUDIO_MEDIA_URL"]
    assert admins_from(sample, None) == {"ana@example.com", "bo@example.com"}
    # Every name in it is one Wan Studio reads (or boto3, for the bucket): none left over.
    read = {name for name in sample if _changes_settings(name, sample[name], tmp_path)}
    assert read | {"WAN_STUDIO_ADMINS"} | (set(sample) & BOTO3_VARIABLES) == set(sample)


def _changes_settings(name: str, value: str, tmp_path: Path) -> bool:
    base = {"WAN_STUDIO_HOME": str(tmp_path)}
    if name == "WAN_STUDIO_HOME":
        base = {}
    before = Settings.from_environment(base)
    after = Settings.from_environment({**base, name: value})
    return before != after


@pytest.fixture
def local_team(
    tmp_path: Path,
    postgres_database_url: str,
    start_simulator: Callable[..., RunningSimulator],
    media_env: dict[str, str],
) -> dict[str, str]:
    """The environment of the section's commands: local database, bucket, gateway, data folder."""
    gateway = start_simulator(key=KEY)
    env = team_environment(
        key=KEY,
        base_url=gateway.url,
        database_url=postgres_database_url,
        home=tmp_path / "studio-home",
        WAN_STUDIO_KEY_SALT=_settings()["WAN_STUDIO_KEY_SALT"],
        HOME=str(tmp_path / "user-home"),
        **{name: value for name, value in media_env.items() if name != "WAN_STUDIO_MEDIA_PREFIX"},
    )
    return env


def _runnable(command: str, port: int) -> str:
    command = command.replace(".venv/bin/", f"{VENV_BIN}/")
    return command.replace("--server.port 8501", f"--server.port {port}")


def test_every_command_of_the_section_runs(local_team: dict[str, str], tmp_path: Path) -> None:
    workdir = app_workdir(tmp_path)
    # The project's files, as in a checkout, beside the Streamlit config of a clean machine.
    for name in ("app.py", "pages", "components", "studio"):
        (workdir / name).symlink_to(REPO / name)
    for number, command in enumerate(_commands()):
        port = free_port()
        runnable = _runnable(command, port)
        log_path = tmp_path / f"command-{number}.log"
        if "streamlit run" in command:
            _run_until_healthy(runnable, local_team, log_path, workdir, port)
        elif "studio watch" in command:
            _run_until_watching(runnable, local_team, log_path, workdir)
        else:
            done = subprocess.run(
                ["bash", "-c", runnable],
                env=local_team,
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
            if "secrets.token_hex" in command:
                salt = done.stdout.strip()
                assert Settings.from_environment({"WAN_STUDIO_KEY_SALT": salt}).shared_key_salt
            if "studio migrate" in command:
                assert done.stdout.startswith("schema version ")


def _run_until_healthy(
    command: str, env: dict[str, str], log_path: Path, workdir: Path, port: int
) -> None:
    app = Process(["bash", "-c", command], env=env, log_path=log_path, cwd=workdir)
    try:
        ends = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < ends:
            assert app.process.poll() is None, app.log()
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
                if answer.ok:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"{command} did not answer:\n{app.log()}")
    finally:
        app.send(signal.SIGTERM)
        assert app.process.wait(timeout=30) == 0, app.log()
    assert KEY not in app.log()


def _run_until_watching(command: str, env: dict[str, str], log_path: Path, workdir: Path) -> None:
    worker = Process(["bash", "-c", command], env=env, log_path=log_path, cwd=workdir)
    try:
        ends = time.monotonic() + STARTUP_SECONDS
        while "Watching" not in worker.log():
            assert worker.process.poll() is None, worker.log()
            assert time.monotonic() < ends, worker.log()
            time.sleep(0.1)
    finally:
        worker.send(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0, worker.log()


NGINX_STRUCTURE = [
    r"upstream \w+ \{[^}]*\bip_hash;[^}]*server [^;]+:8501;[^}]*server [^;]+:8501;",
    r"proxy_http_version 1\.1;",
    r"proxy_set_header Upgrade \$http_upgrade;",
    r"proxy_set_header Connection \$connection_upgrade;",
    r"map \$http_upgrade \$connection_upgrade \{",
    r"proxy_read_timeout \d+s;",
    r"client_max_body_size \d+m;",
]


def test_the_proxy_configuration_keeps_sessions_sticky_and_websockets_open(
    tmp_path: Path,
) -> None:
    (config,) = _blocks("nginx")
    for rule in NGINX_STRUCTURE:
        assert re.search(rule, config), rule
    assert config.count("{") == config.count("}")
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        return  # the structure above is what can be checked without nginx
    (tmp_path / "logs").mkdir()
    whole = tmp_path / "nginx.conf"
    whole.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{\naccess_log off;\n{config}\n}}\n"
    )
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(whole)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
