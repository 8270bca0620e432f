"""How every page shows a job: its player or frame, status, timing, cost, download and next steps.

The Generate page shows the job in focus as a large card beside the form and the session's other
jobs as small tiles; History opens one job with the same pieces. The words come from
``studio.humane``, which the command line uses too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from pathlib import Path

import streamlit as st

from components import state
from components.formatting import (
    TONE_COLORS,
    TONE_ICONS,
    local_time,
    money_text,
    plain,
    viewer_timezone,
)
from components.media import kept_video
from components.signin import current_owner
from studio import expectations
from studio.explain import TRYING_AGAIN_WORKS
from studio.humane import cost_phrase, elapsed, money, shorten
from studio.keys import KeyRequired
from studio.limits import SpendingLimitReached
from studio.records import Job, JobStatus
from studio.service import Studio, resend_submission_id

# How often the card in focus re-reads the store while its job is in flight.
REFRESH_SECONDS = 1.0
# How often any page looks for this session's jobs that ended while it was open.
FINISH_WATCH_SECONDS = 2.0
# Card images: sharper than the table's thumbnails, far lighter than the original.
CARD_IMAGE_SIDE = 640
TILE_IMAGE_SIDE = 320
# Tiles per row in the gallery of this session's other videos.
TILES_PER_ROW = 3
APP_TITLE = "Wan Studio"
# Longer than any download of a finished video.
_SAVING_TAKES_AT_MOST = timedelta(hours=1)


# -- the pieces every view shares ---------------------------------------------------------------


def render_job_media(
    *, job: Job, studio: Studio, image_side: int = CARD_IMAGE_SIDE
) -> Path | str | None:
    """The job's video in a player when it is saved (returning its file, or its URL when it is in
    object storage), else its first frame."""
    video: Path | str | None = None
    if job.has_video:
        # From object storage, the browser plays a short-lived link to the bucket itself.
        video = studio.video_url(job, file_name=download_name(job)) or studio.video_file(job)
    if isinstance(video, str):
        with st.container(key=f"job-player-{job.id}"):
            st.video(video, format="video/mp4", muted=True)
    elif video is not None:
        with st.container(key=f"job-player-{job.id}"):
            # The bytes kept in memory: a path would be read whole again on every rerun.
            st.video(kept_video(video), format="video/mp4", muted=True)
    else:
        with st.container(key=f"job-frame-{job.id}"):
            render_first_frame(studio=studio, image_sha256=job.image_sha256, side=image_side)
    return video


def render_first_frame(*, studio: Studio, image_sha256: str, side: int = CARD_IMAGE_SIDE) -> None:
    """A job's first frame, or a plain note when its file is gone from the data folder."""
    try:
        picture = studio.thumbnail(image_sha256, max_side=side)
    except FileNotFoundError:
        st.caption("The first frame is no longer in the data folder.")
        return
    st.image(picture, width="stretch", alt="The video's first frame")


def status_label(job: Job) -> str:
    """The job's status as a person reads it: "Generating" from the moment the model started."""
    if job.status is JobStatus.QUEUED and job.started_at is not None:
        return JobStatus.RUNNING.label
    return job.status.label


def _stage(job: Job) -> str:
    if job.status is JobStatus.QUEUED and job.started_at is not None:
        return expectations.stage(JobStatus.RUNNING)
    return expectations.stage(job.status)


def render_status_line(*, job: Job, studio: Studio) -> None:
    """A coloured status badge, the model, resolution and length, and a demo mark."""
    spec = studio.catalog.models.get(job.model)
    label = plain(spec.label if spec else job.model)
    tone = job.status.tone
    st.markdown(
        f":{TONE_COLORS[tone]}-badge[{TONE_ICONS[tone]} {status_label(job)}] "
        f"&nbsp; **{label}** · {job.resolution} · {job.duration} s"
        + (" &nbsp; :gray-badge[demo]" if job.is_demo else "")
    )


