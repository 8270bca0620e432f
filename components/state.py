"""Every ``st.session_state`` key the app uses, with typed accessors.

Widget keys are public constants so that tests and the browser can find each widget. The Generate
form's widgets keep their values across page switches with ``persist_state="session"``; everything
else that must outlive a rerun (the chosen images, the pending submission, a key typed in Settings)
lives under private keys that no widget owns. Jobs and money are never kept here: the store is the
source of truth.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import streamlit as st

from studio.catalog import Catalog, ModelSpec
from studio.generation import JobDraft
from studio.images import ImageCheck, ImageReading, PreparedImage
from studio.jobs import draw_seed
from studio.variations import MAX_CLIPS, MIN_CLIPS, VariationKind

# The session id also sits in the page address, so that a browser refresh keeps this
# session's job cards on the Generate page.
SESSION_QUERY_PARAM = "session"

# Generate form widgets (values kept across page switches).
GEN_MODEL = "gen.model"
GEN_RESOLUTION = "gen.resolution"
GEN_DURATION = "gen.duration"
GEN_PROMPT = "gen.prompt"
GEN_NEGATIVE_PROMPT = "gen.negative_prompt"
GEN_PROMPT_EXTEND = "gen.prompt_extend"
GEN_WATERMARK = "gen.watermark"
GEN_RANDOM_SEED = "gen.random_seed"
GEN_SEED = "gen.seed"
# How many clips one click makes: one, several takes, one per prompt line, or one per model.
GEN_VARIATIONS = "gen.variations"
GEN_TAKES = "gen.takes"
GEN_PROMPT_LINES = "gen.prompt_lines"
GEN_COMPARE_MODELS = "gen.compare_models"
ONE_CLIP = "one"  # the value of GEN_VARIATIONS for a single job
FORM_WIDGET_KEYS = (
    GEN_MODEL,
    GEN_RESOLUTION,
    GEN_DURATION,
    GEN_PROMPT,
    GEN_NEGATIVE_PROMPT,
    GEN_PROMPT_EXTEND,
    GEN_WATERMARK,
    GEN_RANDOM_SEED,
    GEN_SEED,
    GEN_VARIATIONS,
    GEN_TAKES,
    GEN_PROMPT_LINES,
    GEN_COMPARE_MODELS,
)

# Generate page buttons and per-frame inputs. A frame slot is named as the draft's field:
# "image" (the first frame) or "last_frame" (the last frame of first-and-last-frame models).
FIRST_FRAME = "image"
LAST_FRAME = "last_frame"
GEN_NEW_SEED = "gen.new_seed"
GEN_SUBMIT = "gen.submit"
GEN_BATCH_CONFIRM = "gen.batch_confirm"
DEFAULT_TAKES = 4


def batch_confirm_key(clips: int, total: str) -> str:
    """The confirmation box of one batch price: a new count or total, or a batch sent since the
    box was ticked, asks again."""
    sent = st.session_state.get(_BATCHES_SENT, 0)
    return f"{GEN_BATCH_CONFIRM}.{sent}.{clips}.{total}"


def note_batch_sent() -> None:
    """A batch went: its confirmation does not carry over to the next one."""
    st.session_state[_BATCHES_SENT] = st.session_state.get(_BATCHES_SENT, 0) + 1


def batch_action_key(batch_id: int, action: str) -> str:
    """The widget key of one action on a batch, e.g. ``batch.3.send-unsent``."""
    return f"batch.{batch_id}.{action}"


def motion_idea_key(group: str) -> str:
    """The widget key of one row of motion ideas, e.g. ``gen.idea.Camera``."""
    return f"gen.idea.{group}"


def frame_key(slot: str, name: str) -> str:
    """The widget key of one input of a frame slot, e.g. ``gen.image.upload``."""
    return f"gen.{slot}.{name}"


# Job card actions.
def job_action_key(job_id: int, action: str) -> str:
    """The widget key of one action on a job card, e.g. ``job.12.recheck``."""
    return f"job.{job_id}.{action}"


# History page widgets.
HIST_MODELS = "hist.models"
HIST_STATUSES = "hist.statuses"
HIST_MODE = "hist.mode"
HIST_WHEN = "hist.when"
HIST_DATES = "hist.dates"
HIST_TEXT = "hist.text"
HIST_PAGE = "hist.page"
HIST_TABLE = "hist.table"
HIST_OPEN = "hist.open"
HIST_REUSE = "hist.reuse"
HIST_EXPORT = "hist.export"
HIST_DOWNLOAD = "hist.download"
HIST_BATCH = "hist.batch"  # the batch whose clips the page shows, or None for every job

# History's favourites filter and the opened job's way to Compare.
HIST_FAVOURITES = "hist.favourites"
HIST_COMPARE = "hist.compare"
HIST_BY_MODEL = "hist.by_model"

# Compare page widgets.
COMPARE_PICK = "compare.pick"
COMPARE_IN_STEP = "compare.in_step"  # the custom component that plays the clips in step


def compare_action_key(job_id: int, action: str) -> str:
    """The widget key of one action on a compared clip, e.g. ``compare.12.favourite``."""
    return f"compare.{job_id}.{action}"


# Models & prices page widgets.
PRICES_MODEL = "prices.model"
PRICES_RESOLUTION = "prices.resolution"
PRICES_DURATION = "prices.duration"


def prices_choice_key(choice: str, model_id: str) -> str:
    """The widget key of one model's choice in the calculator, e.g. ``prices.resolution.m``."""
    return f"{choice}.{model_id}"


