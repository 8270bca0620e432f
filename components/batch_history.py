"""History's "Made together": the recent batches with what varied and what each cost, and a
chooser that narrows the page to one batch's clips."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import streamlit as st

from components import state
from components.batch_view import batch_cost, batch_counts
from components.formatting import local_time, money_text
from studio.catalog import Catalog
from studio.humane import shorten
from studio.records import Batch, JobFilter
from studio.service import Studio
from studio.variations import VariationKind

# The batches listed (newest first) and offered in the chooser.
RECENT_BATCHES = 50
LISTED_BATCHES = 6
_ALL_JOBS = "All jobs"


def what_varied(batch: Batch, *, catalog: Catalog) -> str:
    """``Several takes``, ``A few prompts``, ``Compare models: Wan 2.2 Flash, Wan 2.1 Turbo``."""
    if batch.kind == VariationKind.SEEDS:
        return "Several takes (different seeds)"
    if batch.kind == VariationKind.PROMPTS:
        return "A few prompts"
    if batch.kind == VariationKind.MODELS:
        models = dict.fromkeys(job.model for job in batch.clips)
        labels = [
            catalog.models[model].label if model in catalog.models else model for model in models
        ]
        return "Compare models: " + ", ".join(labels)
    return "Made together"


def batch_title(
    batch: Batch, *, catalog: Catalog, zone: tzinfo, now: datetime | None = None
) -> str:
    """One line for a chooser: ``Today 15:40 · Several takes (different seeds) · 4 clips``."""
    when = local_time(batch.created_at, zone=zone, now=now)
    return f"{when} · {what_varied(batch, catalog=catalog)} · {batch_counts(batch)}"


def render_batches(*, studio: Studio, zone: tzinfo, owner: str | None = None) -> None:
    """The recent batches, each with its cost and a button to show its clips, and the chooser.

    Nothing is drawn when no batch was ever made.
    """
    batches = studio.batches(JobFilter(owner=owner), limit=RECENT_BATCHES)
    chosen = state.history_batch()
    if not batches and chosen is None:
        return
    by_id = {batch.id: batch for batch in batches}
    if chosen is not None and chosen not in by_id and (missing := studio.batch(chosen)):
        by_id[chosen] = missing
    catalog = studio.catalog
    now = datetime.now(UTC)
    expander = st.expander(
        "Made together", icon=":material/burst_mode:", expanded=chosen is not None
    )
    with expander, st.container(key="history-batches"):
        st.selectbox(
            "Show the clips of",
            [None, *by_id],
            key=state.HIST_BATCH,
            format_func=lambda batch_id: (
                _ALL_JOBS
                if batch_id is None
                else batch_title(by_id[batch_id], catalog=catalog, zone=zone, now=now)
            ),
        )
        for batch in batches[:LISTED_BATCHES]:
            _render_batch_row(batch, catalog=catalog, zone=zone, now=now)


def _render_batch_row(batch: Batch, *, catalog: Catalog, zone: tzinfo, now: datetime) -> None:
    # Two short lines and a button: readable on a phone without sideways scrolling.
    with st.container(border=True, key=f"history-batch-{batch.id}"):
        when = local_time(batch.created_at, zone=zone, now=now)
        st.markdown(f"**{when}** · {what_varied(batch, catalog=catalog)}")
        st.caption(money_text(f"{batch_counts(batch)} · {batch_cost(batch)}"))
        prompts = dict.fromkeys(job.prompt for job in batch.clips if job.prompt)
        if prompts:
            st.text(shorten(" / ".join(prompts), 90))
        if state.history_batch() == batch.id:
            st.button(
                "Show every job again",
                key=state.batch_action_key(batch.id, "show-all"),
                icon=":material/filter_list_off:",
                on_click=state.show_batch_in_history,
                args=(None,),
                help="The list below shows only this batch's clips.",
            )
        else:
            st.button(
                "Show these clips",
                key=state.batch_action_key(batch.id, "show-in-history"),
                icon=":material/filter_list:",
                on_click=state.show_batch_in_history,
                args=(batch.id,),
            )


def render_show_batch_button(*, batch_id: int | None) -> None:
    """On an opened job that was made with others: show the clips of its batch."""
    if batch_id is None or state.history_batch() == batch_id:
        return
    st.button(
        "Show this batch",
        key=state.batch_action_key(batch_id, "show-from-job"),
        icon=":material/burst_mode:",
        on_click=state.show_batch_in_history,
        args=(batch_id,),
        help="The clips made with this one, by the same click.",
    )
