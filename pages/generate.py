"""Generate: choose a first frame, describe the motion, see the price, make a video."""

from __future__ import annotations

import streamlit as st

from components import state
from components.draft import save_draft
from components.first_frame import render_frame_input
from components.generate_form import (
    chosen_model,
    render_model_options,
    render_prompts,
    render_summary_and_submit,
    render_switches_and_seed,
)
from components.job_cards import render_session_jobs
from components.services import get_studio


def main() -> None:
    """Frames on the left, options and the button on the right, this session's videos below."""
    studio = get_studio()
    session_id = state.session_id()
    st.title("Generate a video")
    st.caption("Bring a still image to life: add a first frame, say what should happen, generate.")
    if notice := state.pop_notice():
        st.success(notice, icon=":material/replay:")
    frames, options = st.columns([5, 6], gap="large")
    with frames:
        render_frame_input(
            studio=studio,
            slot=state.FIRST_FRAME,
            title="First frame",
            hint="The picture your video starts from.",
        )
        if chosen_model(catalog=studio.catalog).needs_last_frame:
            render_frame_input(
                studio=studio,
                slot=state.LAST_FRAME,
                title="Last frame",
                hint="The picture your video ends on.",
            )
    with options:
        render_model_options(catalog=studio.catalog)
        render_prompts(catalog=studio.catalog)
        render_switches_and_seed(catalog=studio.catalog)
        render_summary_and_submit(studio=studio, session_id=session_id)
    render_session_jobs(studio=studio, session_id=session_id)
    # Last, so that a refresh brings back the form as this run left it.
    save_draft(studio=studio, session_id=session_id)


main()
