"""The layers of docs/architecture.md: imports point down only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imported_top_level_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("studio", {"streamlit", "components", "pages", "app"}),
        ("simulator", {"studio", "streamlit", "components", "pages", "app"}),
        ("components", {"pages", "app"}),
    ],
)
def test_package_does_not_import_upper_layers(package: str, forbidden: set[str]) -> None:
    modules = _imported_top_level_modules(package)
    assert modules, f"{package}/ has no Python files"
    offenders = {path: sorted(names & forbidden) for path, names in modules.items()}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_pages_speak_neither_http_nor_sql() -> None:
    modules = _imported_top_level_modules("pages")
    forbidden = {"requests", "sqlalchemy", "urllib3", "sqlite3", "psycopg", "simulator"}
    offenders = {path: sorted(names & forbidden) for path, names in modules.items()}
    assert {path: names for path, names in offenders.items() if names} == {}


def _spelled_with_a_dot(value: ast.expr) -> bool:
    if isinstance(value, ast.Constant):
        return "." in str(value.value)
    if isinstance(value, ast.JoinedStr):
        return any(_spelled_with_a_dot(part) for part in value.values)
    return False


def _widget_keys_written_in_place() -> list[str]:
    """``key=`` arguments spelled out as a widget key (``page.name``) outside components/state.py.

    Containers' keys (``gen-summary``) only name a place for styling, so they may stay in place.
    """
    found = []
    paths = [*sorted((ROOT / "components").rglob("*.py")), *sorted((ROOT / "pages").rglob("*.py"))]
    for path in [*paths, ROOT / "app.py"]:
        if path == ROOT / "components" / "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "key" and _spelled_with_a_dot(keyword.value):
                    where = f"{path.relative_to(ROOT)}:{keyword.value.lineno}"
                    found.append(f"{where} {ast.unparse(keyword.value)}")
    return found


def test_widget_keys_come_from_the_state_module() -> None:
    assert _widget_keys_written_in_place() == []
