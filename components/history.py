"""The History page: filters, running totals, a page of jobs, one job opened, reuse and export."""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from components import state
from components.batch_history import render_show_batch_button
from components.compare import open_compare
from components.first_frame import frame_from_prepared
from components.formatting import local_day_end, local_day_start, local_time, money_text
from components.job_view import (
    render_cost,
    render_download,
    render_favourite_toggle,
    render_job_actions,
    render_job_media,
    render_settings_download,
    render_status_line,
    render_timing,
    render_what_went_wrong,
)
from components.sidebar import demo_words, pending_words, totals_rows, would_have_cost
from components.signin import current_owner
from components.team import made_by
from studio.catalog import Catalog
from studio.compare import can_compare
from studio.humane import money, plural, short_cost, shorten
from studio.records import BILLED, DEMO, Job, JobFilter, JobStatus, ModeSpend, Totals
from studio.service import Studio

# Rows per page: the table stays fast however many jobs the store holds.
PAGE_SIZE = 50
_ANY_TIME, _TODAY, _LAST_7, _LAST_30, _BETWEEN = (
    "Any time",
    "Today",
    "Last 7 days",
    "Last 30 days",
    "Between dates…",
)
_MODES = {"Both": None, "Billed": BILLED, "Demo": DEMO}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def render_totals(*, totals: Totals, catalog: Catalog) -> None:
    """Billed spend and demo videos for this session, today and all time, then by model."""
    never_billed = totals.all_time.billed.jobs == 0
    with st.container(key="history-totals"):
        columns = st.columns(3)
        for column, (name, spend) in zip(columns, totals_rows(totals), strict=True):
            with column:
                if never_billed:
                    st.metric(
                        name,
                        plural(spend.demo.videos, "demo video"),
                        border=True,
                        help="Demo videos are made on this computer and are never billed; "
                        "the amount is what they would have cost.",
                    )
                    st.caption(money_text(would_have_cost(spend.demo)))
                else:
                    st.metric(
                        name,
                        money(spend.billed.cost_usd),
                        border=True,
                        help="Billed spend: what finished videos cost on your API key.",
                    )
                    st.caption(_counts(spend))
        if totals.by_model:
            _render_by_model(totals=totals, catalog=catalog)


def _counts(spend: ModeSpend) -> str:
    billed, demo = spend.billed, spend.demo
    said = "none billed"
    if billed.videos:
        said = f"{plural(billed.videos, 'video')} billed, {billed.seconds} s"
    if billed.pending:
        said += f" · {pending_words(billed)}"
    if demo.jobs:
        said += f" · demo, not billed: {demo_words(demo)}"
    return money_text(said)


def _render_by_model(*, totals: Totals, catalog: Catalog) -> None:
    table = pd.DataFrame(
        [
            {
                "Model": _model_label(catalog, model),
                "Billed videos": spend.billed.videos,
                "Billed seconds": spend.billed.seconds,
                "Spent": money(spend.billed.cost_usd),
                "Demo videos": spend.demo.videos,
                "Demo would have cost": money(spend.demo.cost_usd),
            }
            for model, spend in totals.by_model.items()
        ]
    )
    with st.expander("By model", icon=":material/bar_chart:"):
        table_column, chart_column = st.columns([3, 2])
        with table_column:
            st.dataframe(table, hide_index=True, key=state.HIST_BY_MODEL)
        with chart_column:
            st.bar_chart(
                table.set_index("Model")[["Billed videos", "Demo videos"]],
                height=220,
                y_label="videos",
                color=["#4F5BD5", "#A9B0C8"],
            )


def _model_label(catalog: Catalog, model_id: str) -> str:
    spec = catalog.models.get(model_id)
    return spec.label if spec else model_id


