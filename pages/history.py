"""History: every job, its cost and its video, across sessions and restarts."""

from __future__ import annotations

import dataclasses

import streamlit as st

from components import state
from components.app_shell import run_inside_the_app
from components.formatting import viewer_timezone
from components.services import get_studio, tables_ready
from components.sidebar import render_mode_line, session_totals
from components.team import render_team_total, render_whose_videos, render_yours_heading

# Before the table's module imports pandas, which the server may be importing in the background.
tables_ready()

from components.batch_history import render_batches  # noqa: E402
from components.history import (  # noqa: E402
    render_empty_history,
    render_export,
    render_filters,
    render_job_table,
    render_open_job,
    render_totals,
)


def main() -> None:
    """Totals, filters, the table, then the opened job (or a first step when there are none)."""
    run_inside_the_app()
    studio = get_studio()
    zone = viewer_timezone()
    st.title("History")
    render_mode_line(studio=studio, session_id=state.session_id())
    st.caption("Every video made here, with its settings and what it cost.")
    if render_empty_history(studio=studio):
        return
    owner = render_whose_videos()
    totals = session_totals(studio=studio, session_id=state.session_id())
    render_yours_heading()
    render_totals(totals=totals, catalog=studio.catalog)
    render_team_total(studio=studio)
    render_batches(studio=studio, zone=zone, owner=owner)
    filters = dataclasses.replace(render_filters(catalog=studio.catalog, zone=zone), owner=owner)
    jobs = render_job_table(studio=studio, filters=filters, zone=zone)
    render_open_job(studio=studio, jobs=jobs, zone=zone)
    render_export(studio=studio, filters=filters)


main()
