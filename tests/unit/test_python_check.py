"""app.py's first lines: on an older Python, one plain sentence and a stop; otherwise nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app.py"

# Run app.py as `python3 app.py` would, under a Python that says it is 3.10.
_AS_PYTHON_3_10 = (
    "import runpy, sys\n"
    "sys.version_info = (3, 10, 13, 'final', 0)\n"
    f"runpy.run_path({str(APP)!r}, run_name='__main__')\n"
)


def test_an_older_python_stops_with_one_plain_sentence() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _AS_PYTHON_3_10], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 1
    assert finished.stdout == ""
    assert finished.stderr == (
        "Wan Studio needs Python 3.11 or newer, and this is Python 3.10.13: install a newer "
        "Python and run the command again with it.\n"
    )


def test_the_check_comes_first_in_syntax_an_older_python_can_read() -> None:
    source = APP.read_text(encoding="utf-8")
    # An older Python parses the whole file before it runs the check.
    tree = ast.parse(source, feature_version=(3, 6))
    body = tree.body[1:] if isinstance(tree.body[0].value, ast.Constant) else tree.body
    first, check = body[0], body[1]
    assert isinstance(first, ast.Import)
    assert [alias.name for alias in first.names] == ["sys"]
    assert isinstance(check, ast.If)
    assert ast.unparse(check.test) == "sys.version_info < (3, 11)"


def test_python3_app_py_on_a_new_enough_python_only_says_it_is_fine() -> None:
    finished = subprocess.run(
        [sys.executable, str(APP)], capture_output=True, text=True, timeout=60
    )
    assert finished.returncode == 0
    assert finished.stdout.startswith("Python 3.")
    assert finished.stdout.endswith(" is fine.\n")
