"""A card per job of this browser session, refreshed from the store while any is in flight."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path

import streamlit as st

from components import state
from components.formatting import TONE_COLORS, TONE_ICONS, elapsed, local_time, money, plain
from components.formatting import viewer_timezone as _viewer_timezone
from studio import expectations
from studio.records import Job, JobStatus
from studio.service import KeyRequired, Studio, resend_submission_id

# How often the cards re-read the store while something is in flight.
REFRESH_SECONDS = 1.0
# Card images: sharper than the table's thumbnails, far lighter than the original.
CARD_IMAGE_SIDE = 640


def render_session_jobs(*, studio: Studio, session_id: str) -> None:
    """This session's jobs, newest first; only the ones in flight refresh, in a ticking fragment."""
    jobs = studio.session_jobs(session_id)
    with st.container(key="session-jobs"):
        st.subheader("Your videos")
        if not jobs:
            st.caption("Videos you generate in this browser session appear here.")
            return
        in_flight = frozenset(job.id for job in jobs if job.in_flight)
        if in_flight:
            # Only in-flight cards tick: a finished card's player would re-read its whole video
            # file every second. A fragment that is not called on a full run stops ticking.
            cards = st.fragment(run_every=REFRESH_SECONDS)(_render_in_flight_cards)
            cards(studio=studio, session_id=session_id, watched=in_flight)
        _render_cards(
            studio=studio,
            session_id=session_id,
            jobs=[job for job in jobs if job.id not in in_flight],
            waiting_for_key=frozenset(),
        )


def _render_in_flight_cards(*, studio: Studio, session_id: str, watched: frozenset[int]) -> None:
    jobs = [job for job in studio.session_jobs(session_id) if job.id in watched]
    if not all(job.in_flight for job in jobs):
        # A job just ended: a full run moves its card below, updates the sidebar totals and
        # keeps the timer only while something is still in flight.
        st.rerun()
    waiting = frozenset(job.id for job in studio.jobs_waiting_for_key())
    _render_cards(studio=studio, session_id=session_id, jobs=jobs, waiting_for_key=waiting)


def _render_cards(
    *, studio: Studio, session_id: str, jobs: list[Job], waiting_for_key: frozenset[int]
) -> None:
    zone = _viewer_timezone()
    now = datetime.now(UTC)
    for job in jobs:
        render_job_card(
            studio=studio,
            job=job,
            session_id=session_id,
            zone=zone,
            now=now,
            waiting_for_key=job.id in waiting_for_key,
        )


def render_job_card(
    *,
    studio: Studio,
    job: Job,
    session_id: str,
    zone: tzinfo,
    now: datetime,
    waiting_for_key: bool = False,
) -> None:
    """One job: its frame or video, status, timing, cost, and what to do when it went wrong."""
    with st.container(border=True, key=f"job-card-{job.id}"):
        media, details = st.columns([2, 3], gap="medium")
        with media:
            video = render_job_media(job=job, studio=studio)
        with details:
            _render_status_line(job=job, studio=studio)
            if job.prompt:
                st.markdown(f"“{plain(_shorten(job.prompt, 240))}”")
            _render_timing(job=job, studio=studio, zone=zone, now=now)
            if waiting_for_key:
                st.warning(
                    "Waiting for the API key it was sent with. Enter that key in Settings and "
                    "this job carries on.",
                    icon=":material/key:",
                )
            _render_cost(job=job)
            if job.prompt_was_improved:
                with st.expander("Improved prompt the model used"):
                    st.markdown(plain(job.actual_prompt or ""))
            if video is not None:
                st.download_button(
                    "Download video",
                    data=partial(Path.read_bytes, video),
                    file_name=download_name(job),
                    mime="video/mp4",
                    icon=":material/download:",
                    key=state.job_action_key(job.id, "download"),
                    on_click="ignore",
                )
            if explanation := what_went_wrong(job):
                st.info(plain(explanation), icon=":material/lightbulb:")
            render_job_actions(studio=studio, job=job, session_id=session_id)


def render_job_media(*, job: Job, studio: Studio) -> Path | None:
    """The job's video in a player when it is saved (returning its file), else its first frame."""
    video = studio.video_file(job) if job.has_video else None
    if video is not None:
        st.video(video, muted=True)
    else:
        render_first_frame(studio=studio, image_sha256=job.image_sha256)
    return video


def render_first_frame(*, studio: Studio, image_sha256: str) -> None:
    """A job's first frame, or a plain note when its file is gone from the data folder."""
    try:
        picture = studio.thumbnail(image_sha256, max_side=CARD_IMAGE_SIDE)
    except FileNotFoundError:
        st.caption("The first frame is no longer in the data folder.")
        return
    st.image(picture, width="stretch")


def _render_status_line(*, job: Job, studio: Studio) -> None:
    spec = studio.catalog.models.get(job.model)
    label = plain(spec.label if spec else job.model)
    tone = job.status.tone
    st.markdown(
        f":{TONE_COLORS[tone]}-badge[{TONE_ICONS[tone]} {job.status.label}] "
        f"&nbsp; **{label}** · {job.resolution} · {job.duration} s"
        + (" &nbsp; :gray-badge[demo]" if job.is_demo else "")
    )


def _render_timing(*, job: Job, studio: Studio, zone: tzinfo, now: datetime) -> None:
    started = job.submitted_at or job.created_at
    when = local_time(started, zone=zone, now=now, in_sentence=True)
    if job.in_flight:
        _render_progress(job=job, studio=studio, started=started, now=now)
        stage = expectations.stage(job.status)
        so_far = elapsed((now - started).total_seconds())
        st.caption(f"{stage} · started {when} · {so_far} so far")
    elif job.finished_at is not None:
        took = elapsed((job.finished_at - started).total_seconds())
        verb = "took" if job.status is JobStatus.SUCCEEDED else "ended after"
        st.caption(f"Started {when} · {verb} {took}")
    else:
        st.caption(f"Started {when}")


def _render_progress(*, job: Job, studio: Studio, started: datetime, now: datetime) -> None:
    """A bar and the time left when similar jobs were timed; else how long jobs usually take."""
    estimate = expectations.progress(
        started=started, expected_finish=studio.expected_finish(job), now=now
    )
    if estimate is None:
        typical = studio.typical_wait(job).describe()
        st.markdown(f":material/schedule: {typical}")
    else:
        st.progress(estimate.fraction, text=estimate.text)


def _render_cost(*, job: Job) -> None:
    if job.is_demo:
        st.caption(f"Demo: not billed (would be ≈ {money(job.estimate_usd)})")
    elif job.has_cost:
        # Billed once the gateway made it, even when the video could not be saved.
        seconds = f" for {job.billed_seconds} s" if job.billed_seconds else ""
        st.caption(f"Cost: {money(job.cost_usd)}{seconds}")
    elif job.in_flight or job.status is JobStatus.UNCERTAIN:
        st.caption(f"Expected cost: ≈ {money(job.estimate_usd)}, charged only if it succeeds")
    else:
        st.caption("Not billed")


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
    except (KeyRequired, ValueError) as problem:
        st.toast(plain(str(problem)), icon=":material/error:")


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


def download_name(job: Job) -> str:
    """A file name that says what the video is: ``wan-12-wan2.2-i2v-plus-1080P.mp4``."""
    return f"wan-{job.id}-{job.model}-{job.resolution}.mp4"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
