"""Settings: the mode, the API key (masked), and where Wan Studio keeps its data."""

from __future__ import annotations

import streamlit as st

from components.services import get_studio
from components.settings_view import (
    render_mode_and_key,
    render_session_key,
    render_waiting_jobs,
    render_where_things_are,
)


def main() -> None:
    """Mode and key first, then the session key, waiting jobs and the folders."""
    studio = get_studio()
    st.title("Settings")
    render_mode_and_key(studio=studio)
    render_session_key(studio=studio)
    render_waiting_jobs(studio=studio)
    render_where_things_are(studio=studio)


main()