def render_filters(
    *, catalog: Catalog, zone: tzinfo, now: Callable[[], datetime] = _utcnow
) -> JobFilter:
    """Model, status, billed or demo, when, and words in the prompt; ``now`` dates "Today"."""
    with st.container(key="history-filters"):
        text_column, model_column, status_column = st.columns([3, 2, 2])
        with text_column:
            text = st.text_input(
                "Search",
                key=state.HIST_TEXT,
                placeholder="Words from the prompt or the image's name",
                icon=":material/search:",
            )
        with model_column:
            models = st.multiselect(
                "Model",
                list(catalog.models),
                key=state.HIST_MODELS,
                format_func=partial(_model_label, catalog),
                placeholder="All models",
            )
        with status_column:
            statuses = st.multiselect(
                "Status",
                list(JobStatus),
                key=state.HIST_STATUSES,
                format_func=lambda status: status.label,
                placeholder="Any status",
            )
        # At the foot of the row, the toggle (its label beside it, not above) lines up with the
        # controls next to it.
        when_column, dates_column, mode_column, favourite_column = st.columns(
            [2, 2, 3, 2], vertical_alignment="bottom"
        )
        since, until = _render_when(
            when_column=when_column, dates_column=dates_column, zone=zone, now=now
        )
        with mode_column:
            mode_name = st.segmented_control(
                "Billed or demo",
                list(_MODES),
                key=state.HIST_MODE,
                default="Both",
                required=True,
            )
        with favourite_column:
            favourites_only = st.toggle("Favourites only", key=state.HIST_FAVOURITES)
    return JobFilter(
        models=models or None,
        statuses=statuses or None,
        mode=_MODES[mode_name],
        since=since,
        until=until,
        text=text,
        favourites_only=favourites_only,
        batch_id=state.history_batch(),
    )


def _render_when(
    *, when_column: Any, dates_column: Any, zone: tzinfo, now: Callable[[], datetime]
) -> tuple[datetime | None, datetime | None]:
    """The "When" choice (and the dates, between two) as the start and end it filters on."""
    with when_column:
        when = st.selectbox(
            "When", (_ANY_TIME, _TODAY, _LAST_7, _LAST_30, _BETWEEN), key=state.HIST_WHEN
        )
    today = now().astimezone(zone).date()
    if when == _BETWEEN:
        with dates_column:
            picked = st.date_input(
                "Dates", value=(today - timedelta(days=7), today), key=state.HIST_DATES
            )
        return _date_range(picked, zone=zone)
    if when == _ANY_TIME:
        return None, None
    days = {_TODAY: 0, _LAST_7: 6, _LAST_30: 29}[when]
    return local_day_start(today - timedelta(days=days), zone=zone), None


def _date_range(picked: Any, *, zone: tzinfo) -> tuple[datetime | None, datetime | None]:
    days = [day for day in (picked if isinstance(picked, tuple | list) else (picked,)) if day]
    if not days:
        return None, None
    first: date = days[0]
    last: date = days[-1]
    return local_day_start(first, zone=zone), local_day_end(last, zone=zone)


def render_empty_history(*, studio: Studio) -> bool:
    """With no jobs at all, say where videos come from and return True; else return False."""
    if studio.count_history() > 0:
        return False
    st.info(
        "No videos yet. Every video you make appears here, with its settings and what it cost, "
        "so you can play it, download it or make it again.",
        icon=":material/video_library:",
    )
    st.page_link("pages/generate.py", label="Make your first video", icon=":material/movie:")
    return True


