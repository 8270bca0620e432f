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
    SettingsError,
    key_fingerprint,
    key_problem,
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


NUMBER_SETTINGS = {
    "WAN_STUDIO_REQUEST_BUDGET": "from 0.1 to 20 (requests per second)",
    "WAN_STUDIO_JOB_DEADLINE_MINUTES": "from 1 to 1440 (minutes)",
    "WAN_STUDIO_DEMO_SPEED": "from 0.1 to 100 (times the normal demo speed)",
}
ABSURD_NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "1e-300", "1e999", "100000"]


@pytest.mark.parametrize("name", sorted(NUMBER_SETTINGS))
@pytest.mark.parametrize("value", ABSURD_NUMBERS)
def test_numbers_that_are_not_finite_or_out_of_range_are_refused(
    tmp_path: Path, name: str, value: str
):
    env = {"WAN_STUDIO_HOME": str(tmp_path), name: value}
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(env)
    assert str(caught.value) == f"{name} must be a number {NUMBER_SETTINGS[name]}, not {value!r}."


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WAN_STUDIO_REQUEST_BUDGET", "0.1", 0.1),
        ("WAN_STUDIO_REQUEST_BUDGET", "20", 20.0),
        ("WAN_STUDIO_JOB_DEADLINE_MINUTES", "1", 1.0),
        ("WAN_STUDIO_JOB_DEADLINE_MINUTES", "1440", 1440.0),
        ("WAN_STUDIO_DEMO_SPEED", "100", 100.0),
    ],
)
def test_numbers_at_the_ends_of_their_range_are_accepted(
    tmp_path: Path, name: str, value: str, expected: float
):
    settings = Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path), name: value})
    assert {
        "WAN_STUDIO_REQUEST_BUDGET": settings.request_budget_per_second,
        "WAN_STUDIO_JOB_DEADLINE_MINUTES": settings.job_deadline_minutes,
        "WAN_STUDIO_DEMO_SPEED": settings.demo_speed,
    }[name] == expected


@pytest.mark.parametrize("value", ["nan", "inf", "1e-300"])
def test_the_command_line_refuses_an_absurd_budget_with_exit_code_2(
    tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from studio import cli

    monkeypatch.delenv("PIXAZO_API_KEY", raising=False)
    monkeypatch.setenv("WAN_STUDIO_HOME", str(tmp_path))
    monkeypatch.setenv("WAN_STUDIO_REQUEST_BUDGET", value)
    assert cli.main(["jobs"]) == 2
    err = capsys.readouterr().err
    assert "WAN_STUDIO_REQUEST_BUDGET must be a number from 0.1 to 20" in err
    assert "Traceback" not in err
    assert not (tmp_path / "studio.db").exists()


INVISIBLE = ["\u200b", "\ufeff", "\u00a0", " ", "\u200d", "\n", "\x00", "\u2028", "\U0001f511"]


@pytest.mark.parametrize("bad", INVISIBLE)
def test_keys_with_a_character_no_key_can_have_are_refused(bad: str):
    assert key_problem(f"sk-{bad}0123456789") == (
        "That key contains a character that can't be part of a key (an invisible space?). "
        "Paste it again."
    )
    assert key_problem(KEY) is None
    assert key_problem("clé-latin-1-ÿ") is None


@pytest.mark.parametrize("bad", INVISIBLE)
def test_a_configured_key_with_a_bad_character_stops_the_start(tmp_path: Path, bad: str):
    key = f"{KEY}{bad}tail"
    with pytest.raises(SettingsError, match="PIXAZO_API_KEY contains a character") as caught:
        Settings.from_environment({"PIXAZO_API_KEY": key, "WAN_STUDIO_HOME": str(tmp_path)})
    assert KEY not in str(caught.value)
    secrets = {"pixazo": {"api_key": key}}
    with pytest.raises(SettingsError, match=r"secrets.toml \(\[pixazo\] api_key\)"):
        Settings.from_environment({"WAN_STUDIO_HOME": str(tmp_path)}, secrets)


def test_the_database_password_never_shows_in_repr_or_str(tmp_path: Path):
    url = "postgresql+psycopg://studio:s3cret-pass@db.internal:5432/wan"
    settings = Settings.from_environment(
        {"WAN_STUDIO_HOME": str(tmp_path), "WAN_STUDIO_DATABASE_URL": url}
    )
    assert settings.database_url == url
    for text in (repr(settings), str(settings), f"{settings}"):
        assert "s3cret-pass" not in text
        assert "postgresql+psycopg://studio:***@db.internal:5432/wan" in text


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
