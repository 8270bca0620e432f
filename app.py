"""Wan Studio: turn a still image into a short video. Run with ``streamlit run app.py``.

``python3 app.py`` only checks the Python version, so that a setup command can start with it.
"""

import sys

# First, before anything that needs Python 3.11 (tomllib, Streamlit itself): one plain sentence
# instead of a traceback. This file keeps to syntax Python 3.6 can read (hence no
# ``from __future__ import annotations``, which 3.6 refuses before running a line).
if sys.version_info < (3, 11):  # noqa: UP036 - the point is to say so on older Pythons
    sys.exit(
        "Wan Studio needs Python 3.11 or newer, and this is Python "
        + ".".join(str(part) for part in sys.version_info[:3])
        + ": install a newer Python and run the command again with it."
    )
if "streamlit" not in sys.modules:  # run as `python3 app.py`, not by `streamlit run`
    print("Python " + ".".join(str(part) for part in sys.version_info[:3]) + " is fine.")
    sys.exit(0)

import logging

import streamlit as st

from components import draft, state
from components.job_view import APP_TITLE, announce_finished
from components.services import get_studio
from components.sidebar import render_sidebar
from studio.settings import SettingsError
from studio.store import EmptyDatabase

_log = logging.getLogger("wan_studio")


def main() -> None:
    """Configure the page, start (or reuse) the Studio, run the page, then draw the sidebar."""
    st.set_page_config(page_title=APP_TITLE, page_icon=":material/movie:", layout="wide")
    try:
        studio = get_studio()
    except (SettingsError, EmptyDatabase) as problem:
        # A wrong setting, or a history that is not there: the message names it and what to do.
        st.error(f"Wan Studio could not start. {problem}", icon=":material/error:")
        st.stop()
    except Exception:
        # Users see plain words; the details (which may name a database host) go to the log.
        _log.exception("Wan Studio could not start")
        st.error(
            "Wan Studio could not start: its data folder or its database could not be opened. "
            "Reload the page in a minute; if this stays, ask the person who runs Wan Studio "
            "to check where it keeps its data (the server's log says what went wrong).",
            icon=":material/error:",
        )
        st.stop()
    state.init_defaults(catalog=studio.catalog)
    session_id = state.session_id()
    draft.restore_draft(studio=studio, session_id=session_id)
    pages = [
        st.Page("pages/generate.py", title="Generate", icon=":material/movie:", default=True),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/models.py", title="Models & prices", icon=":material/sell:"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ]
    st.navigation(pages).run()
    # After the page, so its form reaches the browser before the totals are counted; the
    # sidebar's place on screen does not depend on when it is drawn. A job sent by the page
    # is watched from this run on, so whichever page is open hears when it ends.
    announce_finished(studio=studio, session_id=session_id)
    with st.sidebar:
        render_sidebar(studio=studio, session_id=session_id)


main()
