"""Several clips from one click: the "How many clips" choice, its price before the click, the send.

One clip keeps the form as it always was. Several takes, a few prompts (one a line) or two or
three models make a batch: the form shows how many clips, the total with its arithmetic and the
seconds of video before the click, asks once for a billed batch above the threshold, and the
click sends the batch with one submission id.
"""

from __future__ import annotations

import dataclasses

import streamlit as st

from components import state
from components.formatting import money_text, plain
from components.generate_form import (
    chosen_model,
    current_draft,
    render_blockers,
    with_frame_states,
)
from components.motion_ideas import render_motion_ideas
from components.signin import current_owner
from components.spending import render_limit_reached, render_spending_left, spending_now
from studio.catalog import Catalog
from studio.generation import FieldProblem, InvalidRequest, JobDraft
from studio.humane import money, plural
from studio.keys import KeyRequired
from studio.limits import SpendingLimitReached
from studio.records import BILLED, DEMO
from studio.service import Studio
from studio.variations import (
    MAX_CLIPS,
    MAX_MODELS,
    MIN_CLIPS,
    BatchQuote,
    VariationKind,
    Variations,
    quote_batch,
)

_SESSION = "session"  # keep the choice when the user visits another page

# Why a batch was refused before anything was sent: the clips' problems, the spending limit, or
# a key that was just forgotten.
Refusal = list[FieldProblem] | SpendingLimitReached | str | None

_CHOICE_LABELS = {
    state.ONE_CLIP: "One clip",
    VariationKind.SEEDS.value: "Several takes (different seeds)",
    VariationKind.PROMPTS.value: "A few prompts, one clip each",
    VariationKind.MODELS.value: "Compare models (2 or 3)",
}
_CHOICE_HELP = (
    "One clip makes one video. Several takes make the same frame and prompt move differently "
    "each time. A few prompts make one video per prompt line. Compare models makes the same "
    "video with two or three models."
)


def chosen_kind() -> str:
    """``one``, ``seeds``, ``prompts`` or ``models``: what the form makes on the next click."""
    return str(st.session_state.get(state.GEN_VARIATIONS) or state.ONE_CLIP)


def render_variations_choice(*, catalog: Catalog) -> None:
    """How many clips: one, several takes (a count), a few prompts, or two or three models."""
    state.keep_variations_valid()
    with st.container(key="gen-how-many"):
        st.selectbox(
            "How many clips?",
            state.VARIATION_CHOICES,
            key=state.GEN_VARIATIONS,
            format_func=_CHOICE_LABELS.__getitem__,
            on_change=state.start_variations,
            persist_state=_SESSION,
            help=_CHOICE_HELP,
        )
        kind = chosen_kind()
        if kind == VariationKind.SEEDS:
            st.number_input(
                "How many takes",
                min_value=MIN_CLIPS,
                max_value=MAX_CLIPS,
                step=1,
                key=state.GEN_TAKES,
                persist_state=_SESSION,
                help=f"From {MIN_CLIPS} to {MAX_CLIPS} clips, each with its own seed.",
            )
        elif kind == VariationKind.PROMPTS:
            # On a phone the prompts box is above, out of sight: say where it is.
            st.caption("Write your prompts, one a line, in the box under the first frame.")
        elif kind == VariationKind.MODELS:
            _render_models_to_compare(catalog=catalog)


def _render_models_to_compare(*, catalog: Catalog) -> None:
    spec = chosen_model(catalog=catalog)
    # Only models that take the same frames as the chosen one: a batch never asks for a frame
    # the form does not show.
    alike = [
        model_id
        for model_id, other in catalog.models.items()
        if other.needs_last_frame == spec.needs_last_frame
    ]
    chosen = st.session_state.get(state.GEN_COMPARE_MODELS) or []
    st.session_state[state.GEN_COMPARE_MODELS] = [model for model in chosen if model in alike]
    if len(alike) < MIN_CLIPS:
        st.caption(
            f"{spec.label} is the only model that takes a first and a last frame: choose "
            "another model above to compare models."
        )
        return
    st.multiselect(
        f"Models to compare ({MIN_CLIPS} or {MAX_MODELS})",
        alike,
        key=state.GEN_COMPARE_MODELS,
        format_func=lambda model_id: catalog.model(model_id).label,
        max_selections=MAX_MODELS,
        placeholder="Choose models",
        persist_state=_SESSION,
    )
    st.caption(
        "Each model uses the resolution and length above where it offers them, "
        "otherwise its own default."
    )