def render_job_table(*, studio: Studio, filters: JobFilter, zone: tzinfo) -> list[Job]:
    """One page of matching jobs as a table with thumbnails; returns the jobs shown."""
    total = studio.count_history(filters)
    with st.container(key="history-table"):
        if (
            total == 0
            and filters.owner
            and studio.count_history(JobFilter(owner=filters.owner)) == 0
        ):
            st.info(
                "You haven't made any videos yet. Turn on \"Show everyone's videos\" above to see "
                "the ones the rest of the team made.",
                icon=":material/video_library:",
            )
            return []
        if total == 0:
            st.info(
                "No jobs match these filters. Clear the search or pick other filters.",
                icon=":material/search_off:",
            )
            return []
        pages = math.ceil(total / PAGE_SIZE)
        page = 1
        if pages > 1:
            page = st.pagination(pages, key=state.HIST_PAGE)
        jobs = studio.history(filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        st.caption(_table_caption(page=page, shown=len(jobs), total=total))
        # Signed in and looking at everyone's videos: say whose each one is.
        show_maker = filters.owner is None and current_owner() is not None
        # A phone gets a list it reads without sideways scrolling; a wider window, the table
        # (the app's styles choose).
        with st.container(key="history-wide"):
            st.dataframe(
                _table(studio=studio, jobs=jobs, zone=zone, show_maker=show_maker),
                hide_index=True,
                key=state.HIST_TABLE,
                row_height=_ROW_HEIGHT,
                # Tall enough for a screenful of rows before the table scrolls inside itself.
                height=_HEADER_HEIGHT + _ROW_HEIGHT * min(len(jobs), _ROWS_IN_VIEW) + 2,
                on_select=partial(_open_selected_row, [job.id for job in jobs]),
                selection_mode="single-row",
                column_config=_TABLE_COLUMNS,
            )
        with st.container(key="history-narrow"):
            _render_compact_list(studio=studio, jobs=jobs, zone=zone, show_maker=show_maker)
    return jobs


def _render_compact_list(
    *, studio: Studio, jobs: list[Job], zone: tzinfo, show_maker: bool
) -> None:
    """Each job on two short lines: model, status and cost, then when and what it shows."""
    now = datetime.now(UTC)
    for job in jobs:
        with st.container(border=True, key=f"history-row-{job.id}"):
            model = _model_label(studio.catalog, job.model)
            st.markdown(money_text(f"{model} · {job.status.label} · {short_cost(job)}"))
            when = local_time(job.created_at, zone=zone, now=now)
            maker = f" · {made_by(job.owner)}" if show_maker else ""
            st.caption(f"{when} · {job.resolution} · {job.duration} s · #{job.id}{maker}")
            if job.prompt:
                st.text(shorten(job.prompt, 80))


_ROW_HEIGHT = 56
_HEADER_HEIGHT = 35
_ROWS_IN_VIEW = 12
# Widths in pixels for the page at 1400 px: each column fits its usual contents (a status or a
# model name in full) and the prompt takes the rest, the most of any; the opened job shows it
# whole, with its number.
_TABLE_COLUMNS = {
    "Time": st.column_config.TextColumn(width=108, help="In your time zone."),
    "Frame": st.column_config.ImageColumn(width=76),
    "Prompt": st.column_config.TextColumn(
        width=288, help="Tick a row to open the job and read its whole prompt."
    ),
    "Model": st.column_config.TextColumn(width=128),
    "Made by": st.column_config.TextColumn(width=160),
    "Video": st.column_config.TextColumn(width=84, help="Resolution and length"),
    "Status": st.column_config.TextColumn(width=132),
    "Cost": st.column_config.TextColumn(
        width=88,
        help="What you were billed. Demo videos are free, and failed jobs are never billed.",
    ),
}


def _table_caption(*, page: int, shown: int, total: int) -> str:
    if shown == total:
        return f"{plural(total, 'job')}, newest first. Tick a row to open it."
    first = (page - 1) * PAGE_SIZE + 1
    return f"{first}–{first + shown - 1} of {total} jobs, newest first. Tick a row to open it."


def _open_selected_row(job_ids: list[int]) -> None:
    # The ids are those of the page the user clicked on, bound when that page was drawn.
    rows = st.session_state[state.HIST_TABLE].selection.rows
    if rows and rows[0] < len(job_ids):
        st.session_state[state.HIST_OPEN] = job_ids[rows[0]]


def _table(*, studio: Studio, jobs: list[Job], zone: tzinfo, show_maker: bool) -> pd.DataFrame:
    now = datetime.now(UTC)
    table = pd.DataFrame(
        [
            {
                "Time": local_time(job.created_at, zone=zone, now=now),
                "Frame": thumbnail_uri(studio, job.image_sha256),
                "Prompt": job.prompt,
                "Model": _model_label(studio.catalog, job.model),
                "Video": f"{job.resolution} · {job.duration} s",
                "Status": job.status.label,
                "Cost": short_cost(job),
            }
            for job in jobs
        ]
    )
    if show_maker:
        makers = [made_by(job.owner) for job in jobs]
        table.insert(table.columns.get_loc("Model"), "Made by", makers)
    return table


@st.cache_data(max_entries=2000, show_spinner=False)
def _thumbnail_uri(image_sha256: str, _studio: Studio) -> str:
    # Images are stored by content hash and never change, so this never goes stale.
    data = _studio.thumbnail(image_sha256)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def thumbnail_uri(studio: Studio, image_sha256: str) -> str | None:
    """A small JPEG of the image as a ``data:`` URI for the table (None if it is missing)."""
    try:
        return _thumbnail_uri(image_sha256, studio)
    except FileNotFoundError:  # not cached, so it shows once the image is back
        return None


def render_open_job(*, studio: Studio, jobs: list[Job], zone: tzinfo) -> None:
    """Pick a job from the page to play it, download it, use its settings again, or settle it.

    A job whose sending is uncertain or that took too long gets the job cards' actions, so jobs
    sent from another session or the command line can be settled here too.
    """
    if not jobs:
        return
    by_id = {job.id: job for job in jobs}
    with st.container(border=True, key="history-open"):
        chosen = st.selectbox(
            "Open a job",
            list(by_id),
            index=None,
            key=state.HIST_OPEN,
            format_func=lambda job_id: _job_title(by_id[job_id], zone=zone),
            placeholder="Tick a row in the table, or choose a job here",
        )
        if chosen is None or chosen not in by_id:
            return
        job = by_id[chosen]
        media, details = st.columns([3, 2], gap="medium")
        with media:
            video = render_job_media(job=job, studio=studio)
            if video is None:
                st.caption(_why_no_video(job))
        with details:
            render_status_line(job=job, studio=studio)
            render_timing(job=job, studio=studio, zone=zone, now=datetime.now(UTC))
            render_cost(job=job)
            if video is not None:
                with st.container(horizontal=True, key="history-open-downloads"):
                    render_download(job=job, video=video, key=state.HIST_DOWNLOAD)
                    render_settings_download(
                        studio=studio, job=job, key=state.job_action_key(job.id, "settings")
                    )
                with st.container(horizontal=True, key="history-open-keep"):
                    render_favourite_toggle(
                        studio=studio, job=job, key=state.job_action_key(job.id, "favourite")
                    )
                    if can_compare(job) and st.button(
                        "Compare with other clips",
                        key=state.HIST_COMPARE,
                        icon=":material/compare:",
                    ):
                        open_compare([job.id])
            _render_job_facts(job)
            render_show_batch_button(batch_id=job.batch_id)
            if st.button(
                "Use these settings again",
                key=state.HIST_REUSE,
                type="primary",
                icon=":material/replay:",
            ):
                _reuse(studio=studio, job=job)
            # A job sent again from here belongs to this browser session from then on.
            render_what_went_wrong(studio=studio, job=job, session_id=state.session_id())
            render_job_actions(studio=studio, job=job, session_id=state.session_id())


def _why_no_video(job: Job) -> str:
    if job.status is JobStatus.SUCCEEDED:
        return "The video file is no longer in the data folder."
    if job.in_flight:
        return f"The video is not ready yet ({job.status.label.lower()})."
    return f"This job made no video ({job.status.label.lower()})."


def _job_title(job: Job, *, zone: tzinfo) -> str:
    prompt = job.prompt if len(job.prompt) <= 60 else job.prompt[:59] + "…"
    when = local_time(job.created_at, zone=zone)
    return f"#{job.id} · {when} · {job.status.label} · {prompt or 'no prompt'}"


def _render_job_facts(job: Job) -> None:
    """The settings a job was made with; what was typed is shown as typed, never as Markdown."""
    settings = [
        f"Seed: {job.seed}" if job.seed is not None else "Seed: random",
        "Improve my prompt: on" if job.prompt_extend else "Improve my prompt: off",
        f"Job #{job.id}",
    ]
    st.caption(" · ".join(settings))
    if job.image_source:
        st.caption("First frame")
        st.text(job.image_source)
    if job.prompt:
        st.caption("Prompt")
        st.text(job.prompt)
    if job.negative_prompt:
        st.caption("Avoid")
        st.text(job.negative_prompt)
    if job.prompt_was_improved:
        with st.expander("Improved prompt the model used"):
            st.text(job.actual_prompt or "")


def _reuse(*, studio: Studio, job: Job) -> None:
    try:
        draft = studio.reuse(job.id)
    except FileNotFoundError:
        st.error(
            "This job's first frame is no longer in the data folder, so its settings cannot "
            "be used again as they were.",
            icon=":material/image_not_supported:",
        )
        return
    source = job.image_source or f"image of job #{job.id}"
    first = (
        frame_from_prepared(image=draft.image, source=source) if draft.image is not None else None
    )
    last = (
        frame_from_prepared(image=draft.last_frame, source=f"last frame of job #{job.id}")
        if draft.last_frame is not None
        else None
    )
    state.fill_form(draft, first_frame=first, last_frame=last)
    state.set_notice(
        f"The settings of job #{job.id} are in the form. Change anything, then generate."
    )
    st.switch_page("pages/generate.py")


def render_export(*, studio: Studio, filters: JobFilter) -> None:
    """A CSV of every matching job (all pages), made when the button is clicked."""
    st.download_button(
        "Export CSV",
        data=partial(studio.export_csv, filters),
        file_name=f"wan-studio-jobs-{date.today():%Y-%m-%d}.csv",
        mime="text/csv",
        icon=":material/table_view:",
        key=state.HIST_EXPORT,
        on_click="ignore",
    )
