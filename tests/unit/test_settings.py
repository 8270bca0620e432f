"""Settings: where the key, the gateway, the data folder and the database come from."""

from __future__ import annotations

import hashlib
import re
import stat
import threading
from pathlib import Path

import pytest

from studio.records import BILLED, DEMO
from studio.settings import (
    DEFAULT_BASE_URL,
    KEY_FROM_ENVIRONMENT,
    KEY_FROM_NOWHERE,
    KEY_FROM_SECRETS,
    Settings,
    key_fingerprint,
    mask_key,
)

KEY = "sk-test-0123456789abcdef"


def test_no_key_means_demo_mode_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_environment({})
    assert settings.api_key is None
    assert settings.key_source == KEY_FROM_NOWHERE
    assert settings.mode == DEMO
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.home == tmp_path / "studio-data"
    assert settings.database_url == f"sqlite:///{tmp_path / 'studio-data' / 'studio.db'}"
    assert settings.trusted_image_hosts == ()


def test_environment_key_wins_over_secrets(tmp_path: Path):
    secrets = {"pixazo": {"api_key": "from-secrets-key-000", "base_url": "http://secret.example"}}
    env = {"PIXAZO_API_KEY": KEY, "WAN_STUDIO_HOME": str(tmp_path)}
    settings = Settings.from_environment(env, secrets)
    assert settings.api_key == KEY
    assert settings.key_source == KEY_FROM_ENVIRONMENT
    assert settings.mode == BILLED
    assert settings.base_url == "http://secret.example"


def test_secrets_supply_the_key_when_the_environment_does_not(tmp_path: Path):
    secrets = {"pixazo": {"api_key": "  from-secrets-key-000  "}}
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)}, secrets)
    assert settings.api_key == "from-secrets-key-000"
    assert settings.key_source == KEY_FROM_SECRETS


@pytest.mark.parametrize(
    "secrets", [None, {}, {"pixazo": {}}, {"pixazo": {"api_key": " "}}, {"other": 1}]
)
def test_missing_or_blank_secrets_mean_no_key(tmp_path: Path, secrets):
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)}, secrets)
    assert settings.api_key is None


def test_every_variable_is_read(tmp_path: Path):
    env = {
        "PIXAZO_API_KEY": KEY,
        "PIXAZO_BASE_URL": "http://127.0.0.1:8765/",
        "WAN_STUDIO_HOME": str(tmp_path / "home"),
        "WAN_STUDIO_DATABASE_URL": "postgresql+psycopg://u@localhost/studio",
        "WAN_STUDIO_TRUSTED_IMAGE_HOSTS": " Images.Local:8080 , ,cdn.internal",
        "WAN_STUDIO_JOB_DEADLINE_MINUTES": "45",
        "WAN_STUDIO_REQUEST_BUDGET": "4",
        "WAN_STUDIO_DEMO_SPEED": "20",
    }
    settings = Settings.from_environment(env)
    assert settings.base_url == "http://127.0.0.1:8765"
    assert settings.home == tmp_path / "home"
    assert settings.database_url == "postgresql+psycopg://u@localhost/studio"
    assert settings.trusted_image_hosts == ("images.local:8080", "cdn.internal")
    assert settings.job_deadline_minutes == 45
    assert settings.request_budget_per_second == 4
    assert settings.demo_speed == 20


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_bad_numbers_are_refused_by_name(tmp_path: Path, value: str):
    env = {"WAN_STUDIO_HOME": str(tmp_path), "WAN_STUDIO_JOB_DEADLINE_MINUTES": value}
    with pytest.raises(ValueError, match="WAN_STUDIO_JOB_DEADLINE_MINUTES"):
        Settings.from_environment(env)


def test_the_key_never_shows_in_repr_or_str(tmp_path: Path):
    settings = Settings.from_environment({"PIXAZO_API_KEY": KEY, "WAN_STUDIO_HOME": str(tmp_path)})
    assert KEY not in repr(settings)
    assert KEY not in str(settings)
    assert KEY not in mask_key(settings.api_key)
    assert mask_key(settings.api_key).endswith(KEY[-4:])


@pytest.mark.parametrize(
    ("key", "masked"),
    [(None, "not set"), ("", "not set"), ("short-key", "••••••••"), (KEY, "••••••••cdef")],
)
def test_mask_key(key: str | None, masked: str):
    assert mask_key(key) == masked


def test_salt_is_created_once_private_and_stable(tmp_path: Path):
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path / "data")})
    first = settings.key_salt()
    again = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path / "data")}).key_salt()
    assert first == again
    assert len(first) == 32
    salt_files = [p for p in (tmp_path / "data").iterdir() if "salt" in p.name]
    assert len(salt_files) == 1
    assert stat.S_IMODE(salt_files[0].stat().st_mode) == 0o600


def test_racing_processes_agree_on_one_salt(tmp_path: Path):
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)})
    salts: list[bytes] = []
    threads = [threading.Thread(target=lambda: salts.append(settings.key_salt())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(salts)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["key-fingerprint.salt"]


def test_fingerprints_hide_the_key_and_depend_on_the_salt(tmp_path: Path):
    one = key_fingerprint(KEY, b"a" * 32)
    assert one == key_fingerprint(KEY, b"a" * 32)
    assert one != key_fingerprint(KEY, b"b" * 32)
    assert one != key_fingerprint(KEY + "x", b"a" * 32)
    # 32 hex characters, and not a plain hash of the key that a lookup table could reverse.
    assert re.fullmatch(r"[0-9a-f]{32}", one)
    assert not hashlib.sha256(KEY.encode()).hexdigest().startswith(one)
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)})
    assert settings.fingerprint(KEY) == key_fingerprint(KEY, settings.key_salt())