def chosen_variations() -> Variations | None:
    """The batch the form describes, or None for one clip."""
    values = st.session_state
    kind = chosen_kind()
    if kind == VariationKind.SEEDS:
        return Variations(VariationKind.SEEDS, count=int(values.get(state.GEN_TAKES) or 0))
    if kind == VariationKind.PROMPTS:
        return Variations.of_prompt_lines(values.get(state.GEN_PROMPT_LINES) or "")
    if kind == VariationKind.MODELS:
        models = tuple(values.get(state.GEN_COMPARE_MODELS) or ())
        return Variations(VariationKind.MODELS, models=models)
    return None


def render_prompt_lines(*, catalog: Catalog) -> None:
    """The prompts of a batch, one a line, in place of the single prompt box."""
    limit = catalog.limits.prompt_max_chars
    with st.container(key="gen-prompt-lines"):
        st.text_area(
            "Prompts, one a line (one video each)",
            key=state.GEN_PROMPT_LINES,
            placeholder="A slow push-in, golden light\nThe camera orbits her, hair in the wind",
            height=140,
            persist_state=_SESSION,
        )
        lines = Variations.of_prompt_lines(st.session_state.get(state.GEN_PROMPT_LINES) or "")
        counted = plural(len(lines.prompts), "prompt")
        st.caption(f"{counted} · up to {MAX_CLIPS} prompts of up to {limit} characters each")
        render_motion_ideas(one_a_line=True)


def batch_draft(*, catalog: Catalog) -> JobDraft:
    """The form's draft as the base of a batch: the prompt box is hidden while prompts vary."""
    draft = current_draft(catalog=catalog)
    if chosen_kind() == VariationKind.PROMPTS:
        draft = dataclasses.replace(draft, prompt="")
    return draft


def batch_problems(
    *, studio: Studio, draft: JobDraft, variations: Variations
) -> tuple[list[FieldProblem], list[JobDraft]]:
    """What blocks this batch, in the form's words, and each clip's draft when nothing does.

    The studio decides, as it does for the command line; the form only says a frame waiting
    for its fix as such.
    """
    checked = studio.plan_batch(draft, variations)
    return with_frame_states(checked.problems), checked.drafts


