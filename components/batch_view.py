"""A batch on the Generate page: a line of what became of its clips, then a grid of their cards.

Each clip is drawn with the job cards of ``components.job_view``; only the cards of clips in flight
tick, so a finished clip's player is not read again every second. Clips that did not go are named,
with one button that sends them (and never one that went).
"""

from __future__ import annotations

import uuid
from collections import Counter

import streamlit as st

from components import state
from components.compare import open_compare
from components.formatting import money_text, plain
from components.job_view import (
    REFRESH_SECONDS,
    TILE_IMAGE_SIDE,
    render_job_card,
    render_ticking_card,
)
from studio.compare import MAX_CLIPS as MAX_COMPARED
from studio.compare import can_compare
from studio.generation import InvalidRequest
from studio.humane import money, plural
from studio.images import ImageRejected
from studio.limits import SpendingLimitReached
from studio.records import Batch, Job, JobStatus
from studio.service import Studio
from studio.variations import VariationKind

# Cards per row in the result column; a phone stacks them.
CARDS_PER_ROW = 2

_SEND_UNSENT_NAMESPACE = uuid.UUID("0f3a52a4-8d1b-4a8e-9d7c-2b6c5e1f9a30")


def send_unsent_submission_id(batch: Batch) -> str:
    """The id of sending this batch's unsent clips: the same for the same clips, so a double
    click sends them once; clips refused again later get a new one."""
    clips = ",".join(str(job.id) for job in batch.not_sent)
    return str(uuid.uuid5(_SEND_UNSENT_NAMESPACE, f"{batch.submission_id}:{clips}"))


def render_batch(*, studio: Studio, batch_id: int, session_id: str) -> list[int]:
    """The batch's line, what did not go, and its grid; returns the ids of the jobs drawn."""
    batch = studio.batch(batch_id)
    if batch is None:
        return []
    with st.container(key=f"batch-{batch.id}"):
        # Drawn on full runs only: what it counts changes when a clip ends, and a clip that ends
        # reruns the page.
        render_batch_line(batch)
        _render_compare_these(batch)
        _render_not_sent(studio=studio, batch=batch, session_id=session_id)
        _render_grid(studio=studio, batch=batch, session_id=session_id)
    return [job.id for job in batch.jobs]


def render_batch_line(batch: Batch) -> None:
    """``4 clips · 2 done · 1 generating · 1 not sent`` and what the batch cost."""
    st.markdown(f"**{batch_counts(batch)}**")
    st.caption(money_text(batch_cost(batch)))


def batch_counts(batch: Batch) -> str:
    """How many clips, then how many are in each state, in the order a clip goes through them."""
    clips = batch.clips
    counted = Counter(_clip_state(job) for job in clips)
    order = [*_STATE_ORDER, *(word for word in counted if word not in _STATE_ORDER)]
    parts = [plural(len(clips), "clip")]
    parts += [f"{counted[word]} {word}" for word in order if counted[word]]
    return " · ".join(parts)


_STATE_ORDER = ("done", "generating", "not sent", "maybe sent", "failed")


def _clip_state(job: Job) -> str:
    if job.status is JobStatus.SUCCEEDED:
        return "done"
    if job.in_flight:
        return "generating"
    if job.status is JobStatus.REJECTED:
        return "not sent"
    if job.status is JobStatus.UNCERTAIN:
        return "maybe sent"
    if job.status.tone == "error":
        return "failed"
    return job.status.label.lower()  # "cancelled", "taking too long"


def batch_cost(batch: Batch) -> str:
    """What the batch cost, or will cost while clips are in flight; demo says what it would.

    ``$0.170 billed so far · $0.170 more if the rest succeed``, ``Cost $0.340``,
    ``Demo, not billed: would cost $0.340``, ``Demo, not billed: would have cost $0.340``.
    """
    if all(job.is_demo for job in batch.jobs):
        if batch.done:
            return f"Demo, not billed: would have cost {money(batch.cost_usd)}"
        return f"Demo, not billed: would cost {money(batch.cost_usd + batch.pending_usd)}"
    if batch.pending_usd:
        return (
            f"{money(batch.cost_usd)} billed so far · {money(batch.pending_usd)} more "
            "if the rest succeed"
        )
    return f"Cost {money(batch.cost_usd)}"


