"""Generate: what you put in on the left, the video you get on the right."""

from __future__ import annotations

import streamlit as st

from components import state
from components.app_shell import run_inside_the_app
from components.draft import save_draft
from components.first_frame import render_frame_input
from components.generate_form import (
    chosen_model,
    render_model_options,
    render_negative_prompt,
    render_prompt_switch,
    render_prompts,
    render_summary_and_submit,
    render_watermark_and_seed,
)
from components.job_view import render_session_jobs
from components.services import get_catalog, get_studio
from components.sidebar import render_mode_line
from components.variations_form import (
    chosen_kind,
    render_batch_summary_and_submit,
    render_prompt_lines,
    render_variations_choice,
)
from studio.variations import VariationKind


def main() -> None:
    """Frames and prompt, then options, price and button; the job and the gallery on the right.

    The whole form is drawn from the catalog and the settings before the page waits for the
    Studio (on a fresh server, while the engine is still being imported): the frame input opens
    it only once an image arrives, and the button needs it only once it can be clicked. The mode
    line keeps its place under the title and is filled once the Studio is there.
    """
    run_inside_the_app()
    catalog = get_catalog()
    session_id = state.session_id()
    st.title("Generate a video")
    mode_line = st.container()
    if notice := state.pop_notice():
        st.success(notice, icon=":material/replay:")
    # Three columns on a wide screen keep the button above the fold; a phone stacks them in
    # this order: frame, prompt, options, price and button, then the result.
    frame_and_prompt, options, result = st.columns([3, 3, 5], gap="medium")
    with options:
        render_model_options(catalog=catalog)
        render_prompt_switch()
        with st.expander("More options", icon=":material/tune:"):
            render_negative_prompt(catalog=catalog)
            render_watermark_and_seed(catalog=catalog)
        render_variations_choice(catalog=catalog)
    with frame_and_prompt:
        render_frame_input(
            catalog=catalog,
            open_studio=get_studio,
            slot=state.FIRST_FRAME,
            title="First frame",
            hint="The picture your video starts from.",
        )
        if chosen_model(catalog=catalog).needs_last_frame:
            render_frame_input(
                catalog=catalog,
                open_studio=get_studio,
                slot=state.LAST_FRAME,
                title="Last frame",
                hint="The picture your video ends on.",
            )
        # "A few prompts" puts its list where the single prompt was.
        if chosen_kind() == VariationKind.PROMPTS:
            render_prompt_lines(catalog=catalog)
        else:
            render_prompts(catalog=catalog)
    with options:
        if chosen_kind() == state.ONE_CLIP:
            render_summary_and_submit(
                catalog=catalog, open_studio=get_studio, session_id=session_id
            )
        else:
            render_batch_summary_and_submit(studio=get_studio(), session_id=session_id)
    studio = get_studio()
    with mode_line:
        render_mode_line(studio=studio, session_id=session_id)
    with result, st.container(key="gen-result"):
        render_session_jobs(studio=studio, session_id=session_id)
    # Last, so that a refresh brings back the form as this run left it.
    save_draft(studio=studio, session_id=session_id)


main()
