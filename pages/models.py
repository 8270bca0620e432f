"""Models & prices: what each model is for, what it costs, and a calculator."""

from __future__ import annotations

import streamlit as st

from components.prices import render_calculator, render_catalog_table
from components.services import get_studio


def main() -> None:
    """The catalog as a table, then the calculator."""
    catalog = get_studio().catalog
    st.title("Models & prices")
    st.caption("Every model animates your first frame; they differ in quality, speed and price.")
    render_catalog_table(catalog=catalog)
    render_calculator(catalog=catalog)


main()
