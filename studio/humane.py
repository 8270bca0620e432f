"""Numbers, sizes, times and money as a person reads them, the same on every page and the CLI.

Money always has three decimals (``$0.750``, ``$0.225``, ``$0.045/s``): prices are set per
second to a tenth of a cent, so every amount on screen lines up and none looks rounded.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from studio.records import Job, JobStatus

_MIL = Decimal("0.001")
# One unit for every file size: the binary megabyte the gateway counts its limits in.


def money(amount: Decimal | int | float | None) -> str:
    """``$0.750``, ``$1,234.500``, ``-$0.200``; an em dash for no amount."""
    if amount is None:
        return "—"
    # Through str() so that a float like 4.1 stays 4.1 rather than its binary approximation.
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    value = value.quantize(_MIL, rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,}"


def per_second(rate: Decimal) -> str:
    """``$0.045/s``."""
    return f"{money(rate)}/s"


def clip_price(cost: Decimal, seconds: int | Decimal) -> str:
    """A clip's price and its arithmetic: ``$0.225 · 5 s × $0.045/s``."""
    whole = Decimal(seconds)
    if whole <= 0:
        return money(cost)
    return f"{money(cost)} · {_number(whole)} s × {per_second(cost / whole)}"


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 video``, ``3 videos``; ``nouns`` for an irregular plural."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def shorten(text: str, limit: int) -> str:
    """The text on one line, cut to ``limit`` characters with an ellipsis when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


# Sizes, in one unit everywhere: decimal megabytes. 1 MB is 1,000,000 bytes, as Streamlit's
# uploader counts its own limit ("25MB per file"). A limit is rounded down, so that what it promises
# is true: the video service's 10,485,760 bytes read "10.4 MB", and every file that size or less
# is taken.
MEGABYTE = 1_000_000
KILOBYTE = 1_000


def file_size(size_bytes: int) -> str:
    """How big a file is: ``840 bytes``, ``12 KB``, ``3.2 MB``."""
    if size_bytes < KILOBYTE:
        return f"{size_bytes} bytes"
    if size_bytes < MEGABYTE:
        return f"{size_bytes / KILOBYTE:.0f} KB"
    return f"{size_bytes / MEGABYTE:.1f} MB"


def size_limit(size_bytes: int) -> str:
    """A limit, rounded down to a tenth: ``25 MB`` for 25,000,000 bytes, ``10.4 MB`` for 10 MiB."""
    if size_bytes < MEGABYTE:
        return f"{size_bytes // KILOBYTE} KB"
    tenths = math.floor(size_bytes * 10 / MEGABYTE)
    return f"{tenths // 10} MB" if tenths % 10 == 0 else f"{tenths / 10:.1f} MB"


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


def stopwatch(seconds: float) -> str:
    """``0:07``, ``12:40``: a running clock."""
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{rest:02d}"


def may_still_be_billed(job: Job) -> bool:
    """True while a billed job can still cost money: in flight, or maybe sent."""
    if job.is_demo or job.has_cost:
        return False
    return job.in_flight or job.status is JobStatus.UNCERTAIN


def cost_phrase(job: Job) -> str:
    """What a job cost, or will cost, with its arithmetic; demo jobs say what they would have.

    ``$0.225 · 5 s × $0.045/s``; ``$0.225 · 5 s × $0.045/s, charged only if it succeeds``;
    ``Demo, not billed: would have cost $0.225 · 5 s × $0.045/s``; ``Not billed``.
    """
    if job.is_demo:
        if job.has_cost:
            return f"Demo, not billed: would have cost {_price_of(job)}"
        return "Demo, not billed"
    if job.has_cost:
        # Billed once the gateway made it, even when the video could not be saved.
        return _price_of(job)
    if may_still_be_billed(job):
        return f"{clip_price(job.estimate_usd, job.duration)}, charged only if it succeeds"
    return "Not billed"


def short_cost(job: Job) -> str:
    """A table cell: ``$0.225``, ``$0.225 pending``, ``free (demo)``, ``not billed``."""
    if job.is_demo:
        return "free (demo)"
    if job.has_cost:
        return money(job.cost_usd)
    if may_still_be_billed(job):
        return f"{money(job.estimate_usd)} pending"
    return "not billed"


def _price_of(job: Job) -> str:
    """A made video's price from the seconds billed (the requested length if none were said)."""
    assert job.cost_usd is not None  # only called once the gateway reported the video made
    return clip_price(job.cost_usd, job.billed_seconds or job.duration)


# Names of UTC itself, and the system's unnamed zone: each is said by its offset.
_UTC_NAMES = frozenset(
    {"UTC", "UCT", "Universal", "Zulu", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "localtime"}
)


def zone_name(zone: tzinfo, *, at: datetime) -> str:
    """A time zone as a person names it: "Europe/Paris", "America/New York", "UTC", "UTC+05:30".

    A place's name where the zone has one; else its offset at ``at`` ("Etc/GMT+5" is five hours
    behind UTC, the opposite of what it seems to say).
    """
    name = getattr(zone, "key", None) or ""
    if name and not name.startswith("Etc/") and name not in _UTC_NAMES:
        return name.replace("_", " ")
    offset = at.astimezone(zone).utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset else 0
    if not minutes:
        return "UTC"
    sign = "+" if minutes > 0 else "−"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
