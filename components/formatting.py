"""What needs the browser to be said right: the viewer's time zone and Markdown-safe text.

Money, sizes, counts and durations are written by ``studio.humane``, which the command line
shares.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

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


def money_text(text: str) -> str:
    """Our own words with dollar amounts, for Markdown: two ``$`` on a line would be a formula."""
    return text.replace("$", "\\$")


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
