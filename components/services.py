"""The one Studio per server process, shared by every browser session."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import streamlit as st

from studio.catalog import default_catalog
from studio.service import Studio
from studio.settings import Settings


def current_settings() -> Settings:
    """Settings from the environment, then ``.streamlit/secrets.toml`` when there is one."""
    return Settings.from_environment(secrets=_secrets())


def _secrets() -> Mapping[str, Any] | None:
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets file anywhere: that is the usual case
        return None


def get_studio() -> Studio:
    """The running Studio for the current settings (opened once, then shared)."""
    settings = current_settings()
    return _open_studio(_settings_identity(settings), settings)


def _settings_identity(settings: Settings) -> str:
    # The cache key: every setting, with the key and the database URL (whose password the repr
    # hides) only as digests.
    secret = f"{settings.api_key or ''}|{settings.database_url}"
    return f"{settings!r}|{hashlib.sha256(secret.encode()).hexdigest()}"


def _close_studio(studio: Studio) -> None:
    studio.close()


# One entry: new settings (a test's data folder, a new key in secrets) replace the old Studio,
# whose watcher and demo gateway are stopped on the way out.
@st.cache_resource(max_entries=1, show_spinner="Starting Wan Studio…", on_release=_close_studio)
def _open_studio(identity: str, _settings: Settings) -> Studio:
    # The one place the app loads the shipped catalog.
    return Studio.open(_settings, catalog=default_catalog())
