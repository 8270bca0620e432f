"""Models & prices: what each model is for, what it costs, and a calculator."""

from __future__ import annotations

import streamlit as st

from components.app_shell import run_inside_the_app
from components.services import get_studio, tables_ready

# Before the tables below import pandas, which the server may be importing in the background.
tables_ready()

from components.prices import render_calculator, render_catalog_table  # noqa: E402


def main() -> None:
    """The catalog as a table, then the calculator."""
    run_inside_the_app()
    catalog = get_studio().catalog
    st.title("Models & prices")
    st.caption("Every model animates your first frame; they differ in quality, speed and price.")
    render_catalog_table(catalog=catalog)
    render_calculator(catalog=catalog)


main()
