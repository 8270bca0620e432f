"""Choosing a frame: upload or link, a preview with what the video service thinks of it, and fixes.

Upload and link take the same inputs and go through the same checks and fixes: the uploader
accepts any file, and the content, not the name, decides what it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from components import state
from components.formatting import plain
from studio.catalog import Catalog, Limits
from studio.humane import MEGABYTE, file_size, size_limit
from studio.images import ImageCheck, ImageReading, ImageRejected, PreparedImage, shrink_to_jpeg
from studio.links import LinkRejected
from studio.service import Studio

# Formats a browser can show as they are; others are previewed once converted.
_BROWSER_FORMATS = frozenset({"JPEG", "PNG", "BMP", "WEBP", "GIF"})
# Opens (or finds) the Studio: called only when an image or a link has to be read, so that the
# frame input is drawn on a fresh server before the Studio has opened.
StudioOpener = Callable[[], Studio]
# Wider than the preview's column: a light copy, made once per image, is what every rerun sends
# instead of the whole (up to 10 MB) file.
PREVIEW_SIDE = 720


def render_frame_input(
    *, catalog: Catalog, open_studio: StudioOpener, slot: str, title: str, hint: str
) -> None:
    """Upload or link tabs while no image is chosen; the preview and its checks once one is.

    Drawn from the catalog alone: the Studio is needed only once something is uploaded.
    """
    with st.container(border=True, key=f"frame-{slot}"):
        st.subheader(title)
        choice = state.frame(slot)
        if choice is None:
            st.caption(hint)
            _render_sources(catalog=catalog, open_studio=open_studio, slot=slot)
        else:
            _render_preview(slot=slot, choice=choice)
        if error := state.frame_error(slot):
            st.error(error, icon=":material/image_not_supported:")


def _render_sources(*, catalog: Catalog, open_studio: StudioOpener, slot: str) -> None:
    rules = image_rules(catalog.limits, upload_limit_bytes=upload_limit_bytes())
    upload_tab, link_tab = st.tabs(["Upload", "Link"])
    with upload_tab:
        # No ``type=`` filter: the browser would refuse a GIF with only an icon and a tooltip,
        # where a link to the same GIF is converted. Every file is read and checked here instead.
        st.file_uploader(
            "Drop an image here, or browse",
            key=state.frame_key(slot, "upload"),
            on_change=_take_upload,
            kwargs={"open_studio": open_studio, "slot": slot},
            help=rules,
        )
        # Written out, not only in the tooltip: a file over the upload limit is refused by the
        # browser before it reaches the app, so this line is the only place that says why.
        st.caption(rules)
    with link_tab:
        # Enter (or leaving the field) commits a changed link, which fetches it.
        st.text_input(
            "Image link",
            key=state.frame_key(slot, "link"),
            placeholder="https://example.com/picture.jpg",
            on_change=_take_link,
            kwargs={"open_studio": open_studio, "slot": slot},
        )
        st.button(
            "Fetch",
            key=state.frame_key(slot, "fetch"),
            icon=":material/download:",
            on_click=_take_link,
            kwargs={"open_studio": open_studio, "slot": slot},
        )


def upload_limit_bytes() -> int:
    """The largest file the uploader lets through (``server.maxUploadSize``, in megabytes)."""
    return int(st.get_option("server.maxUploadSize")) * MEGABYTE


def image_rules(limits: Limits, *, upload_limit_bytes: int) -> str:
    """What the uploader and the link take, in the unit the uploader shows its own limit in."""
    formats = ", ".join(limits.image_formats[:-1]) + f" or {limits.image_formats[-1]}"
    return (
        f"Files up to {size_limit(upload_limit_bytes)}. The video service takes {formats} images "
        f"up to {size_limit(limits.image_max_bytes)} and "
        f"{limits.image_min_side_px}–{limits.image_max_side_px} px per side; other images "
        "(GIF, TIFF, larger or heavier ones) can usually be fixed here in one click."
    )


def _take_upload(*, open_studio: StudioOpener, slot: str) -> None:
    uploaded: UploadedFile | None = st.session_state.get(state.frame_key(slot, "upload"))
    if uploaded is None:
        return
    _take(studio=open_studio(), slot=slot, source=uploaded.name, data=uploaded.getvalue())


def _take_link(*, open_studio: StudioOpener, slot: str) -> None:
    url = (st.session_state.get(state.frame_key(slot, "link")) or "").strip()
    if not url:
        state.set_frame_error(slot, "Paste a link to an image first.")
        return
    chosen = state.frame(slot)
    if chosen is not None and chosen.source == url:
        return  # Enter and a click on Fetch in one go: the link is fetched once
    studio = open_studio()
    try:
        fetched = studio.load_link(url, max_bytes=upload_limit_bytes())
    except LinkRejected as problem:
        state.set_frame_error(slot, str(problem))
        return
    _take(studio=studio, slot=slot, source=url, data=fetched.data)


def _take(*, studio: Studio, slot: str, source: str, data: bytes) -> None:
    try:
        reading = studio.read_upload(source, data)
    except ImageRejected as problem:
        state.set_frame_error(slot, str(problem))
        return
    # An image that already meets every rule is used at once (rotated upright if it needs it).
    state.set_frame(
        slot,
        state.FrameChoice(source=source, original=data, reading=reading, accepted=reading.check.ok),
    )


def frame_from_prepared(*, image: PreparedImage, source: str) -> state.FrameChoice:
    """A frame choice for an image that was sent before (reused from History)."""
    reading = ImageReading(check=image.as_check(), prepared=image)
    return state.FrameChoice(source=source, original=image.data, reading=reading, accepted=True)


def _fix(*, slot: str) -> None:
    choice = state.frame(slot)
    if choice is None:
        return
    if choice.reading.prepared is None:
        state.set_frame_error(slot, choice.reading.refusal)
        return
    # The fixes were made when the image was read: accepting them decodes nothing again.
    state.set_frame(slot, replace(choice, accepted=True))


@st.cache_data(max_entries=16, show_spinner=False)
def _preview(sha256: str, _data: bytes) -> bytes:
    return shrink_to_jpeg(_data, max_side=PREVIEW_SIDE)


def _render_preview(*, slot: str, choice: state.FrameChoice) -> None:
    check = choice.check
    shown = choice.prepared
    alt = f"Preview of {'the last' if slot == state.LAST_FRAME else 'the first'} frame"
    # At its natural size at most: a small image blown up to the column looks pixelated.
    try:
        if shown is not None:
            st.image(_preview(shown.sha256, shown.data), width="content", alt=alt)
        elif check.format in _BROWSER_FORMATS:
            st.image(_preview(check.sha256, choice.original), width="content", alt=alt)
    except ImageRejected as problem:
        # The checks below still say what the image is and what can be done with it.
        st.caption(plain(f"No preview: {problem}"))
    # The image's name is the user's (or, reused from History, someone else's) text.
    st.caption(plain(_describe(choice.source, check)))
    for note in check.notes:
        st.caption(plain(note))
    if shown is None:
        _render_problems(slot=slot, check=check)
    else:
        _render_ready(slot=slot, prepared=shown, fixed=not check.ok)
    st.button(
        "Choose another image",
        key=state.frame_key(slot, "remove"),
        icon=":material/swap_horiz:",
        on_click=state.set_frame,
        args=(slot, None),
    )


def _describe(source: str, check: ImageCheck) -> str:
    name = source.rsplit("/", 1)[-1] or source
    return (
        f"{name} · {check.format} · {check.width}×{check.height} px · {file_size(check.size_bytes)}"
    )


def _render_problems(*, slot: str, check: ImageCheck) -> None:
    with st.container(key=f"frame-{slot}-problems"):
        for problem in check.problems:
            st.warning(problem.message, icon=":material/warning:")
        if check.can_fix:
            fixes = "\n".join(f"- {problem.fix}" for problem in check.problems)
            st.markdown(f"One click fixes this, and your original stays as it is:\n{fixes}")
            st.button(
                "Fix it",
                key=state.frame_key(slot, "fix"),
                type="primary",
                icon=":material/auto_fix_high:",
                on_click=_fix,
                kwargs={"slot": slot},
            )
        else:
            st.error(
                "This image cannot be sent as it is, and no automatic fix helps. "
                "Choose another image.",
                icon=":material/block:",
            )


def _render_ready(*, slot: str, prepared: PreparedImage, fixed: bool) -> None:
    with st.container(key=f"frame-{slot}-ready"):
        if prepared.fixes:
            done = "\n".join(f"- {fix}" for fix in prepared.fixes)
            st.success(f"Ready to send. What was changed:\n{done}", icon=":material/check:")
            st.caption(
                f"Will send {prepared.format}, {prepared.width}×{prepared.height} px, "
                f"{file_size(prepared.size_bytes)}."
            )
        elif not fixed:
            st.success("Ready to send.", icon=":material/check:")
        for warning in prepared.warnings:
            st.warning(warning, icon=":material/info:")