# Settings page widgets.
SETTINGS_KEY_INPUT = "settings.key_input"
SETTINGS_SAVE_KEY = "settings.save_key"
SETTINGS_FORGET_KEY = "settings.forget_key"
SETTINGS_DAILY_LIMIT = "settings.daily_limit"
SETTINGS_MONTHLY_LIMIT = "settings.monthly_limit"
SETTINGS_SAVE_LIMITS = "settings.save_limits"
# Administrators, with sign-in: one person's own limits.
SETTINGS_PERSON = "settings.person"
SETTINGS_PERSON_DAILY = "settings.person_daily"
SETTINGS_PERSON_MONTHLY = "settings.person_monthly"
SETTINGS_SAVE_PERSON_LIMITS = "settings.save_person_limits"
SETTINGS_PEOPLE_TABLE = "settings.people_table"


def person_limit_key(cap_key: str, email: str) -> str:
    """One person's cap field, e.g. ``settings.person_daily.ana@example.com``."""
    return f"{cap_key}.{email}"


# Sign-in (with an [auth] section in secrets): the sign-in page and the sidebar.
SIGN_IN = "signin.sign_in"
SIGN_OUT = "signin.sign_out"
# History: everyone's jobs instead of the signed-in person's own.
HIST_EVERYONE = "hist.everyone"

# Private, non-widget keys.
_SESSION_ID = "_session.id"
_DRAFT_TO_RESTORE = "_session.draft_to_restore"
_DRAFT_SAVED = "_session.draft_saved"
_FRAMES = "_gen.frames"
_FRAME_ERRORS = "_gen.frame_errors"
_PENDING_SUBMISSION = "_gen.pending_submission"
_LAST_SUBMISSION = "_gen.last_submission"
_BATCHES_SENT = "_gen.batches_sent"
_SESSION_API_KEY = "_settings.session_api_key"
_KEY_HOLDER = "_settings.key_holder"
_KEY_ERROR = "_settings.key_error"
_LIMITS_MESSAGE = "_settings.limits_message"
_PERSON_LIMITS_MESSAGE = "_settings.person_limits_message"
_NOTICE = "_notice"
_FOCUS = "_gen.focus"
_SEEN_IN_FLIGHT = "_jobs.seen_in_flight"
_FINISH_RERUN = "_jobs.finish_rerun"
_TITLE_MARK = "_jobs.title_mark"
_COMPARE_REQUEST = "_compare.request"

# A second click on Generate this soon after the first, with the same form, is a double click.
DOUBLE_CLICK_SECONDS = 2.0


@dataclass(eq=False)
class KeyHolder:
    """This browser session, as the holder of a key typed in Settings.

    Its id is made here and never read from the page address: a shared ``?session=`` link gives
    another browser the same session id, but not this holder, so not the key either. The object
    lives in this session's state, so it is collected when Streamlit drops the session.
    """

    id: str


