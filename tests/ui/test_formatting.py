"""Times as a person reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from components.formatting import local_time, plain
from tests.ui.conftest import as_read

BERLIN_WINTER = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)  # 11:00 in the viewer's zone


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 11, 26, 9, 10, tzinfo=UTC), "Today 10:10"),
        (datetime(2026, 11, 25, 23, 30, tzinfo=UTC), "Today 00:30"),  # the viewer's day counts
        (datetime(2026, 11, 25, 17, 2, tzinfo=UTC), "Yesterday 18:02"),
        (datetime(2026, 11, 24, 8, 15, tzinfo=UTC), "Nov 24, 09:15"),
        (datetime(2025, 12, 31, 8, 15, tzinfo=UTC), "Dec 31, 2025, 09:15"),
        (None, "—"),
    ],
)
def test_local_time_says_the_day(moment: datetime | None, expected: str) -> None:
    assert local_time(moment, zone=BERLIN_WINTER, now=NOW) == expected


def test_local_time_in_a_sentence_lowers_relative_days() -> None:
    moment = datetime(2026, 11, 25, 17, 2, tzinfo=UTC)
    assert local_time(moment, zone=BERLIN_WINTER, now=NOW, in_sentence=True) == "yesterday 18:02"


@pytest.mark.parametrize(
    "text",
    [
        "# a heading\n- a list\n1. a number\n> a quote",
        "`code` ~~struck~~ _under_ *star* | a | table |",
        ":+1: :-1: :smile: :material/home: :streamlit: :red-background[x]",
        "$E = mc^2$ and &amp; and \\*already escaped\\*",
        "www.example.com and someone@example.com",
        "see https://example.com or HTTP://EXAMPLE.COM, ftp://a or WWW.EXAMPLE.COM",
    ],
)
def test_plain_text_keeps_every_character_and_escapes_every_construct(text: str) -> None:
    escaped = plain(text)
    assert as_read(escaped) == text
    # Every ASCII punctuation character comes escaped: none is left once the escapes are gone.
    unescaped = re.sub(r"\\[!-/:-@\[-`{-~]", "", escaped)
    assert not re.search(r"[!-/:-@\[-`{-~]", unescaped)
    # Shortcodes and bare links are matched after the escapes are read: they must not match.
    assert_no_link_or_shortcode(escaped)


def assert_no_link_or_shortcode(markdown: str) -> None:
    """Nothing in ``markdown`` reads as a shortcode or a bare link once its escapes are gone."""
    read = markdown.replace("\\", "")
    assert not re.search(r":[\w+-]+[:/]", read), read
    assert not re.search(r"(?i)https?:/|www\.|[\w.+-]@[\w-]", read), read