def clip_title(batch: Batch, job: Job) -> str:
    """``Clip 2``, with its seed for takes (the model and the prompt are on the card)."""
    number = batch.clip_number(job)
    if batch.kind == VariationKind.SEEDS and job.seed is not None:
        return f"Clip {number} · seed {job.seed}"
    return f"Clip {number}"


def _render_compare_these(batch: Batch) -> None:
    """Once two clips have their videos: play them side by side on the Compare page."""
    playable = [job.id for job in batch.clips if can_compare(job)]
    if len(playable) < 2:
        return
    label = (
        "Compare these" if len(playable) <= MAX_COMPARED else f"Compare the first {MAX_COMPARED}"
    )
    if st.button(label, key=state.batch_action_key(batch.id, "compare"), icon=":material/compare:"):
        open_compare(playable[:MAX_COMPARED])


def _render_not_sent(*, studio: Studio, batch: Batch, session_id: str) -> None:
    unsent = batch.not_sent
    if not unsent:
        return
    numbers = [batch.clip_number(job) for job in unsent]
    which = _clip_list(numbers)
    # The first refusal says why; the clips held back after it only repeat that they were not sent.
    reason = next((job.explanation for job in unsent if job.explanation), "")
    went = len(batch.clips) - len(unsent)
    said = f"{which} did not go" + (f" ({went} did)." if went else ".")
    with st.container(key=f"batch-not-sent-{batch.id}"):
        st.warning(plain(f"{said} {reason}".strip()), icon=":material/schedule_send:")
        st.button(
            f"Send the {len(unsent)} that did not go"
            if len(unsent) > 1
            else "Send the one that did not go",
            key=state.batch_action_key(batch.id, "send-unsent"),
            icon=":material/send:",
            type="primary",
            on_click=_send_unsent,
            kwargs={"studio": studio, "batch": batch, "session_id": session_id},
        )


def _clip_list(numbers: list[int]) -> str:
    """``Clip 3``, ``Clips 3 and 4``, ``Clips 2, 3 and 4``."""
    if len(numbers) == 1:
        return f"Clip {numbers[0]}"
    head = ", ".join(str(number) for number in numbers[:-1])
    return f"Clips {head} and {numbers[-1]}"


def _send_unsent(*, studio: Studio, batch: Batch, session_id: str) -> None:
    try:
        again = studio.send_unsent(
            batch.id,
            submission_id=send_unsent_submission_id(batch),
            session_id=session_id,
            api_key=state.session_api_key(),
            key_holder=state.key_holder().id,
        )
    except (
        InvalidRequest,
        FileNotFoundError,
        ImageRejected,
        LookupError,
        SpendingLimitReached,
        ValueError,
    ) as problem:
        st.toast(plain(_why_not_sent(problem)), icon=":material/error:")
        return
    still = len(again.not_sent)
    if still:
        st.toast(f"{plural(still, 'clip')} still did not go.", icon=":material/error:")
    else:
        st.toast("Sent: the rest of the batch is on its way.", icon=":material/movie:")


def _why_not_sent(problem: Exception) -> str:
    """What stopped "Send the N that did not go", in plain words (KeyRequired is a LookupError)."""
    if isinstance(problem, InvalidRequest):
        return " ".join(field.message for field in problem.problems)
    if isinstance(problem, FileNotFoundError):
        # Its text would be a path on this computer; the user needs what happened and what to do.
        return (
            "The first frame of these clips is no longer stored, so they cannot be sent again. "
            "Upload it on the form and generate them anew."
        )
    return str(problem)


def _render_grid(*, studio: Studio, batch: Batch, session_id: str) -> None:
    clips = list(batch.clips)
    with st.container(key=f"batch-grid-{batch.id}"):
        for row_start in range(0, len(clips), CARDS_PER_ROW):
            columns = st.columns(CARDS_PER_ROW, gap="small")
            row = clips[row_start : row_start + CARDS_PER_ROW]
            for column, job in zip(columns, row, strict=False):
                with column:
                    st.caption(clip_title(batch, job))
                    if job.in_flight:
                        # Only an in-flight card ticks; it reruns the page when its clip ends.
                        card = st.fragment(run_every=REFRESH_SECONDS)(render_ticking_card)
                        card(
                            studio=studio,
                            session_id=session_id,
                            job_id=job.id,
                            image_side=TILE_IMAGE_SIDE,
                        )
                    else:
                        render_job_card(
                            studio=studio,
                            job=job,
                            session_id=session_id,
                            image_side=TILE_IMAGE_SIDE,
                        )
