"""Compare: two to four finished clips side by side, played in step, and what differs."""

from __future__ import annotations

import streamlit as st

from components import state
from components.app_shell import run_inside_the_app
from components.formatting import viewer_timezone
from components.services import get_studio, tables_ready
from components.sidebar import render_mode_line

# Before the table of differences imports pandas, which the server may be importing in the
# background.
tables_ready()

from components.compare import (  # noqa: E402
    render_clip_picker,
    render_clips_in_step,
    render_differences,
    render_empty_choice,
)


def main() -> None:
    """The picker, then the clips in step with one play button and slider, then what differs."""
    run_inside_the_app()
    studio = get_studio()
    session_id = state.session_id()
    st.title("Compare clips")
    render_mode_line(studio=studio, session_id=session_id)
    st.caption("Play finished clips side by side, in step, and see which settings differ.")
    jobs = render_clip_picker(studio=studio, session_id=session_id, zone=viewer_timezone())
    if len(jobs) < 2:
        render_empty_choice(picked=len(jobs))
        return
    render_clips_in_step(studio=studio, jobs=jobs)
    render_differences(studio=studio, jobs=jobs)


main()