def render_batch_summary_and_submit(*, studio: Studio, session_id: str) -> None:
    """How many clips, the total with its arithmetic and seconds, the confirmation, the button.

    A click is sent before the box is drawn, so that the box shows the next batch: its
    confirmation unticked again.
    """
    variations = chosen_variations()
    if variations is None:
        return
    draft = batch_draft(catalog=studio.catalog)
    problems, drafts = batch_problems(studio=studio, draft=draft, variations=variations)
    api_key = state.session_api_key()
    billed = studio.key_for_new_job(api_key).billed
    batch_quote = _quote(drafts, studio=studio)
    refusal: Refusal = None
    if (submission_id := state.pending_submission()) is not None:
        if problems or batch_quote is None or not _confirmed(batch_quote, billed=billed):
            state.submission_done()
        else:
            refusal = _send_batch(
                studio=studio,
                draft=draft,
                variations=variations,
                submission_id=submission_id,
                session_id=session_id,
                api_key=api_key,
            )
    confirmed = True
    over_limit: object = None  # what blocks the batch: a period it does not fit in, or a refusal
    with st.container(border=True, key="gen-summary"):
        if batch_quote is not None:
            _render_batch_price(batch_quote, billed=billed)
            if isinstance(refusal, SpendingLimitReached):
                # The store's check refused the click (spent meanwhile): said once, in full.
                render_limit_reached(refusal)
                over_limit = refusal
            else:
                # What is left of the spending limits; a batch that does not fit whole is blocked.
                over_limit = render_spending_left(
                    status=spending_now(studio=studio, mode=BILLED if billed else DEMO),
                    price=batch_quote.total_usd,
                )
            if over_limit is None and batch_quote.needs_confirmation(billed=billed):
                confirmed = st.checkbox(
                    money_text(
                        f"Yes, spend {money(batch_quote.total_usd)} on "
                        f"{plural(batch_quote.clips, 'clip')}"
                    ),
                    key=_confirm_key(batch_quote),
                )
        size = variations.size
        st.button(
            f"Generate {plural(size, 'clip')}" if size >= MIN_CLIPS else "Generate clips",
            key=state.GEN_SUBMIT,
            type="primary",
            icon=":material/movie:",
            disabled=bool(problems)
            or batch_quote is None
            or over_limit is not None
            or not confirmed,
            on_click=state.request_submission,
            width="stretch",
        )
        if problems:
            render_blockers(problems)
        if isinstance(refusal, list):
            render_blockers(refusal)
        elif isinstance(refusal, str):
            st.error(plain(refusal), icon=":material/block:")


def _confirm_key(batch_quote: BatchQuote) -> str:
    return state.batch_confirm_key(batch_quote.clips, str(batch_quote.total_usd))


def _confirmed(batch_quote: BatchQuote, *, billed: bool) -> bool:
    """Whether the batch may go: no question to ask, or its box ticked (as the click left it)."""
    if not batch_quote.needs_confirmation(billed=billed):
        return True
    return bool(st.session_state.get(_confirm_key(batch_quote)))


def _quote(drafts: list[JobDraft], *, studio: Studio) -> BatchQuote | None:
    if not drafts:
        return None
    try:
        return quote_batch(drafts, studio.catalog)
    except InvalidRequest:  # said by the clips' own problems
        return None


def _render_batch_price(batch_quote: BatchQuote, *, billed: bool) -> None:
    arithmetic = batch_quote.arithmetic()
    price = arithmetic if billed else f"Demo, not billed: would cost {arithmetic}"
    # Escaped: the arithmetic holds dollar amounts, which Markdown would read as a formula.
    with st.container(key="gen-estimate"):
        st.markdown(
            f":material/payments: Price: **{money_text(price)}**  \n"
            f":material/movie: {batch_quote.summary()}"
        )


def _send_batch(
    *,
    studio: Studio,
    draft: JobDraft,
    variations: Variations,
    submission_id: str,
    session_id: str,
    api_key: str | None,
) -> Refusal:
    """Send the batch of one click; say how it went in a toast, or return why it was refused."""
    try:
        batch = studio.submit_batch(
            draft,
            variations,
            submission_id=submission_id,
            session_id=session_id,
            api_key=api_key,
            key_holder=state.key_holder().id,
            owner=current_owner(),
        )
    except (InvalidRequest, SpendingLimitReached, KeyRequired) as refused:
        # Refused before anything was sent: the click is used up, the next one makes a new batch.
        state.submission_done()
        if isinstance(refused, InvalidRequest):
            return list(refused.problems)
        return refused if isinstance(refused, SpendingLimitReached) else str(refused)
    # Any other failure keeps the click's id, so trying again finds the batch it may have made
    # instead of sending a second one.
    state.submission_done()
    state.note_batch_sent()
    went = len(batch.went)
    if went == len(batch.jobs):
        st.toast(f"{plural(went, 'clip')} on the way.", icon=":material/movie:")
    else:
        st.toast(
            f"{went} of {plural(len(batch.jobs), 'clip')} sent: the batch says which did not go.",
            icon=":material/error:",
        )
    return None
