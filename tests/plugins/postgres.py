"""A throwaway PostgreSQL server for tests, or the one named by WAN_STUDIO_TEST_POSTGRES_URL.

The server runs from Debian's binaries on a free loopback port with trust authentication, as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). It lives for the
whole test session; each test that wants a clean database asks for ``postgres_database_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.plugins.ci import skip_unless_ci

URL_VARIABLE = "WAN_STUDIO_TEST_POSTGRES_URL"
_SERVER_USER = "postgres"


def _missing_postgres(reason: str) -> None:
    # In CI a missing server must not turn the PostgreSQL half of the suite into silent skips.
    skip_unless_ci(reason)


def _find_bindir() -> Path | None:
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        result = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_SERVER_USER)
    except KeyError:
        _missing_postgres(
            f"running as root and there is no {_SERVER_USER!r} user to run PostgreSQL"
        )
    return ["runuser", "-u", _SERVER_USER, "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _admin_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A ``postgresql+psycopg://`` URL of a database on a server that lasts the test session."""
    if configured := os.environ.get(URL_VARIABLE):
        yield configured
        return
    bindir = _find_bindir()
    if bindir is None:
        _missing_postgres(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql "
            f"package or set {URL_VARIABLE}"
        )
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="wan-studio-pg-"))
    if prefix:
        server_user = pwd.getpwnam(_SERVER_USER)
        os.chown(root, server_user.pw_uid, server_user.pw_gid)
    data, log = root / "data", root / "server.log"
    port = _free_port()
    try:
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ]
        )
        # fsync off: a test server's data is thrown away, and durability costs seconds per test.
        server_options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "--pgdata",
                str(data),
                "--log",
                str(log),
                "--wait",
                "--timeout",
                "30",
                "-o",
                server_options,
                "start",
            ]
        )
        try:
            server_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
            admin = _admin_engine(server_url)
            with admin.connect() as conn:
                conn.exec_driver_sql("CREATE DATABASE wan_studio_test")
            admin.dispose()
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/wan_studio_test"
        finally:
            subprocess.run(
                [
                    *prefix,
                    str(bindir / "pg_ctl"),
                    "--pgdata",
                    str(data),
                    "--mode",
                    "immediate",
                    "--wait",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"wan_studio_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
