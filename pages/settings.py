"""Settings: the mode, the API key (masked), and where Wan Studio keeps its data."""

from __future__ import annotations

import streamlit as st

from components.app_shell import run_inside_the_app
from components.limits_settings import render_spending_limits
from components.services import get_studio
from components.settings_view import (
    render_for_administrators,
    render_mode_and_key,
    render_session_key,
    render_waiting_jobs,
)
from components.signin import may_set_limits
from components.team import render_people_and_limits


def main() -> None:
    """Mode and key, the typed key, waiting jobs, spending limits, then the administrators'."""
    run_inside_the_app()
    studio = get_studio()
    st.title("Settings")
    render_mode_and_key(studio=studio)
    render_session_key(studio=studio)
    render_waiting_jobs(studio=studio)
    render_spending_limits(studio=studio)
    render_people_and_limits(studio=studio)
    if may_set_limits():  # with sign-in, for administrators only
        render_for_administrators(studio=studio)


main()