def render_timing(*, job: Job, studio: Studio, zone: tzinfo, now: datetime) -> None:
    """When it was made; while in flight the stage, progress and time so far; then how long."""
    clicked = job.created_at
    when = local_time(clicked, zone=zone, now=now, in_sentence=True)
    if job.in_flight:
        _render_progress(job=job, studio=studio, now=now)
        so_far = elapsed((now - clicked).total_seconds())
        st.caption(f"{_stage(job)} · started {when} · {so_far} so far")
    elif job.status is JobStatus.SUCCEEDED:
        waited = elapsed((saved_at(job, studio) - clicked).total_seconds())
        st.caption(f"Started {when} · took {waited}")
    elif job.finished_at is not None:
        lasted = elapsed((job.finished_at - clicked).total_seconds())
        st.caption(f"Started {when} · ended after {lasted}")
    else:
        st.caption(f"Started {when}")


def saved_at(job: Job, studio: Studio) -> datetime:
    """When the video was saved here: the end of the user's wait (the gateway's end is earlier).

    That is the video file's time, unless the file was touched long after (a copied data folder).
    """
    ended = job.finished_at or job.created_at
    video = studio.video_file(job)
    if video is None:
        return ended
    written = datetime.fromtimestamp(video.stat().st_mtime, UTC)
    return written if ended <= written <= ended + _SAVING_TAKES_AT_MOST else ended


def _render_progress(*, job: Job, studio: Studio, now: datetime) -> None:
    """A bar and the time left once similar jobs were timed; else what such jobs usually take."""
    estimate = expectations.progress(
        started=job.submitted_at or job.created_at,
        expected_finish=studio.expected_finish(job),
        now=now,
    )
    if estimate is None:
        typical = studio.typical_wait(job).describe()
        st.markdown(f":material/schedule: {typical}")
    else:
        st.progress(estimate.fraction, text=estimate.text)


def render_cost(*, job: Job) -> None:
    """What the job cost, or will cost if it succeeds, with its arithmetic."""
    st.caption(money_text(cost_phrase(job)))


def render_download(*, job: Job, video: Path | str, key: str) -> None:
    """The Download button of a saved video (a link to the bucket when it is in object storage)."""
    if isinstance(video, str):
        # The link answers as an attachment named for the job, so the browser saves it.
        st.link_button("Download video", video, icon=":material/download:", key=key)
        return
    st.download_button(
        "Download video",
        data=partial(Path.read_bytes, video),
        file_name=download_name(job),
        mime="video/mp4",
        icon=":material/download:",
        key=key,
        on_click="ignore",
    )


def render_settings_download(*, studio: Studio, job: Job, key: str) -> None:
    """The Download settings button: the clip's settings as a small JSON file, made on click."""
    st.download_button(
        "Download settings",
        data=partial(studio.settings_json, job),
        file_name=f"wan-{job.id}-settings.json",
        mime="application/json",
        icon=":material/data_object:",
        key=key,
        on_click="ignore",
    )


def render_favourite_toggle(*, studio: Studio, job: Job, key: str) -> None:
    """A star button that marks a clip as a favourite, or takes the mark away."""
    if job.favourite:
        label, icon = "Remove from favourites", ":material/star:"
    else:
        label, icon = "Keep as favourite", ":material/star_border:"
    st.button(
        label,
        key=key,
        icon=icon,
        on_click=_set_favourite,
        kwargs={"studio": studio, "job_id": job.id, "favourite": not job.favourite},
    )


def _set_favourite(*, studio: Studio, job_id: int, favourite: bool) -> None:
    try:
        studio.set_favourite(job_id, favourite)
    except LookupError:
        st.toast("That clip is no longer in the history.", icon=":material/error:")


def render_prompt(job: Job, *, limit: int | None = None) -> None:
    """The prompt as typed, in an element that never reads Markdown."""
    if job.prompt:
        text = shorten(job.prompt, limit) if limit else job.prompt
        st.text(f"“{text}”")


def render_what_went_wrong(*, studio: Studio, job: Job, session_id: str | None) -> None:
    """What happened to a job that did not end well, what to do, and a Try again when it helps."""
    explanation = what_went_wrong(job)
    if explanation is None:
        return
    st.info(plain(explanation), icon=":material/lightbulb:")
    if worth_trying_again(job):
        _render_try_again(studio=studio, job=job, session_id=session_id)


