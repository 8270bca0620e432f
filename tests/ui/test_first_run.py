"""The first run of a fresh server: the form goes out first, the other pages' modules follow.

Each check runs the app in a new Python process, so what it imports is not hidden by modules an
earlier test already imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.plugins.processes import environment_without_outside_settings
from tests.ui.conftest import APP, DEMO_SPEED, texts

# Runs Generate once, notes whether pandas was imported by then, then waits (bounded) for the
# background import without visiting another page.
_FIRST_RUN = """
import json, sys, time
import streamlit as st
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
report = {
    "exception": [str(item.value) for item in at.exception],
    "form_drawn": bool(at.button(key="gen.submit")),
    "pandas_after_first_run": "pandas" in sys.modules,
}
def imported(name, attribute):
    # A module is in sys.modules from the start of its import: wait for what it defines.
    return getattr(sys.modules.get(name), attribute, None) is not None

ends = time.monotonic() + 60
while not (imported("pandas", "DataFrame") and imported("pyarrow", "Table")):
    if time.monotonic() > ends:
        break
    time.sleep(0.1)
report["pandas_later"] = imported("pandas", "DataFrame")
report["pyarrow_later"] = imported("pyarrow", "Table")
st.cache_resource.clear()
print(json.dumps(report))
"""


def _first_run(home: Path) -> dict[str, object]:
    env = environment_without_outside_settings()
    env |= {"WAN_STUDIO_HOME": str(home), "WAN_STUDIO_DEMO_SPEED": DEMO_SPEED}
    finished = subprocess.run(
        [sys.executable, "-c", _FIRST_RUN, str(APP)],
        cwd=APP.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_the_first_run_sends_the_form_without_pandas_and_imports_it_afterwards(
    tmp_path: Path,
) -> None:
    report = _first_run(tmp_path / "studio-home")
    assert report["exception"] == []
    assert report["form_drawn"]
    # Generate itself never waits for pandas...
    assert report["pandas_after_first_run"] is False
    # ...but History and Models & prices find it (and pyarrow) already imported.
    assert report["pandas_later"] is True
    assert report["pyarrow_later"] is True


# Runs Generate once and notes, when the engine's imports start, whether the frame input and the
# button had been drawn by then.
_ENGINE_AFTER_FORM = """
import json, sys
import streamlit as st
from streamlit.testing.v1 import AppTest
from components import services

drawn_when_engine_started = []
start = services._EngineImports.start

def noted_start(self):
    drawn_when_engine_started.append(
        [key in st.session_state for key in ("gen.image.upload", "gen.prompt", "gen.submit")]
    )
    start(self)

services._EngineImports.start = noted_start
at = AppTest.from_file(sys.argv[1], default_timeout=120).run()
st.cache_resource.clear()
print(json.dumps({"exception": [str(item.value) for item in at.exception],
                  "drawn": drawn_when_engine_started}))
"""


def test_the_engine_is_imported_only_once_the_form_is_drawn(tmp_path: Path) -> None:
    env = environment_without_outside_settings()
    env |= {"WAN_STUDIO_HOME": str(tmp_path / "studio-home"), "WAN_STUDIO_DEMO_SPEED": DEMO_SPEED}
    finished = subprocess.run(
        [sys.executable, "-c", _ENGINE_AFTER_FORM, str(APP)],
        cwd=APP.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert report["exception"] == []
    # Once per server process, after the frame input, the prompt and the button: a thread
    # importing beside the page's script would have slowed the form it draws.
    assert report["drawn"] == [[True, True, True]]


# Imports the modules the Generate page and the app import, and lists which engine modules came
# with them.
_PAGE_IMPORTS = """
import json, sys
import components.draft, components.first_frame, components.generate_form, components.job_view
import components.services, components.sidebar, components.state
engine = ["sqlalchemy", "simulator", "studio.store", "studio.demo", "studio.watcher", "PIL",
          "requests", "urllib3", "studio.gateway", "studio.linkfetch"]
print(json.dumps([name for name in engine if name in sys.modules]))
"""


def test_the_generate_page_imports_without_the_engine() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", _PAGE_IMPORTS],
        cwd=APP.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # The store, the gateway client and the link guard (with requests), the demo gateway and
    # Pillow load in the background instead.
    assert json.loads(finished.stdout.strip().splitlines()[-1]) == []


def test_the_whole_form_is_drawn_before_the_studio_is_needed(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A data folder that cannot be made: the Studio fails to open.
    studio_home.parent.mkdir(parents=True, exist_ok=True)
    studio_home.write_text("not a folder")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="gen.model").value == "wan2.2-i2v-plus"
    assert at.toggle(key="gen.prompt_extend") is not None
    # The frame input, the prompt, the price and the button (blocked: no frame yet) need only
    # the catalog and the settings, so they were drawn before the Studio was asked for.
    assert [uploader.key for uploader in at.get("file_uploader")] == ["gen.image.upload"]
    assert at.text_area(key="gen.prompt") is not None
    assert at.button(key="gen.submit").disabled
    shown = texts(at)
    assert "Demo, not billed: would cost $0.750" in shown
    assert "Wan Studio could not start" in shown
    # What reads the store was not drawn: the spending left, the mode line, the sidebar.
    assert "Demo mode, nothing is billed" not in shown
    assert not at.sidebar.markdown
