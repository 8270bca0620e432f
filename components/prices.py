"""The Models & prices page: the catalog as a table and a price calculator."""

from __future__ import annotations

import streamlit as st

from components import state
from components.formatting import money_text
from studio.catalog import Catalog, ModelSpec
from studio.humane import clip_price, money, per_second
from studio.pricing import LISTED_CLIP_SECONDS, estimate_cost, listed_price_differs


def render_catalog_table(*, catalog: Catalog) -> None:
    """A card per model: what it is for, its lengths, and each resolution's price."""
    models = list(catalog.models.values())
    with st.container(key="prices-table"):
        for row_start in range(0, len(models), _CARDS_PER_ROW):
            columns = st.columns(_CARDS_PER_ROW, gap="medium")
            for column, spec in zip(
                columns, models[row_start : row_start + _CARDS_PER_ROW], strict=False
            ):
                with column, st.container(border=True, key=f"prices-model-{spec.id}"):
                    _render_model_card(spec)
    notes = [
        "You pay per second of video that was made; failed jobs cost nothing. A 5-second clip "
        "costs the per-second rate × 5 s. Where Pixazo's own price list shows a different "
        "5-second price, it is shown beside ours: you are billed per second."
    ]
    notes += [
        cheaper_note(spec, lower, higher)
        for spec in catalog.models.values()
        for lower, higher in cheaper_higher_resolutions(spec, catalog=catalog)
    ]
    with st.container(key="prices-notes"):
        for note in notes:
            st.caption(note)


# Three cards a row on a laptop; Streamlit stacks the columns on a phone.
_CARDS_PER_ROW = 3


def _render_model_card(spec: ModelSpec) -> None:
    st.markdown(f"**{_title(spec)}**")
    st.caption(spec.description)
    st.markdown(f"Lengths: {lengths_text(spec.durations)}")
    for resolution in spec.resolutions:
        st.markdown(resolution_price_line(spec, resolution))


def resolution_price_line(spec: ModelSpec, resolution: str) -> str:
    """``720P: $0.045/s · $0.225 for 5 s (Pixazo's list says $0.200)``."""
    clip = estimate_cost(spec, resolution, LISTED_CLIP_SECONDS)
    line = (
        f"{resolution}: {per_second(spec.price_per_second[resolution])} · "
        f"{money(clip)} for {LISTED_CLIP_SECONDS}\u00a0s"
    )
    if listed_price_differs(spec, resolution):
        line += f" (Pixazo's list says {money(spec.listed_clip_price[resolution])})"
    return line


def lengths_text(durations: tuple[int, ...]) -> str:
    """``5 s``, ``3–5 s`` for a run of whole seconds, else ``3 s, 5 s`` that never breaks a unit."""
    if len(durations) > 1 and list(durations) == list(range(durations[0], durations[-1] + 1)):
        return f"{durations[0]}–{durations[-1]}\u00a0s"
    return ", ".join(f"{seconds}\u00a0s" for seconds in durations)


def cheaper_higher_resolutions(spec: ModelSpec, *, catalog: Catalog) -> list[tuple[str, str]]:
    """Pairs (lower, higher) of a model's resolutions where the higher costs less per second."""
    by_size = sorted(spec.resolutions, key=lambda resolution: catalog.tier_pixels[resolution])
    prices = spec.price_per_second
    return [
        (lower, higher)
        for position, lower in enumerate(by_size)
        for higher in by_size[position + 1 :]
        if prices[higher] < prices[lower]
    ]


def cheaper_note(spec: ModelSpec, lower: str, higher: str) -> str:
    """Say that a higher resolution costing less is the gateway's price, not a mistake."""
    prices = spec.price_per_second
    return (
        f"{spec.label} costs less per second at {higher} ({per_second(prices[higher])}) than at "
        f"{lower} ({per_second(prices[lower])}): that is Pixazo's price, not a mistake."
    )


def _title(spec: ModelSpec) -> str:
    return f"{spec.label} (recommended)" if spec.recommended else spec.label


def render_calculator(*, catalog: Catalog) -> None:
    """Pick a model, a resolution and a length; see what the clip costs."""
    with st.container(border=True, key="prices-calculator"):
        st.subheader("Price calculator")
        models = list(catalog.models)
        left, middle, right = st.columns(3)
        with left:
            model_id = st.selectbox(
                "Model",
                models,
                format_func=lambda model: catalog.model(model).label,
                key=state.PRICES_MODEL,
            )
        spec = catalog.model(model_id)
        with middle:
            resolution = st.selectbox(
                "Resolution",
                spec.resolutions,
                index=spec.resolutions.index(spec.default_resolution),
                key=state.prices_choice_key(state.PRICES_RESOLUTION, spec.id),
            )
        with right:
            duration = st.selectbox(
                "Length",
                spec.durations,
                index=spec.durations.index(spec.default_duration),
                format_func=lambda seconds: f"{seconds} seconds",
                key=state.prices_choice_key(state.PRICES_DURATION, spec.id),
            )
        cost = estimate_cost(spec, resolution, duration)
        st.metric(
            "This clip costs",
            money(cost),
            help="Billed per second of finished video; failed jobs are free.",
        )
        st.caption(money_text(f"{clip_price(cost, duration)} at {resolution} with {spec.label}."))
        for lower, higher in cheaper_higher_resolutions(spec, catalog=catalog):
            if resolution in (lower, higher):
                st.caption(cheaper_note(spec, lower, higher))
