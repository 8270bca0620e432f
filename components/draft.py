"""The Generate form kept in the store per browser session, so that a refresh brings it back.

The form's values go in as they are; each frame as the content hash of the image the user gave
(kept in the image library) and whether it was made ready to send, which is done again on the
way back (preparing an image gives the same result every time).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from components import state
from components.signin import current_owner
from studio.images import ImageRejected
from studio.service import Studio

_log = logging.getLogger("wan_studio")
_SLOTS = (state.FIRST_FRAME, state.LAST_FRAME)


def restore_draft(*, studio: Studio, session_id: str) -> None:
    """Once per browser session started from an address: put that address's draft back.

    With sign-in, an address whose draft or jobs are someone else's is not theirs to see: the
    session leaves it for one of its own, with a fresh form, and never writes over the other's
    draft.
    """
    if not state.take_draft_to_restore():
        return
    if not studio.session_open_to(session_id, current_owner()):
        state.start_a_session_of_its_own()
        return
    stored = studio.load_draft(session_id)
    body = stored.body if stored is not None else None
    if not body:
        return
    try:
        kept = json.loads(body)
    except ValueError:
        return
    if not isinstance(kept, dict):
        return
    form = kept.get("form")
    if isinstance(form, dict):
        state.restore_form_values(form, catalog=studio.catalog)
    frames = kept.get("frames")
    for slot in _SLOTS:
        frame = frames.get(slot) if isinstance(frames, dict) else None
        if isinstance(frame, dict) and (choice := _frame_back(studio=studio, kept=frame)):
            state.set_frame(slot, choice)
    state.mark_draft_saved(body)


def save_draft(*, studio: Studio, session_id: str) -> None:
    """Keep the form as it is now, when it changed since it was last kept."""
    body = json.dumps(_snapshot(), sort_keys=True)
    if body == state.saved_draft():
        return
    for slot in _SLOTS:
        if choice := state.frame(slot):
            studio.keep_image(choice.original, format=choice.check.format)
    studio.save_draft(session_id, body, owner=current_owner())
    state.mark_draft_saved(body)


def _snapshot() -> dict[str, Any]:
    frames: dict[str, Any] = {}
    for slot in _SLOTS:
        choice = state.frame(slot)
        if choice is None:
            continue
        frames[slot] = {
            "source": choice.source,
            "image": choice.check.sha256,  # the hash of the image as given
            "ready": choice.prepared is not None,
        }
    return {"form": state.form_values(), "frames": frames}


def _frame_back(*, studio: Studio, kept: dict[str, Any]) -> state.FrameChoice | None:
    source, sha256 = kept.get("source"), kept.get("image")
    if not isinstance(source, str) or not isinstance(sha256, str):
        return None
    try:
        original = studio.kept_image(sha256)
        reading = studio.read_upload(source, original)
    except (OSError, ValueError, ImageRejected):
        _log.warning("a kept frame could not be read back; the draft goes on without it")
        return None
    ready = bool(kept.get("ready")) and reading.prepared is not None
    return state.FrameChoice(source=source, original=original, reading=reading, accepted=ready)
