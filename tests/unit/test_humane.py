"""Money with three decimals everywhere, one size unit, plurals, times and the cost phrase."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from studio.humane import (
    clip_price,
    cost_phrase,
    elapsed,
    file_size,
    money,
    per_second,
    plural,
    short_cost,
    shorten,
    size_limit,
    stopwatch,
    zone_name,
)
from studio.records import BILLED, DEMO, Job, JobStatus


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.75"), "$0.750"),
        (Decimal("0.225"), "$0.225"),
        (Decimal("0.085"), "$0.085"),
        (Decimal("0.2"), "$0.200"),
        (Decimal("0"), "$0.000"),
        (Decimal("3"), "$3.000"),
        (Decimal("1234.5"), "$1,234.500"),
        (Decimal("0.0005"), "$0.001"),
        (Decimal("0.12345"), "$0.123"),
        (Decimal("-0.2"), "-$0.200"),
        (0.1 + 0.2, "$0.300"),
        (0.045 * 5, "$0.225"),
        (7, "$7.000"),
        (None, "—"),
    ],
)
def test_money_always_has_three_decimals(amount: object, text: str) -> None:
    assert money(amount) == text  # type: ignore[arg-type]


def test_a_clip_price_shows_its_arithmetic() -> None:
    assert per_second(Decimal("0.045")) == "$0.045/s"
    assert clip_price(Decimal("0.225"), 5) == "$0.225 · 5 s × $0.045/s"
    assert clip_price(Decimal("0.75"), 5) == "$0.750 · 5 s × $0.150/s"
    # A usage the gateway reported differently from the requested length.
    assert clip_price(Decimal("0.135"), 3) == "$0.135 · 3 s × $0.045/s"
    assert clip_price(Decimal("0"), 0) == "$0.000"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (10_485_760, "10.5 MB"),
        (12_058_624, "12.1 MB"),
        (860_000, "860 KB"),
        (2_000, "2 KB"),
        (0, "0 bytes"),
    ],
)
def test_every_size_is_in_decimal_units(size: int, text: str) -> None:
    assert file_size(size) == text


def test_a_limit_is_rounded_down_so_it_is_true() -> None:
    assert size_limit(10_485_760) == "10.4 MB"
    assert size_limit(25_000_000) == "25 MB"


def test_counts_times_and_shortening() -> None:
    assert plural(1, "video") == "1 video"
    assert plural(0, "video") == "0 videos"
    assert plural(2, "job") == "2 jobs"
    assert elapsed(45.9) == "45 s"
    assert elapsed(185) == "3 min 05 s"
    assert elapsed(3720) == "1 h 02 min"
    assert elapsed(-3) == "0 s"
    assert stopwatch(7) == "0:07"
    assert stopwatch(760) == "12:40"
    assert shorten("a  slow\npush in", 40) == "a slow push in"
    assert shorten("abcdefghij", 6) == "abcde…"


# A billed Flash clip, 720P, 5 s, made and billed; each case changes what it needs.
BILLED_JOB = Job(
    id=1,
    submission_id="s",
    mode=BILLED,
    session_id=None,
    model="wan2.2-i2v-flash",
    resolution="720P",
    duration=5,
    prompt="",
    negative_prompt="",
    prompt_extend=False,
    watermark=False,
    seed=None,
    image_sha256="0" * 64,
    image_source=None,
    last_frame_sha256=None,
    status=JobStatus.SUCCEEDED,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
    estimate_usd=Decimal("0.225"),
    billed_seconds=5,
    cost_usd=Decimal("0.225"),
)


@pytest.mark.parametrize(
    ("changes", "phrase", "short"),
    [
        ({}, "$0.225 · 5 s × $0.045/s", "$0.225"),
        (
            {"billed_seconds": 4, "cost_usd": Decimal("0.18")},
            "$0.180 · 4 s × $0.045/s",
            "$0.180",
        ),
        (
            {"status": JobStatus.RUNNING, "cost_usd": None, "billed_seconds": None},
            "$0.225 · 5 s × $0.045/s, charged only if it succeeds",
            "$0.225 pending",
        ),
        (
            {"status": JobStatus.UNCERTAIN, "cost_usd": None, "billed_seconds": None},
            "$0.225 · 5 s × $0.045/s, charged only if it succeeds",
            "$0.225 pending",
        ),
        ({"status": JobStatus.FAILED, "cost_usd": None}, "Not billed", "not billed"),
        (
            {"mode": DEMO},
            "Demo, not billed: would have cost $0.225 · 5 s × $0.045/s",
            "free (demo)",
        ),
        (
            {"mode": DEMO, "status": JobStatus.QUEUED, "cost_usd": None},
            "Demo, not billed",
            "free (demo)",
        ),
    ],
)
def test_one_cost_phrase_for_every_state(
    changes: dict[str, object], phrase: str, short: str
) -> None:
    job = replace(BILLED_JOB, **changes)  # type: ignore[arg-type]
    assert cost_phrase(job) == phrase
    assert short_cost(job) == short
    assert "≈" not in cost_phrase(job)


@pytest.mark.parametrize(
    ("zone", "name"),
    [
        (ZoneInfo("Europe/Paris"), "Europe/Paris"),
        (ZoneInfo("America/New_York"), "America/New York"),
        # Named zones without a slash keep their name: their clocks change.
        (ZoneInfo("GB"), "GB"),
        (ZoneInfo("EST5EDT"), "EST5EDT"),
        (ZoneInfo("Etc/UTC"), "UTC"),
        (ZoneInfo("UTC"), "UTC"),
        (UTC, "UTC"),
        # Etc/GMT+5 is five hours behind UTC.
        (ZoneInfo("Etc/GMT+5"), "UTC\u221205:00"),
        (timezone(timedelta(hours=5, minutes=30)), "UTC+05:30"),
    ],
)
def test_a_time_zone_is_named_as_a_person_reads_it(zone: tzinfo, name: str) -> None:
    assert zone_name(zone, at=datetime(2026, 12, 1, 12, tzinfo=UTC)) == name
