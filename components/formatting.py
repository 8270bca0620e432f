"""Numbers, sizes, times and money as a person reads them."""

from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
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


def money(amount: Decimal | None) -> str:
    """``$0.75``; an em dash for no amount."""
    return "—" if amount is None else format_usd(amount)


def file_size(size_bytes: int) -> str:
    """``840 KB``, ``3.2 MB``."""
    if size_bytes < 1000:
        return f"{size_bytes} bytes"
    if size_bytes < 1_000_000:
        return f"{size_bytes / 1000:.0f} KB"
    return f"{size_bytes / 1_000_000:.1f} MB"


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


def local_time(moment: datetime | None, *, zone: tzinfo) -> str:
    """``14:03`` today, ``25 Nov 14:03`` this year, ``25 Nov 2025 14:03`` before."""
    if moment is None:
        return "—"
    here = moment.astimezone(zone)
    today = datetime.now(zone).date()
    if here.date() == today:
        return here.strftime("%H:%M")
    if here.year == today.year:
        return f"{here.day} {here:%b %H:%M}"
    return f"{here.day} {here:%b %Y %H:%M}"


def local_day_start(day: date, *, zone: tzinfo) -> datetime:
    """Midnight at the start of ``day`` in the viewer's zone."""
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def local_day_end(day: date, *, zone: tzinfo) -> datetime:
    """Midnight at the end of ``day`` in the viewer's zone."""
    return local_day_start(day, zone=zone) + timedelta(days=1)
