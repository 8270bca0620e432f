"""The server's head-start imports never run beside the same imports in a page's run.

Two threads importing one package with import cycles inside can hand one of them a half-made
module: a fresh server once failed to open its store that way.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import services


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module that takes a moment to import and says when it is whole; the background's target."""
    name = f"slow_tables_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import time

            WHOLE = False
            time.sleep(0.5)
            WHOLE = True
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(services, "_LATER_MODULES", (name,))
    monkeypatch.setattr(services, "_later_imports", None)
    monkeypatch.setattr(services, "_later_imports_called_off", False)
    yield name
    sys.modules.pop(name, None)


def test_a_table_page_waits_for_the_background_import_under_way(
    slow_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_LATER_DELAY_RUNS", 0.0)
    monkeypatch.setattr(services, "_LATER_DELAY_MIN_SECONDS", 0.0)
    services.import_later_pages_soon()
    deadline = time.monotonic() + 30
    while slow_module not in sys.modules:  # the background import has begun
        assert time.monotonic() < deadline, "the background import never started"
        time.sleep(0.01)

    services.tables_ready()

    assert sys.modules[slow_module].WHOLE


def test_a_table_page_calls_off_a_background_import_not_yet_begun(
    slow_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_LATER_DELAY_MIN_SECONDS", 3600.0)
    services.import_later_pages_soon()

    services.tables_ready()

    assert services._later_imports is not None
    assert not services._later_imports.is_alive()
    assert slow_module not in sys.modules


def test_after_a_table_page_ran_first_no_background_import_is_started(slow_module: str) -> None:
    services.tables_ready()
    services.import_later_pages_soon()

    assert services._later_imports is None


def test_opening_the_studio_waits_for_the_engine_imports(
    slow_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "ENGINE_MODULES", (slow_module,))
    services._engine_imports.clear()
    whole_when_settings_were_read: list[bool] = []

    def read_settings() -> object:
        # Reading the settings is the first thing that imports SQLAlchemy (the URL's repr).
        whole_when_settings_were_read.append(sys.modules[slow_module].WHOLE)
        return object()

    monkeypatch.setattr(services, "current_settings", read_settings)
    monkeypatch.setattr(services, "_settings_identity", lambda settings: "identity")
    monkeypatch.setattr(services, "_open_studio", lambda identity, settings: "the studio")
    services.import_engine_soon()
    deadline = time.monotonic() + 30
    while slow_module not in sys.modules:
        assert time.monotonic() < deadline, "the engine's import never started"
        time.sleep(0.01)

    try:
        assert services.get_studio() == "the studio"
    finally:
        services._engine_imports.clear()

    assert whole_when_settings_were_read == [True]
