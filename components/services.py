"""The one Studio per server process, shared by every browser session.

On a fresh server the first visitor's run pays for importing the engine (SQLAlchemy, requests,
Pillow, the demo gateway: about half a second) and opening the store. The form needs neither to
be drawn, only the catalog and the settings, so those imports start where the Studio is first
asked for (``get_studio``), once the page has sent what it can: started at the top of the run
instead, in a thread beside the page's, they took the page's script half its time (one thread
runs Python at a time) and the form went out later.

Two threads must never import the same package at once: a package with import cycles inside
(SQLAlchemy, pandas) can hand the second thread a half-made module, which fails. So the
foreground waits for a background import before it imports anything of the same modules.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, NoReturn

import streamlit as st

from studio.catalog import Catalog, default_catalog
from studio.service import ENGINE_MODULES, Studio
from studio.settings import Settings, SettingsError

_log = logging.getLogger("wan_studio")

# What only History and Models & prices use: pandas (with pyarrow, for their tables) takes longer
# to import than the whole Generate page takes to run. The first page is sent without them and
# they are imported a little later in the background, so a visit to those pages need not wait.
_LATER_MODULES = ("pandas", "pyarrow")
# They wait until the first visitor's browser, which shares the server's cores, has drawn the
# form: measured, it needed 1 to 1.5 times as long as the first run took to make it (on a loaded
# machine the first run, the drawing and pandas alike take several seconds).
_LATER_DELAY_RUNS = 2.0
_LATER_DELAY_MIN_SECONDS = 2.0


def current_settings() -> Settings:
    """Settings from the environment, then ``.streamlit/secrets.toml`` when there is one."""
    return Settings.from_environment(secrets=secrets_mapping())


def secrets_mapping() -> Mapping[str, Any] | None:
    """``.streamlit/secrets.toml`` as a mapping, or None when there is no secrets file."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets file anywhere: that is the usual case
        return None


def get_catalog() -> Catalog:
    """The models and prices the Studio uses, without waiting for the Studio to open."""
    # The one place the app loads the shipped catalog.
    return default_catalog()


def get_studio() -> Studio:
    """The running Studio for the current settings (opened once, then shared).

    When it cannot start, the page says so in plain words and the run stops there.
    """
    try:
        _engine_imports().join()
        settings = current_settings()
        return _open_studio(_settings_identity(settings), settings)
    except Exception as problem:
        _stop_because(problem)


def _stop_because(problem: Exception) -> NoReturn:
    # The store's module is imported by the open that just failed, if it got that far.
    from studio.store import EmptyDatabase

    if isinstance(problem, SettingsError | EmptyDatabase):
        # A wrong setting, or a history that is not there: the message names it and what to do.
        st.error(f"Wan Studio could not start. {problem}", icon=":material/error:")
    else:
        # Users see plain words; the details (which may name a database host) go to the log.
        _log.error("Wan Studio could not start", exc_info=problem)
        st.error(
            "Wan Studio could not start: its data folder or its database could not be opened. "
            "Reload the page in a minute; if this stays, ask the person who runs Wan Studio "
            "to check where it keeps its data (the server's log says what went wrong).",
            icon=":material/error:",
        )
    st.stop()


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
    return Studio.open(_settings, catalog=get_catalog(), start_watcher=_settings.run_watcher)


def note_first_run() -> None:
    """Note when this server process's first run started (once); returns at once."""
    _first_run_started_at()


@st.cache_resource(show_spinner=False)
def _first_run_started_at() -> float:
    return time.monotonic()


def import_engine_soon() -> None:
    """Start importing what opening the Studio needs, once per server process; returns at once."""
    _engine_imports()


class _EngineImports(threading.Thread):
    def __init__(self) -> None:
        super().__init__(
            target=_import_modules, args=(ENGINE_MODULES,), name="import-engine", daemon=True
        )


@st.cache_resource(show_spinner=False)
def _engine_imports() -> _EngineImports:
    thread = _EngineImports()
    thread.start()
    return thread


def import_later_pages_soon() -> None:
    """Import what other pages need in the background, once per server process; returns at once.

    Called at the end of a run: the first time, the imports start a while after it, in proportion
    to how long that first run took.
    """
    global _later_imports
    with _later_imports_lock:
        if _later_imports is None and not _later_imports_called_off:
            first_run_seconds = time.monotonic() - _first_run_started_at()
            delay = max(_LATER_DELAY_MIN_SECONDS, _LATER_DELAY_RUNS * first_run_seconds)
            _later_imports = threading.Timer(delay, _import_modules, args=(_LATER_MODULES,))
            _later_imports.name = "import-later-pages"
            _later_imports.daemon = True
            _later_imports.start()


def tables_ready() -> None:
    """Make it safe for this run to import what tables need (pandas, pyarrow).

    Waits for their background import when it is under way, and calls it off when it has not
    started yet: the page that needs them then imports them itself.
    """
    global _later_imports_called_off
    with _later_imports_lock:
        _later_imports_called_off = True
        timer = _later_imports
    if timer is not None:
        timer.cancel()
        timer.join()


# One timer per server process, started by the first run that ends, unless a page that needs
# tables came first.
_later_imports: threading.Timer | None = None
_later_imports_called_off = False
_later_imports_lock = threading.Lock()


def _import_modules(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            # Only a head start: whatever needs the module imports it and reports failures.
            _log.warning("Could not import %s ahead of time", name, exc_info=True)
