"""The Compare page: pick two to four finished clips, play them in step, and see what differs.

Each clip plays in an ``st.video``: Streamlit serves it from its media endpoint by URL, with
HTTP Range requests, so the page carries only the address. The file is read once per server
process (``components.media`` keeps it), never again on a rerun. A small ``st.components.v2``
component draws the one play/pause button and the one position slider and keeps the videos in
step from the browser: the longest clip sets the time, the others follow it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import NoReturn

import streamlit as st

from components import state
from components.formatting import local_time, plain
from components.job_view import download_name, render_favourite_toggle
from components.media import kept_video
from components.signin import current_owner
from studio.compare import (
    MAX_CLIPS,
    can_compare,
    compare_choice,
    differing_settings,
    job_id_from,
    model_label,
)
from studio.humane import shorten
from studio.records import Job, JobFilter, JobStatus
from studio.service import Studio

COMPARE_PAGE = "pages/compare.py"
# ``?compare=12,15`` in the page's address picks those clips, so a comparison can be linked to.
COMPARE_QUERY_PARAM = "compare"
# How many of the latest finished clips the picker offers (besides this session's).
RECENT_CLIPS = 60
# An address with more ids than this is read only this far.
_MOST_IDS_READ = 16

_SYNC_HTML = """
<div class="sync" role="group" aria-label="Play every clip together">
  <button type="button" class="sync-play" disabled>Play all</button>
  <input type="range" class="sync-seek" min="0" max="0" step="0.01" value="0"
         aria-label="Position in every clip">
  <span class="sync-clock" aria-hidden="true">0:00.0 / 0:00.0</span>
