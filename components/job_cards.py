"""A card per job of this browser session, refreshed from the store while any is in flight."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import partial
from pathlib import Path

import streamlit as st

from components import state
from components.formatting import TONE_COLORS, TONE_ICONS, elapsed, local_time, money, time_left
from components.formatting import viewer_timezone as _viewer_timezone
from studio.records import BILLED, DEMO, Job, JobStatus
from studio.service import KeyRequired, Studio

# How often the cards re-read the store while something is in flight.
REFRESH_SECONDS = 1.0
_RESEND_NAMESPACE = uuid.UUID("5d0c3c1e-6f0a-4d55-9a43-7b1f2f0b8e21")
# Card images: sharper than the table's thumbnails, far lighter than the original.
CARD_IMAGE_SIDE = 640
# A job that has run this many times its usual time is "taking longer than usual".
_OVERDUE_FACTOR = 1.5


@dataclass(frozen=True)
class TypicalWait:
    """How long a job usually takes from sending to a saved video, in seconds."""

    usual_from: float
    usual_to: float
    longest: float | None = None


# What a card says before this app has timed enough similar jobs itself (Studio.expected_finish):
# real jobs take 1 to 5 minutes, now and then up to 10; the built-in demo gateway finishes well
# within a minute. These are facts about the gateway and belong with the domain in studio/.
TYPICAL_WAIT = {
    BILLED: TypicalWait(usual_from=60, usual_to=300, longest=600),
    DEMO: TypicalWait(usual_from=0, usual_to=60),
}
# What an in-flight job is doing, in words for someone who never saw an API.
_STAGES = {
    JobStatus.SUBMITTING: "Sending it to the video service",
    JobStatus.QUEUED: "Waiting its turn at the video service",
    JobStatus.RUNNING: "The model is making your video",
    JobStatus.DOWNLOADING: "Saving the finished video",
}


def render_session_jobs(*, studio: Studio, session_id: str) -> None:
    """This session's jobs, newest first, in a fragment that ticks only while one is in flight."""
    jobs = studio.session_jobs(session_id)
    with st.container(key="session-jobs"):
        st.subheader("Your videos")
        if not jobs:
            st.caption("Videos you generate in this browser session appear here.")
            return
        refreshing = any(job.in_flight for job in jobs)
        # run_every is fixed when the fragment is defined, so each full run defines it afresh:
        # with a timer while something is in flight, without one when nothing is.
        cards = st.fragment(run_every=REFRESH_SECONDS if refreshing else None)(_render_cards)
        cards(studio=studio, session_id=session_id, refreshing=refreshing)


def _render_cards(*, studio: Studio, session_id: str, refreshing: bool) -> None:
    jobs = studio.session_jobs(session_id)
    zone = _viewer_timezone()
    now = datetime.now(UTC)
    waiting_for_key = (
        {job.id for job in studio.jobs_waiting_for_key()} if refreshing else set[int]()
    )
    for job in jobs:
        render_job_card(
            studio=studio,
            job=job,
            session_id=session_id,
            zone=zone,
            now=now,
            waiting_for_key=job.id in waiting_for_key,
        )
    if refreshing != any(job.in_flight for job in jobs):
        # The last job just ended (or a checked one started again): a full run updates the
        # sidebar totals and defines the fragment with, or without, its timer.
        st.rerun()


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
            video = studio.video_file(job) if job.has_video else None
            if video is not None:
                st.video(video, muted=True)
            else:
                render_first_frame(studio=studio, image_sha256=job.image_sha256)
        with details:
            _render_status_line(job=job, studio=studio)
            if job.prompt:
                st.markdown(f"“{_shorten(job.prompt, 240)}”")
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
                    st.write(job.actual_prompt)
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
                st.info(explanation, icon=":material/lightbulb:")
            if studio.can_recheck(job) or studio.can_resend(job):
                _render_actions(studio=studio, job=job, session_id=session_id)


def render_first_frame(*, studio: Studio, image_sha256: str) -> None:
    """A job's first frame, or a plain note when its file is gone from the data folder."""
    try:
        picture = studio.images.thumbnail(image_sha256, CARD_IMAGE_SIDE)
    except FileNotFoundError:
        st.caption("The first frame is no longer in the data folder.")
        return
    st.image(picture, width="stretch")


def _render_status_line(*, job: Job, studio: Studio) -> None:
    spec = studio.catalog.models.get(job.model)
    label = spec.label if spec else job.model
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
        stage = _STAGES.get(job.status, job.status.label)
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
    expected = studio.expected_finish(job)
    total = (expected - started).total_seconds() if expected is not None else 0.0
    if expected is None or total <= 0:
        st.markdown(f":material/schedule: {typical_wait_text(TYPICAL_WAIT[job.mode])}")
        return
    so_far = (now - started).total_seconds()
    if expected > now:
        text = time_left((expected - now).total_seconds())
        text = text[:1].upper() + text[1:]
    elif so_far < total * _OVERDUE_FACTOR:
        text = "Should be ready any moment"
    else:
        text = "Taking longer than usual; it is still going"
    # Never a full bar before the video is saved.
    st.progress(min(0.97, so_far / total), text=text)


def typical_wait_text(wait: TypicalWait) -> str:
    """``Usually under a minute``, ``Usually 1–5 minutes, sometimes up to 10``."""
    if wait.usual_from <= 0:
        text = f"Usually under {_minutes(wait.usual_to)}"
    else:
        text = f"Usually {round(wait.usual_from / 60)}–{_minutes(wait.usual_to)}"
    if wait.longest is not None:
        text += f", sometimes up to {round(wait.longest / 60)}"
    return text


def _minutes(seconds: float) -> str:
    count = round(seconds / 60)
    return "a minute" if count == 1 else f"{count} minutes"


def _render_cost(*, job: Job) -> None:
    if job.is_demo:
        st.caption(f"Demo: not billed (would be ≈ {money(job.estimate_usd)})")
    elif job.status is JobStatus.SUCCEEDED:
        seconds = f" for {job.billed_seconds} s" if job.billed_seconds else ""
        st.caption(f"Cost: {money(job.cost_usd)}{seconds}")
    elif job.in_flight or job.status is JobStatus.UNCERTAIN:
        st.caption(f"Expected cost: ≈ {money(job.estimate_usd)}, charged only if it succeeds")
    else:
        st.caption("Not billed")


def _render_actions(*, studio: Studio, job: Job, session_id: str) -> None:
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


def _resend(*, studio: Studio, job: Job, session_id: str) -> None:
    # Derived from the old job, so a double click on "Send again" still makes one new job.
    submission_id = str(uuid.uuid5(_RESEND_NAMESPACE, job.submission_id))
    try:
        studio.resend(
            job.id,
            submission_id=submission_id,
            session_id=session_id,
            api_key=state.session_api_key(),
        )
    except (KeyRequired, ValueError) as problem:
        st.toast(str(problem), icon=":material/error:")


def what_went_wrong(job: Job) -> str | None:
    """What happened to a job that did not end well and what to do; None when it is fine."""
    if job.status.tone not in ("error", "warning"):
        return None
    if job.explanation:
        return job.explanation
    said = ": ".join(part for part in (job.error_code, job.error_message) if part)
    return f"The gateway said: {said}" if said else None


def download_name(job: Job) -> str:
    """A file name that says what the video is: ``wan-12-wan2.2-i2v-plus-1080P.mp4``."""
    return f"wan-{job.id}-{job.model}-{job.resolution}.mp4"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
