"""Numbers, sizes, times and money as a person reads them."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from studio.pricing import format_usd

TONE_COLORS = {"info": "blue", "success": "green", "warning": "orange", "error": "red"}
TONE_ICONS = {
    "info": ":material/hourglass_top:",
    "success": ":material/check_circle:",
    "warning": ":material/help:",
    "error": ":material/error:",
}

# Every ASCII punctuation character can be backslash-escaped in Markdown, which turns it into a
# literal: no link, image, emphasis, code, HTML, LaTeX or coloured text can start.
_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Shortcodes (``:smile:``, ``:material/home:``) and bare links (``https://…``, ``www.…``,
# ``someone@host``) are found in the text after its escapes are read; an invisible word joiner
# after each colon and at sign, and after ``www``, keeps them from matching.
_LINK_OR_SHORTCODE = re.compile(r"(\\[:@]|www(?=\\\.))", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def plain(text: str) -> str:
    """User or gateway text made safe to put inside a Markdown-capable element, shown as typed.

    Streamlit reads Markdown (links, images, HTML, ``:red[...]``, ``$...$``, shortcodes, bare
    addresses) in ``st.markdown``, captions, alerts, toasts and labels; this escapes all of it.
    """
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
    return _LINK_OR_SHORTCODE.sub(lambda found: found.group() + _WORD_JOINER, escaped)


def money(amount: Decimal | None) -> str:
    """``$0.75``; an em dash for no amount."""
    return "—" if amount is None else format_usd(amount)


def elapsed(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``1 h 02 min``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def viewer_timezone() -> tzinfo:
    """The browser's time zone when it told us, else the server's."""
    name = st.context.timezone
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    local = datetime.now().astimezone().tzinfo
    assert local is not None  # astimezone() always sets one
    return local


def local_time(
    moment: datetime | None, *, zone: tzinfo, now: datetime | None = None, in_sentence: bool = False
) -> str:
    """``Today 14:03``, ``Yesterday 18:02``, ``Nov 24, 09:15``, ``Nov 24, 2024, 09:15``.

    ``in_sentence`` writes ``today`` and ``yesterday`` in lower case, for "Started today 14:03".
    """
    if moment is None:
        return "—"
    here = moment.astimezone(zone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    clock = here.strftime("%H:%M")
    if here.date() == today:
        day = "Today"
    elif here.date() == today - timedelta(days=1):
        day = "Yesterday"
    elif here.year == today.year:
        return f"{here:%b} {here.day}, {clock}"
    else:
        return f"{here:%b} {here.day}, {here.year}, {clock}"
    return f"{day.lower() if in_sentence else day} {clock}"


def local_day_start(day: date, *, zone: tzinfo) -> datetime:
    """Midnight at the start of ``day`` in the viewer's zone."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def local_day_end(day: date, *, zone: tzinfo) -> datetime:
    """Midnight at the end of ``day`` in the viewer's zone."""
    return local_day_start(day, zone=zone) + timedelta(days=1)