</div>
"""


# The browser side, kept beside this module as plain JavaScript and CSS.
_HERE = Path(__file__).resolve().parent
_in_step_player = st.components.v2.component(
    "wan_studio.compare_in_step",
    html=_SYNC_HTML,
    css=(_HERE / "compare_in_step.css").read_text(encoding="utf-8"),
    js=(_HERE / "compare_in_step.js").read_text(encoding="utf-8"),
)


def open_compare(job_ids: Iterable[int]) -> NoReturn:
    """Go to the Compare page with these clips picked (from a button in a page's script run).

    Any component can call it, e.g. ``if st.button("Compare"): open_compare(ids)``. Clips that
    cannot be played are left out there, with a note saying so; more than four are cut to four.
    """
    state.ask_to_compare([int(job_id) for job_id in job_ids])
    st.switch_page(COMPARE_PAGE)


def render_clip_picker(*, studio: Studio, session_id: str, zone: tzinfo) -> list[Job]:
    """A picker of this session's and the latest finished clips; returns the clips picked."""
    asked = state.take_compare_request()
    from_address = st.query_params.get(COMPARE_QUERY_PARAM)
    picked_before = state.compare_pick()
    if asked is None and from_address and picked_before is None:
        asked = from_address.split(",")[:_MOST_IDS_READ]
    picked_before = picked_before or []
    # Clips asked for or picked before stay on offer, however old they are.
    wanted = [*(asked or []), *picked_before]
    offered = _clips_on_offer(studio=studio, session_id=session_id, wanted=wanted)
    by_id = {job.id: job for job in offered}
    if asked is not None:
        chosen, problems = compare_choice(asked, comparable=by_id.__contains__)
        for problem in problems:
            st.warning(plain(problem), icon=":material/info:")
        picked_before = chosen
    # A clip whose video is gone since it was picked drops out.
    state.set_compare_pick([job_id for job_id in picked_before if job_id in by_id])
    now = datetime.now(UTC)
    picked = st.multiselect(
        "Clips to compare",
        list(by_id),
        key=state.COMPARE_PICK,
        max_selections=MAX_CLIPS,
        format_func=lambda job_id: clip_label(by_id[job_id], studio=studio, zone=zone, now=now),
        placeholder="Pick two to four finished clips",
        help="This session's clips come first, then the latest ones from History.",
        # The pick stays while the user visits other pages.
        persist_state="session",
    )
    in_address = ",".join(str(job_id) for job_id in picked)
    if st.query_params.get(COMPARE_QUERY_PARAM, "") != in_address:
        if in_address:
            st.query_params[COMPARE_QUERY_PARAM] = in_address
        else:
            del st.query_params[COMPARE_QUERY_PARAM]
    return [by_id[job_id] for job_id in picked]


def _clips_on_offer(*, studio: Studio, session_id: str, wanted: list[object]) -> list[Job]:
    """This session's finished clips, then the latest ones, then those wanted by id."""
    mine = studio.session_jobs(session_id)
    # With sign-in, the person's own latest clips; a clip of someone else's comes by its link.
    latest_made = JobFilter(statuses=[JobStatus.SUCCEEDED], owner=current_owner())
    latest = studio.history(latest_made, limit=RECENT_CLIPS)
    offered = {job.id: job for job in (*mine, *latest) if can_compare(job)}
    ids = [job_id for raw in wanted if (job_id := job_id_from(raw)) is not None]
    extra = studio.jobs(job_id for job_id in ids[: MAX_CLIPS * 2] if job_id not in offered)
    offered |= {job.id: job for job in extra if can_compare(job)}
    return list(offered.values())


def clip_label(job: Job, *, studio: Studio, zone: tzinfo, now: datetime | None = None) -> str:
    """A clip as the picker lists it: number, model, size, when, and the start of its prompt."""
    when = local_time(job.created_at, zone=zone, now=now)
    star = " ★" if job.favourite else ""
    words = f" · “{shorten(job.prompt, 40)}”" if job.prompt else ""
    return (
        f"#{job.id}{star} · {model_label(job, studio.catalog)} · {job.resolution} · "
        f"{job.duration} s · {when}{words}"
    )


def render_empty_choice(*, picked: int) -> None:
    """What to do while fewer than two clips are picked."""
    more = "Pick one more clip" if picked == 1 else "Pick two to four clips"
    st.info(
        f"{more} to play them side by side, in step, and see which settings differ.",
        icon=":material/compare:",
    )


def render_clips_in_step(*, studio: Studio, jobs: list[Job]) -> None:
    """One play/pause button and one slider, then the clips side by side, muted and looped."""
    # Above the clips, so that on a phone the controls and all four clips fit one screen.
    controls = st.container(key="compare-controls")
    playing: list[str] = []  # the keys of the clips whose file is there to play
    with st.container(key="compare-clips"):
        columns = st.columns(len(jobs), gap="small")
        for column, job in zip(columns, jobs, strict=True):
            with column, st.container(key=f"compare-clip-{job.id}"):
                st.markdown(f"**#{job.id}** · {plain(model_label(job, studio.catalog))}")
                video = studio.video_file(job)
                if link := studio.video_url(job, file_name=download_name(job)):
                    st.video(link, format="video/mp4", muted=True, loop=True)
                    playing.append(f"compare-clip-{job.id}")
                elif video is None:
                    st.caption("The video file is no longer in the data folder.")
                else:
                    st.video(kept_video(video), format="video/mp4", muted=True, loop=True)
                    playing.append(f"compare-clip-{job.id}")
                render_favourite_toggle(
                    studio=studio, job=job, key=state.compare_action_key(job.id, "favourite")
                )
    with controls:
        _in_step_player(key=state.COMPARE_IN_STEP, data={"clips": playing})


def render_differences(*, studio: Studio, jobs: list[Job]) -> None:
    """A table of only the settings that differ between the clips (or a line saying none do)."""
    rows = differing_settings(jobs, catalog=studio.catalog)
    with st.container(key="compare-differences"):
        st.subheader("What differs")
        if not rows:
            st.caption("These clips were made with the same settings.")
            return
        headers = [f"#{job.id}" for job in jobs]
        table = {"Setting": [row.name for row in rows]}
        for index, header in enumerate(headers):
            table[header] = [plain(row.values[index]) for row in rows]
        st.table(table, hide_index=True, alt="Settings that differ between the clips")