def what_went_wrong(job: Job) -> str | None:
    """What happened to a job that did not end well and what to do; None when it is fine."""
    if job.in_flight and job.explanation:
        return job.explanation  # a problem it is working around, such as a full disk
    if job.status.tone not in ("error", "warning"):
        return None
    if job.explanation:
        return job.explanation
    said = ": ".join(part for part in (job.error_code, job.error_message) if part)
    return f"The video service said: {said}" if said else None


def worth_trying_again(job: Job) -> bool:
    """A failure the service itself says usually goes away on a second try."""
    return job.status is JobStatus.FAILED and TRYING_AGAIN_WORKS in (job.explanation or "")


def _render_try_again(*, studio: Studio, job: Job, session_id: str | None) -> None:
    # The failed job cost nothing; the new one costs what the same settings cost now.
    billed = studio.key_for_new_job(state.session_api_key()).billed
    price = money(job.estimate_usd) if billed else "free in demo mode"
    st.button(
        f"Try again · {price}",
        key=state.job_action_key(job.id, "try-again"),
        icon=":material/replay:",
        type="primary",
        on_click=_try_again,
        kwargs={"studio": studio, "job": job, "session_id": session_id},
    )


def _try_again(*, studio: Studio, job: Job, session_id: str | None) -> None:
    try:
        draft = studio.reuse(job.id)
        again = studio.submit(
            draft,
            # Derived from the failed job, so a double click makes one new job.
            submission_id=resend_submission_id(job),
            session_id=session_id,
            api_key=state.session_api_key(),
            key_holder=state.key_holder().id,
            owner=current_owner(),
        )
    except FileNotFoundError:
        st.toast(
            "This job's first frame is no longer in the data folder, so it cannot be made again.",
            icon=":material/error:",
        )
        return
    except (KeyRequired, ValueError, SpendingLimitReached) as problem:
        # A spending limit's refusal says what is left and when it resets; nothing was sent.
        st.toast(plain(str(problem)), icon=":material/error:")
        return
    state.set_focused_job(again.id, again.id)
    submitted_toast(again)


def submitted_toast(job: Job) -> None:
    """Say what became of a click on Generate, in the same words as the job's card."""
    if job.in_flight:
        st.toast(f"{status_label(job)}: your video is on its way.", icon=":material/movie:")
    elif job.status is JobStatus.UNCERTAIN:
        st.toast("Not sure it was sent: its card says what you can do.", icon=":material/help:")
    else:
        st.toast(
            f"{job.status.label}: no video will be made. Its card says why.",
            icon=":material/error:",
        )


def render_job_actions(*, studio: Studio, job: Job, session_id: str | None) -> None:
    """The Check again, Send again and Dismiss buttons of a job whose outcome is unsure or late."""
    if not (studio.can_recheck(job) or studio.can_resend(job)):
        return
    with st.container(horizontal=True, key=f"job-actions-{job.id}"):
        if studio.can_recheck(job):
            st.button(
                "Check again",
                key=state.job_action_key(job.id, "recheck"),
                icon=":material/refresh:",
                on_click=studio.recheck,
                args=(job.id,),
            )
        if studio.can_resend(job):
            st.button(
                "Send again (may be billed twice)",
                key=state.job_action_key(job.id, "resend"),
                icon=":material/send:",
                on_click=_resend,
                kwargs={"studio": studio, "job": job, "session_id": session_id},
            )
            st.button(
                "Dismiss",
                key=state.job_action_key(job.id, "dismiss"),
                icon=":material/close:",
                on_click=studio.dismiss,
                args=(job.id,),
            )


def _resend(*, studio: Studio, job: Job, session_id: str | None) -> None:
    try:
        studio.resend(
            job.id,
            # Derived from the old job, so a double click on "Send again" makes one new job.
            submission_id=resend_submission_id(job),
            session_id=session_id,
            api_key=state.session_api_key(),
            key_holder=state.key_holder().id,
        )
    except (KeyRequired, ValueError, SpendingLimitReached) as problem:
        # A spending limit's refusal says what is left and when it resets; nothing was sent.
        st.toast(plain(str(problem)), icon=":material/error:")