@dataclass(frozen=True)
class FrameChoice:
    """An image the user gave for one frame slot, as read once, and what will be sent.

    ``reading`` holds the check and the image with its fixes made from that one decode;
    ``accepted`` says whether it is to be sent: at once for an image that meets every rule,
    after "Fix it" for one that needs fixes.
    """

    source: str  # the file name or the link
    original: bytes = field(repr=False)
    reading: ImageReading
    accepted: bool

    @property
    def check(self) -> ImageCheck:
        """What the image is and which of the gateway's rules it breaks."""
        return self.reading.check

    @property
    def prepared(self) -> PreparedImage | None:
        """What will be sent; None until the image is acceptable (as given, or fixed)."""
        return self.reading.prepared if self.accepted else None


def init_defaults(*, catalog: Catalog) -> None:
    """Give every persistent widget its first value, once per browser session."""
    model = catalog.default_model
    defaults: dict[str, Any] = {
        GEN_MODEL: model.id,
        GEN_RESOLUTION: model.default_resolution,
        GEN_DURATION: model.default_duration,
        GEN_PROMPT: "",
        GEN_NEGATIVE_PROMPT: "",
        GEN_PROMPT_EXTEND: True,
        GEN_WATERMARK: False,
        GEN_RANDOM_SEED: True,
        GEN_SEED: draw_seed(catalog),
        GEN_VARIATIONS: ONE_CLIP,
        GEN_TAKES: DEFAULT_TAKES,
        GEN_PROMPT_LINES: "",
        GEN_COMPARE_MODELS: [],
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


# --- the browser session -------------------------------------------------------------------


def session_id() -> str:
    """This browser session's id: from the page address after a refresh, or a new one."""
    if _SESSION_ID not in st.session_state:
        from_address = _valid_uuid(st.query_params.get(SESSION_QUERY_PARAM, ""))
        st.session_state[_SESSION_ID] = from_address or str(uuid.uuid4())
        # A session that starts from an address (a refresh) brings back that address's draft.
        st.session_state[_DRAFT_TO_RESTORE] = from_address is not None
    current: str = st.session_state[_SESSION_ID]
    if st.query_params.get(SESSION_QUERY_PARAM) != current:
        st.query_params[SESSION_QUERY_PARAM] = current
    return current


def start_a_session_of_its_own() -> str:
    """Leave the address's session for a new one (another person's address): a new id."""
    st.session_state[_SESSION_ID] = str(uuid.uuid4())
    st.session_state.pop(_DRAFT_TO_RESTORE, None)
    st.session_state.pop(_DRAFT_SAVED, None)
    return session_id()


def _valid_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


# --- the Generate form -----------------------------------------------------------------------


def take_draft_to_restore() -> bool:
    """Whether this session started from an address whose draft is still to restore (once)."""
    return bool(st.session_state.pop(_DRAFT_TO_RESTORE, False))


def saved_draft() -> str | None:
    """The draft as this session last kept it in the store (to skip writing it unchanged)."""
    return st.session_state.get(_DRAFT_SAVED)


def mark_draft_saved(body: str) -> None:
    """Remember what the store now holds for this session's draft."""
    st.session_state[_DRAFT_SAVED] = body


def form_values() -> dict[str, Any]:
    """The Generate form's widget values, by widget key."""
    return {key: st.session_state.get(key) for key in FORM_WIDGET_KEYS}


def restore_form_values(values: dict[str, Any], *, catalog: Catalog) -> None:
    """Put kept widget values back; a value of the wrong kind or an unknown model is skipped."""
    if values.get(GEN_MODEL) not in catalog.models:
        values = {key: value for key, value in values.items() if key != GEN_MODEL}
    kinds: dict[str, type | tuple[type, ...]] = {
        GEN_MODEL: str,
        GEN_RESOLUTION: str,
        GEN_DURATION: int,
        GEN_PROMPT: str,
        GEN_NEGATIVE_PROMPT: str,
        GEN_PROMPT_EXTEND: bool,
        GEN_WATERMARK: bool,
        GEN_RANDOM_SEED: bool,
        GEN_SEED: int,
        GEN_VARIATIONS: str,
        GEN_TAKES: int,
        GEN_PROMPT_LINES: str,
    }
    for key, kind in kinds.items():
        value = values.get(key)
        if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            st.session_state[key] = value
    models = values.get(GEN_COMPARE_MODELS)
    if isinstance(models, list):
        st.session_state[GEN_COMPARE_MODELS] = [m for m in models if m in catalog.models]
    keep_options_valid(catalog.model(st.session_state[GEN_MODEL]))
    keep_variations_valid()


def frame(slot: str) -> FrameChoice | None:
    """The image chosen for a frame slot, if any."""
    return st.session_state.get(_FRAMES, {}).get(slot)


def set_frame(slot: str, choice: FrameChoice | None) -> None:
    """Remember (or forget, with ``None``) the image for a frame slot; clears its error."""
    frames = dict(st.session_state.get(_FRAMES, {}))
    if choice is None:
        frames.pop(slot, None)
    else:
        frames[slot] = choice
    st.session_state[_FRAMES] = frames
    set_frame_error(slot, None)


def frame_error(slot: str) -> str | None:
    """Why the last image given for a frame slot could not be used, if it could not."""
    return st.session_state.get(_FRAME_ERRORS, {}).get(slot)


def set_frame_error(slot: str, message: str | None) -> None:
    """Remember (or clear, with ``None``) why an image could not be used."""
    errors = dict(st.session_state.get(_FRAME_ERRORS, {}))
    if message is None:
        errors.pop(slot, None)
    else:
        errors[slot] = message
    st.session_state[_FRAME_ERRORS] = errors


def reset_options_for_model(*, catalog: Catalog) -> None:
    """Put resolution and duration back to the defaults of the model just chosen."""
    spec = catalog.model(st.session_state[GEN_MODEL])
    st.session_state[GEN_RESOLUTION] = spec.default_resolution
    st.session_state[GEN_DURATION] = spec.default_duration


def keep_options_valid(spec: ModelSpec) -> None:
    """Replace a resolution or length the model does not offer with its default."""
    if st.session_state.get(GEN_RESOLUTION) not in spec.resolutions:
        st.session_state[GEN_RESOLUTION] = spec.default_resolution
    if st.session_state.get(GEN_DURATION) not in spec.durations:
        st.session_state[GEN_DURATION] = spec.default_duration


VARIATION_CHOICES = (ONE_CLIP, *(kind.value for kind in VariationKind))


def keep_variations_valid() -> None:
    """Put a kept variations choice that this version does not know back to its default."""
    if st.session_state.get(GEN_VARIATIONS) not in VARIATION_CHOICES:
        st.session_state[GEN_VARIATIONS] = ONE_CLIP
    takes = st.session_state.get(GEN_TAKES)
    if not isinstance(takes, int) or isinstance(takes, bool) or not MIN_CLIPS <= takes <= MAX_CLIPS:
        st.session_state[GEN_TAKES] = DEFAULT_TAKES


def start_variations() -> None:
    """A batch chosen with nothing in it yet starts from the form: its prompt, or its model."""
    values = st.session_state
    kind = values.get(GEN_VARIATIONS)
    if kind == VariationKind.PROMPTS and not values.get(GEN_PROMPT_LINES):
        values[GEN_PROMPT_LINES] = values.get(GEN_PROMPT) or ""
    elif kind == VariationKind.MODELS and not values.get(GEN_COMPARE_MODELS):
        values[GEN_COMPARE_MODELS] = [values[GEN_MODEL]]


def roll_seed(*, catalog: Catalog) -> None:
    """Put a fresh random seed in the seed field."""
    st.session_state[GEN_SEED] = draw_seed(catalog)


def fill_form(
    draft: JobDraft, *, first_frame: FrameChoice | None, last_frame: FrameChoice | None
) -> None:
    """Put a past job's settings and its checked images into the Generate form."""
    st.session_state[GEN_MODEL] = draft.model
    st.session_state[GEN_RESOLUTION] = draft.resolution
    st.session_state[GEN_DURATION] = draft.duration
    st.session_state[GEN_PROMPT] = draft.prompt
    st.session_state[GEN_NEGATIVE_PROMPT] = draft.negative_prompt
    st.session_state[GEN_PROMPT_EXTEND] = draft.prompt_extend
    st.session_state[GEN_WATERMARK] = draft.watermark
    st.session_state[GEN_RANDOM_SEED] = draft.seed is None
    st.session_state[GEN_VARIATIONS] = ONE_CLIP  # the settings of one job make one clip
    if draft.seed is not None:
        st.session_state[GEN_SEED] = draft.seed
    set_frame(FIRST_FRAME, first_frame)
    set_frame(LAST_FRAME, last_frame)


def form_fingerprint() -> tuple[object, ...]:
    """What the form holds now, to tell a double click from a deliberate second job."""
    images = tuple(
        choice.prepared.sha256 if choice and choice.prepared else None
        for choice in (frame(FIRST_FRAME), frame(LAST_FRAME))
    )
    return (*(st.session_state.get(key) for key in FORM_WIDGET_KEYS), *images)


def is_double_click(
    last: tuple[tuple[object, ...], float] | None, fingerprint: tuple[object, ...], now: float
) -> bool:
    """Whether a click at ``now`` repeats the last sent one: same form, inside the window."""
    if not last or last[0] != fingerprint:
        return False
    return now - last[1] < DOUBLE_CLICK_SECONDS


def request_submission(*, now: Callable[[], float] = time.monotonic) -> None:
    """Record one click on Generate as one pending submission (double clicks are ignored).

    ``now`` is the clock the double-click window is measured on (seconds, monotonic).
    """
    if st.session_state.get(_PENDING_SUBMISSION):
        return  # a rerun interrupted the send: the same id is sent again
    fingerprint = form_fingerprint()
    if is_double_click(st.session_state.get(_LAST_SUBMISSION), fingerprint, now()):
        return
    st.session_state[_PENDING_SUBMISSION] = str(uuid.uuid4())


def pending_submission() -> str | None:
    """The submission id of a click not yet turned into a job."""
    return st.session_state.get(_PENDING_SUBMISSION)


def submission_done(*, now: Callable[[], float] = time.monotonic) -> None:
    """The pending submission is now a job: the next click makes a new one.

    What this run read of the totals and the limits is out of date from here on.
    """
    st.session_state.pop(_PENDING_SUBMISSION, None)
    st.session_state[_LAST_SUBMISSION] = (form_fingerprint(), now())
    start_run()


# --- History ------------------------------------------------------------------------------------


def history_batch() -> int | None:
    """The batch History is narrowed to, if any."""
    chosen = st.session_state.get(HIST_BATCH)
    return chosen if isinstance(chosen, int) else None


def show_batch_in_history(batch_id: int | None) -> None:
    """Narrow History to one batch's clips, or (``None``) show every job again (a button's
    callback, before the chooser is drawn)."""
    st.session_state[HIST_BATCH] = batch_id


# --- messages that survive one rerun ------------------------------------------------------------


def set_notice(text: str) -> None:
    """Show a short message on the next run (e.g. after a page switch)."""
    st.session_state[_NOTICE] = text


def pop_notice() -> str | None:
    """The message left for this run, if any."""
    return st.session_state.pop(_NOTICE, None)


# --- the job in focus, and jobs that end while the user is elsewhere ---------------------------


@dataclass(frozen=True)
class FocusedJob:
    """The job the user opened from the gallery, and the newest job when they did."""

    job_id: int
    newest_when_chosen: int


def focused_job() -> FocusedJob | None:
    """The job opened from the Generate page's gallery, if any."""
    return st.session_state.get(_FOCUS)


def set_focused_job(job_id: int, newest_id: int) -> None:
    """Open a job in the Generate page's large card (until a newer job than ``newest_id``)."""
    st.session_state[_FOCUS] = FocusedJob(job_id=job_id, newest_when_chosen=newest_id)


def jobs_seen_in_flight() -> frozenset[int]:
    """This session's jobs that were in flight at the end of the last run."""
    return st.session_state.get(_SEEN_IN_FLIGHT, frozenset())


def set_jobs_seen_in_flight(job_ids: frozenset[int]) -> None:
    """Remember which jobs were in flight, to tell on the next run which of them ended."""
    st.session_state[_SEEN_IN_FLIGHT] = job_ids


def note_finish_rerun() -> None:
    """The next run is the app's own, because a job ended (not something the user did)."""
    st.session_state[_FINISH_RERUN] = True


def pop_finish_rerun() -> bool:
    """Whether this run was started because a job ended."""
    return bool(st.session_state.pop(_FINISH_RERUN, False))


def title_mark() -> str | None:
    """What the tab's title says about jobs that ended, e.g. "✓ Done"."""
    return st.session_state.get(_TITLE_MARK)


def set_title_mark(mark: str | None) -> None:
    """Set (or clear, with ``None``) what the tab's title says about jobs that ended."""
    st.session_state[_TITLE_MARK] = mark


# --- a key typed in Settings -----------------------------------------------------------------


def session_api_key() -> str | None:
    """The API key entered for this browser session only, if any."""
    return st.session_state.get(_SESSION_API_KEY)


def set_session_api_key(key: str | None) -> None:
    """Keep (or, with ``None``, forget) the API key for this browser session."""
    if key:
        st.session_state[_SESSION_API_KEY] = key
    else:
        st.session_state.pop(_SESSION_API_KEY, None)


def key_holder() -> KeyHolder:
    """This browser session as the holder of its typed key (made once per session)."""
    if _KEY_HOLDER not in st.session_state:
        st.session_state[_KEY_HOLDER] = KeyHolder(id=str(uuid.uuid4()))
    holder: KeyHolder = st.session_state[_KEY_HOLDER]
    return holder


def key_error() -> str | None:
    """Why the key last typed in Settings was not taken, if it was not."""
    return st.session_state.get(_KEY_ERROR)


def set_key_error(message: str | None) -> None:
    """Remember (or clear, with ``None``) why a typed key was not taken."""
    if message:
        st.session_state[_KEY_ERROR] = message
    else:
        st.session_state.pop(_KEY_ERROR, None)


# --- clips sent to the Compare page ----------------------------------------------------------


def ask_to_compare(job_ids: list[int]) -> None:
    """Have the Compare page open with these clips picked (read once, on its next run)."""
    st.session_state[_COMPARE_REQUEST] = list(job_ids)


def take_compare_request() -> list[int] | None:
    """The clips another page asked Compare to show, once; None when none were asked for."""
    return st.session_state.pop(_COMPARE_REQUEST, None)


def compare_pick() -> list[int] | None:
    """The clips in the Compare page's picker; None before this session has drawn it."""
    return st.session_state.get(COMPARE_PICK)


def set_compare_pick(job_ids: list[int]) -> None:
    """Put these clips in the Compare page's picker (before it is drawn)."""
    st.session_state[COMPARE_PICK] = list(job_ids)


# --- the spending limits on the Settings page -----------------------------------------------


def pop_limits_message() -> tuple[str, str] | None:
    """What saving the spending limits said, once: (``success``, ``info`` or ``error``, words)."""
    return st.session_state.pop(_LIMITS_MESSAGE, None)


def set_limits_message(tone: str, words: str) -> None:
    """Say what saving the spending limits did, on the next run only."""
    st.session_state[_LIMITS_MESSAGE] = (tone, words)


def pop_person_limits_message() -> tuple[str, str] | None:
    """What saving a person's limits said (tone, words), once."""
    return st.session_state.pop(_PERSON_LIMITS_MESSAGE, None)


def set_person_limits_message(tone: str, words: str) -> None:
    st.session_state[_PERSON_LIMITS_MESSAGE] = (tone, words)


# -- what one run of the app reads once ---------------------------------------------------------

# The running totals and what is left of the spending limits are read by the page (its mode line,
# the form) and again by the sidebar in the same run; each read sums the store. Kept for one run.
_RUN_MEMO = "run.memo"
T = TypeVar("T")


def start_run() -> None:
    """Called first by every full run of the app: forget what the previous run read."""
    st.session_state[_RUN_MEMO] = {}


def once_per_run(name: Hashable, read: Callable[[], T]) -> T:
    """``read()`` the first time ``name`` is asked for in this run; the same answer after that."""
    memo = st.session_state.setdefault(_RUN_MEMO, {})
    if name not in memo:
        memo[name] = read()
    return memo[name]
