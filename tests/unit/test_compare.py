"""Comparing clips: which settings differ, which ids can be compared, and a clip's settings file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from studio.catalog import default_catalog
from studio.compare import (
    MAX_CLIPS,
    SettingRow,
    can_compare,
    compare_choice,
    differing_settings,
    job_id_from,
    seconds_taken,
)
from studio.export import JSON_FIELDS, SETTINGS_FIELDS, job_settings, job_settings_json
from studio.records import DEMO, JobStatus
from tests.plugins.engine import a_job

CATALOG = default_catalog()
CLICKED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def finished_job(**changes: object):
    """A saved clip that took 40 s from the click."""
    job = a_job(
        video_path="videos/1.mp4",
        cost_usd=Decimal("0.135"),
        created_at=CLICKED,
        finished_at=CLICKED + timedelta(seconds=40),
    )
    return replace(job, **changes)


def test_only_the_settings_that_differ_are_listed_in_order() -> None:
    first = finished_job(id=1, seed=7)
    second = finished_job(
        id=2,
        seed=8,
        model="wan2.2-i2v-flash",
        cost_usd=Decimal("0.085"),
        finished_at=CLICKED + timedelta(seconds=95),
    )

    rows = differing_settings([first, second], catalog=CATALOG)

    assert rows == [
        SettingRow("Model", ("Wan 2.1 Turbo", "Wan 2.2 Flash")),
        SettingRow("Seed", ("7", "8")),
        SettingRow("Cost", ("$0.135", "$0.085")),
        SettingRow("Time taken", ("40 s", "1 min 35 s")),
    ]


def test_clips_that_share_every_setting_have_nothing_to_list() -> None:
    assert differing_settings([finished_job(id=1), finished_job(id=2)], catalog=CATALOG) == []
    assert differing_settings([finished_job(id=1)], catalog=CATALOG) == []


def test_a_setting_that_differs_in_one_clip_of_three_shows_every_value() -> None:
    clips = [
        finished_job(id=1, prompt="a fox"),
        finished_job(id=2, prompt="a fox"),
        finished_job(id=3, prompt="a fox at dusk", resolution="720P", duration=5, seed=None),
    ]

    rows = {row.name: row.values for row in differing_settings(clips, catalog=CATALOG)}

    assert rows == {
        "Seed": ("7", "7", "random"),
        "Prompt": ("a fox", "a fox", "a fox at dusk"),
        "Resolution": ("480P", "480P", "720P"),
        "Length": ("3 s", "3 s", "5 s"),
    }


def test_a_demo_clip_says_it_was_not_billed() -> None:
    rows = differing_settings([finished_job(id=1), finished_job(id=2, mode=DEMO)], catalog=CATALOG)

    assert rows == [SettingRow("Cost", ("$0.135", "$0.135 (demo, not billed)"))]


def test_only_saved_clips_can_be_compared() -> None:
    assert can_compare(finished_job())
    assert not can_compare(finished_job(video_path=None))
    assert not can_compare(finished_job(status=JobStatus.FAILED))
    assert seconds_taken(finished_job(finished_at=None)) is None


def test_ids_from_an_address_are_checked_and_capped() -> None:
    playable = {1, 2, 3, 4, 5}

    chosen, problems = compare_choice(
        ["2", "x1", 2, " 3 ", "9", 1, 4, 5], comparable=playable.__contains__
    )

    assert chosen == [2, 3, 1, 4]
    assert problems == [
        "“x1” is not a clip number, so it was left out.",
        "Clip #9 has no saved video to play, so it was left out.",
        f"Only {MAX_CLIPS} clips fit side by side: the rest were left out.",
    ]


def test_the_settings_file_has_the_settings_and_never_the_key_or_the_request() -> None:
    job = finished_job(
        key_fingerprint="fp-secret",
        task_id="task-123",
        polling_url="https://gateway.example/poll/task-123",
        video_url="https://cdn.example/signed?token=abc",
        lease_owner="watcher-1",
        negative_prompt="blurry",
        image_source="shore.jpg",
    )

    data = job_settings(job, model_label="Wan 2.1 Turbo")

    assert data["model_label"] == "Wan 2.1 Turbo"
    assert data["model"] == "wan2.1-i2v-turbo"
    assert data["prompt"] == "a slow pan across the hills"
    assert data["negative_prompt"] == "blurry"
    assert data["seed"] == 7
    assert data["resolution"] == "480P"
    assert data["duration"] == 3
    assert data["cost_usd"] == "0.135"
    assert data["created_at"] == "2026-01-05T12:00:00+00:00"
    assert data["finished_at"] == "2026-01-05T12:00:40+00:00"
    assert data["seconds_taken"] == 40.0
    assert data["image_source"] == "shore.jpg"
    assert set(SETTINGS_FIELDS) <= set(JSON_FIELDS)
    text = job_settings_json(job, model_label="Wan 2.1 Turbo").decode("utf-8")
    assert json.loads(text) == data
    for internal in ("fp-secret", "task-123", "poll", "signed", "watcher-1", "submission"):
        assert internal not in text


def test_only_positive_64_bit_numbers_are_job_ids() -> None:
    assert job_id_from(" 12 ") == 12
    assert job_id_from(7) == 7
    for raw in ("", "x", "1.5", "0", "-3", "²", str(2**63), "9" * 5000):
        assert job_id_from(raw) is None, raw
