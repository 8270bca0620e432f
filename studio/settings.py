"""Where Studio's configuration comes from: the environment, then Streamlit-style secrets.

The API key is held here and nowhere else on disk: it is masked in every repr, and jobs only
record a salted fingerprint of it so that the watcher can match jobs to the keys it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets as token_source
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from studio.records import BILLED, DEMO

DEFAULT_BASE_URL = "https://gateway.pixazo.ai"
DEFAULT_HOME = "studio-data"
DEFAULT_JOB_DEADLINE_MINUTES = 30.0
DEFAULT_REQUEST_BUDGET_PER_SECOND = 10.0
DEFAULT_DEMO_SPEED = 1.0

KEY_FROM_ENVIRONMENT = "environment"
KEY_FROM_SECRETS = "secrets"
KEY_FROM_NOWHERE = "none"

_SALT_FILE = "key-fingerprint.salt"

# Each numeric setting's accepted range and what its number counts. Outside these a value is a
# typo, not a choice: a budget of 1e-300 requests a second never sends the next one, and a
# deadline of a week leaves a lost job looking busy long after the gateway forgot it.
_NUMBER_RANGES = {
    "WAN_STUDIO_JOB_DEADLINE_MINUTES": (1.0, 1440.0, "minutes"),
    "WAN_STUDIO_REQUEST_BUDGET": (0.1, 20.0, "requests per second"),
    "WAN_STUDIO_DEMO_SPEED": (0.1, 100.0, "times the normal demo speed"),
}
# The spending limits a deployment may fix: the environment variable, and its name under
# [pixazo] in secrets. Above this a limit is a typo (a missing decimal point), not a choice.
DAILY_LIMIT_VARIABLE = "WAN_STUDIO_DAILY_LIMIT_USD"
MONTHLY_LIMIT_VARIABLE = "WAN_STUDIO_MONTHLY_LIMIT_USD"
DAILY_LIMIT_IN_SECRETS = "daily_limit_usd"
MONTHLY_LIMIT_IN_SECRETS = "monthly_limit_usd"
# Object storage for first frames and videos; the AWS_* variables boto3 reads say how to reach it.
MEDIA_URL_VARIABLE = "WAN_STUDIO_MEDIA_URL"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Whether an app process runs a watcher of its own; "off" where `python -m studio watch` workers
# do the watching for a team.
WATCHER_VARIABLE = "WAN_STUDIO_WATCHER"
# The fingerprint salt shared by every process of a team, so that a worker on one machine knows
# the jobs an app on another made with the same key (otherwise each data folder has its own).
KEY_SALT_VARIABLE = "WAN_STUDIO_KEY_SALT"
_KEY_SALT_HEX = re.compile(r"[0-9a-fA-F]{32,128}")
_SWITCH_WORDS = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
LIMIT_MAX_USD = Decimal("1000000")
# A key travels in an HTTP header, which carries Latin-1 only; no key has a space or a control
# character inside, so those (plain and non-breaking spaces included) are paste slips too.
_KEY_CHARACTERS = frozenset(chr(code) for code in (*range(0x21, 0x7F), *range(0xA1, 0x100)))
BAD_KEY_MESSAGE = (
    "That key contains a character that can't be part of a key (an invisible space?). "
    "Paste it again."
)


class SettingsError(ValueError):
    """A setting Wan Studio cannot start with; its text names the setting and what it accepts."""


def key_problem(key: str) -> str | None:
    """Why ``key`` (already stripped) cannot be an API key, or None when it can.

    A key pasted with a zero-width space or a line break inside would fail only when the first
    job is sent; this catches it where the key is entered.
    """
    if all(character in _KEY_CHARACTERS for character in key):
        return None
    return BAD_KEY_MESSAGE


def mask_key(key: str | None) -> str:
    """Show a key as dots and at most its last four characters (none for short keys).

    Parameters
    ----------
    key
        The API key, or None.

    Returns
    -------
    str
        ``"not set"`` for no key, else e.g. ``"••••••••3f9a"``.
    """
    if not key:
        return "not set"
    visible = key[-4:] if len(key) >= 16 else ""
    return "•" * 8 + visible


def key_fingerprint(key: str, salt: bytes) -> str:
    """Return a salted, one-way fingerprint of a key, safe to store beside a job.

    Parameters
    ----------
    key
        The API key.
    salt
        This data folder's secret salt (see ``Settings.key_salt``).

    Returns
    -------
    str
        32 hex characters; the same key and salt always give the same fingerprint.
    """
    return hmac.new(salt, key.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _secret(secrets: Mapping | None, name: str) -> str | None:
    if not secrets:
        return None
    try:
        section = secrets["pixazo"]
        value = section[name]
    except (KeyError, TypeError):
        return None
    text = str(value).strip()
    return text or None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    low, high, unit = _NUMBER_RANGES[name]
    accepted = f"a number from {low:g} to {high:g} ({unit})"
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {accepted}, not {raw!r}.") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise SettingsError(f"{name} must be {accepted}, not {raw!r}.")
    return value


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return _SWITCH_WORDS[raw.lower()]
    except KeyError:
        raise SettingsError(f"{name} must be on or off, not {raw!r}.") from None


def _shared_salt(env: Mapping[str, str]) -> bytes | None:
    raw = env.get(KEY_SALT_VARIABLE, "").strip()
    if not raw:
        return None
    if len(raw) % 2 or not _KEY_SALT_HEX.fullmatch(raw):
        # The value is a secret: the message does not repeat it.
        raise SettingsError(
            f"{KEY_SALT_VARIABLE} must be 32 to 128 hexadecimal digits (an even number), such "
            "as the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'."
        )
    return bytes.fromhex(raw)


def limit_problem(raw: str) -> str | None:
    """Why ``raw`` cannot be a spending limit in US dollars, or None when it can."""
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        return "is not a number"
    if not amount.is_finite():
        return "is not a number"
    if amount < 0:
        return "is below zero"
    if amount > LIMIT_MAX_USD:
        return f"is more than {LIMIT_MAX_USD:,} dollars"
    if amount != amount.quantize(Decimal("0.01")):
        return "has more than two decimals"
    return None


def _limit(
    env: Mapping[str, str], secrets: Mapping | None, variable: str, secret: str
) -> Decimal | None:
    """A spending limit from the environment, else from ``[pixazo]`` in secrets (None: unset)."""
    raw = env.get(variable, "").strip()
    where = variable
    if not raw:
        raw = _secret(secrets, secret) or ""
        where = f"{secret} under [pixazo] in .streamlit/secrets.toml"
    if not raw:
        return None
    if problem := limit_problem(raw):
        raise SettingsError(
            f"{where} must be an amount in US dollars from 0 up to {LIMIT_MAX_USD:,} with at "
            f"most two decimals, such as 25 or 12.50; {raw!r} {problem}."
        )
    return Decimal(raw).quantize(Decimal("0.01"))


def _media_url(env: Mapping[str, str]) -> str | None:
    """``WAN_STUDIO_MEDIA_URL`` checked to be ``s3://bucket`` or ``s3://bucket/prefix``."""
    raw = env.get(MEDIA_URL_VARIABLE, "").strip()
    if not raw:
        return None
    bucket, _, _prefix = raw.removeprefix("s3://").partition("/")
    if not raw.startswith("s3://") or not _BUCKET_NAME.fullmatch(bucket):
        raise SettingsError(
            f"{MEDIA_URL_VARIABLE} must look like s3://bucket or s3://bucket/prefix (a bucket "
            f"name of 3 to 63 lowercase letters, digits, dots and hyphens), not {raw!r}."
        )
    return raw.rstrip("/")


