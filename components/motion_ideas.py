"""Motion ideas under the prompt: one click adds a camera move or a subject's motion."""

from __future__ import annotations

import functools
import logging
import tomllib

import streamlit as st

from components import state
from studio.ideas import MotionIdea, MotionIdeasError, default_motion_ideas, groups, with_idea

_log = logging.getLogger("wan_studio")


def render_motion_ideas(*, one_a_line: bool = False) -> None:
    """A row of starters per group; choosing one adds it to the prompt and clears the choice.

    ``one_a_line``: the prompts of a batch, one a line, where each idea starts a new line.
    """
    ideas = usable_motion_ideas()
    if not ideas:
        return
    rows = groups(ideas)
    # Folded: open, the rows are taller than the prompt box, and the button should stay in view.
    with (
        st.container(key="gen-motion-ideas"),
        st.expander("Need an idea? Camera moves and motions", icon=":material/lightbulb:"),
    ):
        st.caption(
            "Click one to add it as a new prompt line."
            if one_a_line
            else "Click one to add it to your prompt."
        )
        for group, ideas in rows.items():
            st.pills(
                group,
                [idea.label for idea in ideas],
                key=state.motion_idea_key(group),
                on_change=_add_chosen_idea_line if one_a_line else _add_chosen_idea,
                args=(ideas, state.motion_idea_key(group)),
            )


@functools.cache
def usable_motion_ideas() -> tuple[MotionIdea, ...]:
    """The shipped ideas, or none when their file is broken: a typo there must not stop Generate.

    Cached, so the broken file is logged once per process rather than on every rerun.
    """
    try:
        return default_motion_ideas()
    except (MotionIdeasError, tomllib.TOMLDecodeError) as broken:
        _log.error("the motion ideas are left out: %s", broken)
        return ()


def _add_chosen_idea(ideas: list[MotionIdea], key: str) -> None:
    chosen = st.session_state.get(key)
    idea = next((idea for idea in ideas if idea.label == chosen), None)
    if idea is not None:
        prompt = st.session_state.get(state.GEN_PROMPT) or ""
        st.session_state[state.GEN_PROMPT] = with_idea(prompt, idea)
    # A starter is an action, not a setting: it is unselected again at once.
    st.session_state[key] = None


def _add_chosen_idea_line(ideas: list[MotionIdea], key: str) -> None:
    chosen = st.session_state.get(key)
    idea = next((idea for idea in ideas if idea.label == chosen), None)
    if idea is not None:
        lines = (st.session_state.get(state.GEN_PROMPT_LINES) or "").rstrip("\n")
        line = with_idea("", idea)
        if line.casefold() not in (each.strip().casefold() for each in lines.splitlines()):
            st.session_state[state.GEN_PROMPT_LINES] = f"{lines}\n{line}" if lines else line
    st.session_state[key] = None