def download_name(job: Job) -> str:
    """A file name that says what the video is: ``wan-12-wan2.2-i2v-plus-1080P.mp4``."""
    return f"wan-{job.id}-{job.model}-{job.resolution}.mp4"


# -- the Generate page: the job in focus and the gallery ----------------------------------------


def render_session_jobs(*, studio: Studio, session_id: str) -> None:
    """The job in focus as a large card, then this session's other videos as tiles to open."""
    jobs = studio.session_jobs(session_id)
    with st.container(key="session-jobs"):
        if not jobs:
            st.subheader("Your video")
            st.caption("The video you generate appears here, with its progress and price.")
            return
        focus = _job_in_focus(jobs)
        if focus.batch_id is not None:
            # Several clips from one click: the batch's line and a grid of these cards. Imported
            # here because the batch view is drawn with this module's cards.
            from components.batch_view import render_batch

            if shown := render_batch(studio=studio, batch_id=focus.batch_id, session_id=session_id):
                others = [job for job in jobs if job.id not in shown]
                if others:
                    _render_gallery(studio=studio, jobs=others, newest=jobs[0].id)
                return
        if focus.in_flight:
            # Only an in-flight card ticks: a finished card's player would re-read its whole
            # video file every second. A fragment that is not called on a full run stops.
            card = st.fragment(run_every=REFRESH_SECONDS)(render_ticking_card)
            card(studio=studio, session_id=session_id, job_id=focus.id)
        else:
            render_job_card(studio=studio, job=focus, session_id=session_id)
        others = [job for job in jobs if job.id != focus.id]
        if others:
            _render_gallery(studio=studio, jobs=others, newest=jobs[0].id)


def _job_in_focus(jobs: list[Job]) -> Job:
    """The tile the user opened, until a newer job is made; else the newest job."""
    newest = jobs[0]
    chosen = state.focused_job()
    if chosen is None or chosen.newest_when_chosen < newest.id:
        return newest
    return next((job for job in jobs if job.id == chosen.job_id), newest)


def render_ticking_card(
    *, studio: Studio, session_id: str, job_id: int, image_side: int = CARD_IMAGE_SIDE
) -> None:
    """One in-flight job's card, read again on each tick; a full run once it ends."""
    job = studio.job(job_id)
    if job is None or not job.in_flight:
        # It just ended: a full run shows the player, says so on every page and counts it.
        state.note_finish_rerun()
        st.rerun()
    waiting = not studio.can_watch(job)  # made with a key this process does not hold
    render_job_card(
        studio=studio,
        job=job,
        session_id=session_id,
        waiting_for_key=waiting,
        image_side=image_side,
    )


def render_job_card(
    *,
    studio: Studio,
    job: Job,
    session_id: str,
    waiting_for_key: bool = False,
    image_side: int = CARD_IMAGE_SIDE,
) -> None:
    """One job, large: status, progress, then its player and download, and what to do next.

    ``image_side``: the first frame's size before the video, smaller in a batch's grid.
    """
    zone = viewer_timezone()
    now = datetime.now(UTC)
    with st.container(border=True, key=f"job-card-{job.id}"):
        render_status_line(job=job, studio=studio)
        render_timing(job=job, studio=studio, zone=zone, now=now)
        if waiting_for_key:
            st.warning(
                "Waiting for the API key it was sent with. Enter that key in Settings and "
                "this job carries on.",
                icon=":material/key:",
            )
        video = render_job_media(job=job, studio=studio, image_side=image_side)
        if video is not None:
            with st.container(horizontal=True, key=f"job-downloads-{job.id}"):
                render_download(job=job, video=video, key=state.job_action_key(job.id, "download"))
                render_settings_download(
                    studio=studio, job=job, key=state.job_action_key(job.id, "settings")
                )
                render_favourite_toggle(
                    studio=studio, job=job, key=state.job_action_key(job.id, "favourite")
                )
        render_cost(job=job)
        render_prompt(job, limit=240)
        if job.prompt_was_improved:
            with st.expander("Improved prompt the model used"):
                st.text(job.actual_prompt or "")
        render_what_went_wrong(studio=studio, job=job, session_id=session_id)
        render_job_actions(studio=studio, job=job, session_id=session_id)