def _checked_key(key: str, where: str) -> str:
    if key_problem(key):
        raise SettingsError(
            f"The API key in {where} contains a character that can't be part of a key "
            "(an invisible space?). Set it again."
        )
    return key


def redacted_database_url(url: str) -> str:
    """The database URL with any password replaced by stars (safe to show or log)."""
    # Imported here: the pages import this module, and SQLAlchemy takes a while to import.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a valid database URL)"


@dataclass(frozen=True)
class Settings:
    """Everything Studio needs to know about where it runs; read once at start."""

    api_key: str | None = field(repr=False)
    key_source: str
    base_url: str
    home: Path
    database_url: str
    trusted_image_hosts: tuple[str, ...] = ()
    job_deadline_minutes: float = DEFAULT_JOB_DEADLINE_MINUTES
    request_budget_per_second: float = DEFAULT_REQUEST_BUDGET_PER_SECOND
    demo_speed: float = DEFAULT_DEMO_SPEED
    # Spending limits fixed by the deployment (None: set on the Settings page, or no limit).
    daily_limit_usd: Decimal | None = None
    monthly_limit_usd: Decimal | None = None
    # Where first frames and videos live: ``s3://bucket/prefix`` (None: the data folder).
    media_url: str | None = None
    # False: this app process leaves the watching to separate workers (WAN_STUDIO_WATCHER=off).
    run_watcher: bool = True
    # The fingerprint salt every process of a team shares (None: this data folder's own).
    shared_key_salt: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] = os.environ, secrets: Mapping | None = None
    ) -> Settings:
        """Read the settings from environment variables, falling back to ``[pixazo]`` secrets.

        Parameters
        ----------
        env
            The environment (``os.environ`` by default).
        secrets
            A mapping shaped like ``.streamlit/secrets.toml``, e.g. ``st.secrets``, or None.

        Returns
        -------
        Settings
            Demo mode (no key) unless ``PIXAZO_API_KEY`` or ``[pixazo] api_key`` is set.

        Raises
        ------
        SettingsError
            For a number outside its range (or not finite), a spending limit that is not an
            amount of dollars, or a key with a character no key can have; the text names the
            setting.
        """
        env_key = env.get("PIXAZO_API_KEY", "").strip()
        secret_key = _secret(secrets, "api_key")
        if env_key:
            api_key = _checked_key(env_key, "PIXAZO_API_KEY")
            key_source = KEY_FROM_ENVIRONMENT
        elif secret_key:
            api_key = _checked_key(secret_key, ".streamlit/secrets.toml ([pixazo] api_key)")
            key_source = KEY_FROM_SECRETS
        else:
            api_key, key_source = None, KEY_FROM_NOWHERE
        base_url = (
            env.get("PIXAZO_BASE_URL", "").strip()
            or _secret(secrets, "base_url")
            or DEFAULT_BASE_URL
        )
        home = Path(env.get("WAN_STUDIO_HOME", "").strip() or DEFAULT_HOME).expanduser().resolve()
        database_url = (
            env.get("WAN_STUDIO_DATABASE_URL", "").strip() or f"sqlite:///{home / 'studio.db'}"
        )
        hosts = env.get("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", "")
        trusted = tuple(host.strip().lower() for host in hosts.split(",") if host.strip())
        return cls(
            api_key=api_key,
            key_source=key_source,
            base_url=base_url.rstrip("/"),
            home=home,
            database_url=database_url,
            trusted_image_hosts=trusted,
            job_deadline_minutes=_number(
                env, "WAN_STUDIO_JOB_DEADLINE_MINUTES", DEFAULT_JOB_DEADLINE_MINUTES
            ),
            request_budget_per_second=_number(
                env, "WAN_STUDIO_REQUEST_BUDGET", DEFAULT_REQUEST_BUDGET_PER_SECOND
            ),
            demo_speed=_number(env, "WAN_STUDIO_DEMO_SPEED", DEFAULT_DEMO_SPEED),
            daily_limit_usd=_limit(env, secrets, DAILY_LIMIT_VARIABLE, DAILY_LIMIT_IN_SECRETS),
            monthly_limit_usd=_limit(
                env, secrets, MONTHLY_LIMIT_VARIABLE, MONTHLY_LIMIT_IN_SECRETS
            ),
            media_url=_media_url(env),
            run_watcher=_switch(env, WATCHER_VARIABLE, True),
            shared_key_salt=_shared_salt(env),
        )

    def __repr__(self) -> str:
        # The key is left out and the database password starred: reprs end up in logs.
        return (
            f"Settings(key_source={self.key_source!r}, base_url={self.base_url!r}, "
            f"home={str(self.home)!r}, database_url={redacted_database_url(self.database_url)!r}, "
            f"trusted_image_hosts={self.trusted_image_hosts!r}, "
            f"job_deadline_minutes={self.job_deadline_minutes!r}, "
            f"request_budget_per_second={self.request_budget_per_second!r}, "
            f"demo_speed={self.demo_speed!r}, daily_limit_usd={self.daily_limit_usd!r}, "
            f"monthly_limit_usd={self.monthly_limit_usd!r}, media_url={self.media_url!r}, "
            f"run_watcher={self.run_watcher!r})"
        )

    __str__ = __repr__

    @property
    def mode(self) -> str:
        """``"billed"`` with a configured key, ``"demo"`` without one."""
        return BILLED if self.api_key else DEMO

    @property
    def videos_dir(self) -> Path:
        return self.home / "videos"

    @property
    def images_dir(self) -> Path:
        return self.home / "images"

    @property
    def simulator_dir(self) -> Path:
        return self.home / "simulator"

    def key_salt(self) -> bytes:
        """Return this data folder's fingerprint salt, creating it (mode 0600) the first time.

        A team's shared salt (``WAN_STUDIO_KEY_SALT``) wins over the data folder's.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        if self.shared_key_salt is not None:
            return self.shared_key_salt
        path = self.home / _SALT_FILE
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        salt = token_source.token_bytes(32)
        # Written aside, then linked into place: the file appears whole, and when two processes
        # race to create it, exactly one link wins and both end up reading the winner's salt.
        draft = path.with_name(f".{_SALT_FILE}.{os.getpid()}.{token_source.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(salt.hex())
        try:
            os.link(draft, path)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
        finally:
            draft.unlink()
        return salt

    def fingerprint(self, key: str) -> str:
        """The salted fingerprint of ``key`` for this data folder."""
        return key_fingerprint(key, self.key_salt())
