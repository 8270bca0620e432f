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

import streamlit as st

from components import draft, state
from components.app_shell import app_run
from components.job_view import APP_TITLE, announce_finished
from components.services import (
    get_catalog,
    get_studio,
    import_later_pages_soon,
    note_first_run,
)
from components.sidebar import render_sidebar
from components.signin import let_in, render_signed_in_line
from components.styles import render_app_style


def main() -> None:
    """Configure the page, run it, then draw the sidebar.

    The Studio is opened (and what it needs imported) where the page first needs it, so the
    form is drawn from the catalog before. Last, what only the other pages need starts
    importing too.
    """
    note_first_run()
    state.start_run()
    st.set_page_config(page_title=APP_TITLE, page_icon=":material/movie:", layout="wide")
    # With sign-in configured, a signed-out visitor gets the sign-in page and nothing else.
    if not let_in():
        return
    render_app_style()
    state.init_defaults(catalog=get_catalog())
    # A session that starts from its address (a browser refresh) gets its draft back from the
    # store before the form is drawn. A first visit has no address yet: its form is drawn before
    # the store is opened.
    from_address = state.SESSION_QUERY_PARAM in st.query_params
    if from_address:
        draft.restore_draft(studio=get_studio(), session_id=state.session_id())
    # Read again: someone else's address leaves this session with an id of its own.
    session_id = state.session_id()
    pages = [
        st.Page("pages/generate.py", title="Generate", icon=":material/movie:", default=True),
        st.Page("pages/history.py", title="History", icon=":material/history:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("pages/models.py", title="Models & prices", icon=":material/sell:"),
        st.Page("pages/settings.py", title="Settings", icon=":material/settings:"),
    ]
    with app_run():
        st.navigation(pages).run()
    # After the page, so its form reaches the browser before the totals are counted; the
    # sidebar's place on screen does not depend on when it is drawn. A job sent by the page
    # is watched from this run on, so whichever page is open hears when it ends.
    studio = get_studio()
    announce_finished(studio=studio, session_id=session_id)
    with st.sidebar:
        render_signed_in_line()
        render_sidebar(studio=studio, session_id=session_id)
    import_later_pages_soon()


main()