def _render_gallery(*, studio: Studio, jobs: list[Job], newest: int) -> None:
    with st.container(key="gen-gallery"):
        st.markdown("**Earlier in this session**")
        for row_start in range(0, len(jobs), TILES_PER_ROW):
            columns = st.columns(TILES_PER_ROW, gap="small")
            row = jobs[row_start : row_start + TILES_PER_ROW]
            for column, job in zip(columns, row, strict=False):
                with column, st.container(border=True, key=f"job-tile-{job.id}"):
                    _render_tile(studio=studio, job=job, newest=newest)


def _render_tile(*, studio: Studio, job: Job, newest: int) -> None:
    render_first_frame(studio=studio, image_sha256=job.image_sha256, side=TILE_IMAGE_SIDE)
    tone = job.status.tone
    st.markdown(f":{TONE_COLORS[tone]}-badge[{TONE_ICONS[tone]} {status_label(job)}]")
    st.button(
        "Open",
        key=state.job_action_key(job.id, "open"),
        icon=":material/open_in_full:",
        on_click=state.set_focused_job,
        args=(job.id, newest),
        width="stretch",
        help=f"{job.resolution} · {job.duration} s",
    )


# -- any page: jobs that ended while the user was elsewhere -------------------------------------


def announce_finished(*, studio: Studio, session_id: str) -> None:
    """Toast each of this session's jobs that ended since the last run, and mark the tab's title.

    The title says "✓ Done" (or what went wrong) until the user's next action; while a job is in
    flight, a light timer looks for its end so that any page learns of it.
    """
    watched = state.jobs_seen_in_flight()
    # One read of the session's jobs serves both questions below (a batch watches many jobs).
    session_jobs = studio.session_jobs(session_id)
    ended = [job for job in _now(studio, watched, session_jobs) if not job.in_flight]
    # The clips of a batch often end together: their videos are announced in one toast.
    ready = [job for job in ended if job.status is JobStatus.SUCCEEDED]
    if len(ready) > 1:
        st.toast(f"{len(ready)} videos are ready.", icon=":material/check_circle:")
    for job in ended:
        if len(ready) == 1 or job.status is not JobStatus.SUCCEEDED:
            _finished_toast(job=job, studio=studio)
    by_finish = state.pop_finish_rerun()
    if ended:
        state.set_title_mark(_title_mark(ended))
    elif not by_finish:
        state.set_title_mark(None)
    mark = state.title_mark()
    st.set_page_config(page_title=f"{mark} · {APP_TITLE}" if mark else APP_TITLE)
    in_flight = frozenset(job.id for job in session_jobs if job.in_flight)
    state.set_jobs_seen_in_flight(in_flight)
    if in_flight:
        watch = st.fragment(run_every=FINISH_WATCH_SECONDS)(_watch_for_finish)
        watch(studio=studio, session_id=session_id, watched=in_flight)


def _now(studio: Studio, job_ids: frozenset[int], session_jobs: list[Job]) -> list[Job]:
    """The jobs with these ids as the store holds them now, from the session's list when there."""
    listed = {job.id: job for job in session_jobs if job.id in job_ids}
    return [
        job
        for job_id in sorted(job_ids)
        if (job := listed.get(job_id) or studio.job(job_id)) is not None
    ]


def _watch_for_finish(*, studio: Studio, session_id: str, watched: frozenset[int]) -> None:
    now = _now(studio, watched, studio.session_jobs(session_id))
    if len(now) < len(watched) or any(not job.in_flight for job in now):
        state.note_finish_rerun()
        st.rerun()


def _finished_toast(*, job: Job, studio: Studio) -> None:
    spec = studio.catalog.models.get(job.model)
    what = f"{spec.label if spec else job.model} · {job.duration} s"
    if job.status is JobStatus.SUCCEEDED:
        st.toast(f"Your video is ready ({what}).", icon=":material/check_circle:")
    else:
        st.toast(
            f"{job.status.label}: your video ({what}) was not made. Its card says why.",
            icon=":material/error:",
        )


def _title_mark(ended: list[Job]) -> str:
    if all(job.status is JobStatus.SUCCEEDED for job in ended):
        return "✓ Done"
    return "✕ Not made"
