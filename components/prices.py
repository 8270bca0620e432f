"""The Models & prices page: the catalog as a table and a price calculator."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import state
from components.formatting import money
from studio.catalog import Catalog, ModelSpec
from studio.pricing import LISTED_CLIP_SECONDS, estimate_cost, listed_price_differs


def render_catalog_table(*, catalog: Catalog) -> None:
    """One block of rows per model: what it is for, then each resolution's prices."""
    rows = []
    for spec in catalog.models.values():
        for position, resolution in enumerate(spec.resolutions):
            first = position == 0
            clip = estimate_cost(spec, resolution, LISTED_CLIP_SECONDS)
            listed = spec.listed_clip_price.get(resolution)
            rows.append(
                {
                    "Model": f"**{_title(spec)}**  \n`{spec.id}`" if first else "",
                    "What it is for": spec.description if first else "",
                    "Lengths": lengths_text(spec.durations) if first else "",
                    "Resolution": resolution,
                    "Per second": money(spec.price_per_second[resolution]),
                    "5 s clip": money(clip),
                    "Price list says": (
                        money(listed) if listed_price_differs(spec, resolution) else "same"
                    ),
                }
            )
    with st.container(key="prices-table"):
        st.table(pd.DataFrame(rows), hide_index=True, border="horizontal")
    notes = [
        "You pay per second of video that was made; failed jobs cost nothing. "
        "“5 s clip” is the per-second rate × 5 s, which is what you are billed. "
        "Where the gateway's own price list shows a different 5-second price, it is shown too."
    ]
    notes += [
        cheaper_note(spec, lower, higher)
        for spec in catalog.models.values()
        for lower, higher in cheaper_higher_resolutions(spec, catalog=catalog)
    ]
    with st.container(key="prices-notes"):
        for note in notes:
            st.caption(note)


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
        f"{spec.label} costs less per second at {higher} ({money(prices[higher])}/s) than at "
        f"{lower} ({money(prices[lower])}/s), as listed by the gateway."
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
                key=f"{state.PRICES_RESOLUTION}.{spec.id}",
            )
        with right:
            duration = st.selectbox(
                "Length",
                spec.durations,
                index=spec.durations.index(spec.default_duration),
                format_func=lambda seconds: f"{seconds} seconds",
                key=f"{state.PRICES_DURATION}.{spec.id}",
            )
        cost = estimate_cost(spec, resolution, duration)
        rate = spec.price_per_second[resolution]
        st.metric(
            "This clip costs",
            money(cost),
            help="Billed per second of finished video; failed jobs are free.",
        )
        st.caption(f"{money(rate)} per second × {duration} s at {resolution} with {spec.label}.")
        for lower, higher in cheaper_higher_resolutions(spec, catalog=catalog):
            if resolution in (lower, higher):
                st.caption(cheaper_note(spec, lower, higher))
