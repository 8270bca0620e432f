"""Reading the gateway's answers: both contracts, flattened or nested, any status spelling."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from studio.errors import GatewayResponseError
from studio.gateway import (
    TaskStatus,
    TaskUsage,
    parse_gateway_time,
    parse_submit_response,
    parse_task,
)


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        ("PENDING", TaskStatus.PENDING),
        ("RUNNING", TaskStatus.RUNNING),
        ("SUSPENDED", TaskStatus.SUSPENDED),
        ("SUCCEEDED", TaskStatus.SUCCEEDED),
        ("FAILED", TaskStatus.FAILED),
        ("CANCELED", TaskStatus.CANCELED),
        ("UNKNOWN", TaskStatus.UNKNOWN),
        ("QUEUED", TaskStatus.PENDING),
        ("IN_QUEUE", TaskStatus.PENDING),
        ("PROCESSING", TaskStatus.RUNNING),
        ("IN_PROGRESS", TaskStatus.RUNNING),
        ("COMPLETED", TaskStatus.SUCCEEDED),
        ("ERROR", TaskStatus.FAILED),
        ("succeeded", TaskStatus.SUCCEEDED),
        ("Running", TaskStatus.RUNNING),
        ("in-progress", TaskStatus.RUNNING),
        (" queued ", TaskStatus.PENDING),
        ("cancelled", TaskStatus.CANCELED),
        ("EXPLODED", TaskStatus.UNKNOWN),
        ("", TaskStatus.UNKNOWN),
        (None, TaskStatus.UNKNOWN),
        (3, TaskStatus.UNKNOWN),
    ],
)
def test_status_mapping(wire: object, status: TaskStatus) -> None:
    assert TaskStatus.from_wire(wire) is status


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (TaskStatus.PENDING, False),
        (TaskStatus.RUNNING, False),
        (TaskStatus.SUSPENDED, False),
        (TaskStatus.SUCCEEDED, True),
        (TaskStatus.FAILED, True),
        (TaskStatus.CANCELED, True),
        (TaskStatus.UNKNOWN, True),
    ],
)
def test_terminal_statuses(status: TaskStatus, terminal: bool) -> None:
    assert status.is_terminal is terminal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-07-27 21:05:15.212", datetime(2025, 7, 27, 13, 5, 15, 212000, tzinfo=UTC)),
        ("2025-07-27 21:05:15", datetime(2025, 7, 27, 13, 5, 15, tzinfo=UTC)),
        ("2025-07-28 03:00:00.000", datetime(2025, 7, 27, 19, 0, 0, tzinfo=UTC)),
        ("2025-07-27 07:30:00.5", datetime(2025, 7, 26, 23, 30, 0, 500000, tzinfo=UTC)),
        ("2025-07-27T13:05:15Z", datetime(2025, 7, 27, 13, 5, 15, tzinfo=UTC)),
        ("2025-07-27T15:05:15+02:00", datetime(2025, 7, 27, 13, 5, 15, tzinfo=UTC)),
        (1753621515, datetime(2025, 7, 27, 13, 5, 15, tzinfo=UTC)),
        (1753621515212, datetime(2025, 7, 27, 13, 5, 15, 212000, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
        ("2025-13-45 99:99:99", None),
        (None, None),
        (True, None),
        ({"t": 1}, None),
    ],
)
def test_gateway_times_become_utc(value: object, expected: datetime | None) -> None:
    parsed = parse_gateway_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None
        assert parsed.utcoffset().total_seconds() == 0


def test_submit_response_of_the_documented_contract() -> None:
    body = {"request_id": "req-1", "output": {"task_id": "task-1", "task_status": "PENDING"}}
    receipt = parse_submit_response(body)
    assert receipt.task_id == "task-1"
    assert receipt.status is TaskStatus.PENDING
    assert receipt.request_id == "req-1"
    assert receipt.polling_url is None
    assert receipt.raw == body


def test_submit_response_flattened() -> None:
    receipt = parse_submit_response({"task_id": "task-2", "status": "queued"})
    assert (receipt.task_id, receipt.status) == ("task-2", TaskStatus.PENDING)


def test_submit_response_of_the_newer_contract_uses_request_id() -> None:
    body = {
        "request_id": "abc123",
        "status": "QUEUED",
        "polling_url": "https://gateway.example/v2/requests/status/abc123",
    }
    receipt = parse_submit_response(body)
    assert receipt.task_id == "abc123"
    assert receipt.status is TaskStatus.PENDING
    assert receipt.polling_url == body["polling_url"]


def test_newer_contract_without_request_id_takes_the_id_from_the_polling_url() -> None:
    receipt = parse_submit_response({"polling_url": "/v2/requests/status/xyz/"})
    assert receipt.task_id == "xyz"


def test_older_contract_never_uses_request_id_as_the_task() -> None:
    # Polling with the HTTP request's id answers UNKNOWN forever.
    with pytest.raises(GatewayResponseError) as caught:
        parse_submit_response({"request_id": "req-1", "output": {"task_status": "PENDING"}})
    assert "did not say which task" in caught.value.message
    assert "billed" in caught.value.hint


def test_submit_without_status_is_pending() -> None:
    assert parse_submit_response({"output": {"task_id": "t"}}).status is TaskStatus.PENDING


@pytest.mark.parametrize("body", [[], "ok", None, 5])
def test_submit_response_that_is_not_an_object(body: object) -> None:
    with pytest.raises(GatewayResponseError):
        parse_submit_response(body)


SUCCEEDED_NESTED = {
    "request_id": "req-9",
    "output": {
        "task_id": "task-9",
        "task_status": "SUCCEEDED",
        "submit_time": "2025-07-27 21:05:15.212",
        "scheduled_time": "2025-07-27 21:05:15.232",
        "end_time": "2025-07-27 21:07:58.027",
        "video_url": "https://dashscope.example/out.mp4?Expires=1",
        "orig_prompt": "a cat",
        "actual_prompt": "A fluffy cat slowly turns its head.",
    },
    "usage": {"video_duration": 5, "video_count": 1, "SR": 1080},
}


def test_parse_a_nested_succeeded_task() -> None:
    snapshot = parse_task(SUCCEEDED_NESTED)
    assert snapshot.task_id == "task-9"
    assert snapshot.status is TaskStatus.SUCCEEDED
    assert snapshot.raw_status == "SUCCEEDED"
    assert snapshot.video_url == "https://dashscope.example/out.mp4?Expires=1"
    assert snapshot.orig_prompt == "a cat"
    assert snapshot.actual_prompt == "A fluffy cat slowly turns its head."
    assert snapshot.submit_time == datetime(2025, 7, 27, 13, 5, 15, 212000, tzinfo=UTC)
    assert snapshot.scheduled_time == datetime(2025, 7, 27, 13, 5, 15, 232000, tzinfo=UTC)
    assert snapshot.end_time == datetime(2025, 7, 27, 13, 7, 58, 27000, tzinfo=UTC)
    assert snapshot.usage == TaskUsage(video_duration=Decimal(5), video_count=1, sr=1080)
    assert snapshot.usage.billed_seconds == 5
    assert snapshot.request_id == "req-9"
    assert snapshot.raw == SUCCEEDED_NESTED
    assert snapshot.error_code is None


def test_parse_the_same_task_flattened() -> None:
    flattened = {"request_id": "req-9", **SUCCEEDED_NESTED["output"], "usage": {"SR": "1080"}}
    flattened["status"] = flattened.pop("task_status").lower()
    snapshot = parse_task(flattened)
    nested = parse_task(SUCCEEDED_NESTED)
    for name in ("task_id", "status", "video_url", "actual_prompt", "submit_time", "end_time"):
        assert getattr(snapshot, name) == getattr(nested, name)
    assert snapshot.usage is not None
    assert snapshot.usage.sr == 1080


def test_wan21_usage_has_a_video_ratio() -> None:
    body = {
        "output": {"task_id": "t", "task_status": "SUCCEEDED", "video_url": "https://v/x.mp4"},
        "usage": {"video_duration": 3, "video_count": 1, "video_ratio": "standard"},
    }
    usage = parse_task(body).usage
    assert usage == TaskUsage(video_duration=Decimal(3), video_count=1, video_ratio="standard")


@pytest.mark.parametrize(
    ("usage", "billed"),
    [
        ({"video_duration": 5, "video_count": 2}, Decimal(10)),
        ({"video_duration": "4.5"}, Decimal("4.5")),
        ({"video_duration": "five"}, None),
        ({}, None),
    ],
)
def test_billed_seconds(usage: dict, billed: Decimal | None) -> None:
    body = {"output": {"task_id": "t", "task_status": "SUCCEEDED"}, "usage": usage}
    parsed = parse_task(body).usage
    assert parsed is not None
    assert parsed.billed_seconds == billed


def test_a_task_without_usage_has_none() -> None:
    assert parse_task({"output": {"task_id": "t", "task_status": "RUNNING"}}).usage is None


@pytest.mark.parametrize(
    ("body", "url"),
    [
        (
            {"status": "COMPLETED", "output": {"media_url": "https://cdn/x.mp4"}},
            "https://cdn/x.mp4",
        ),
        (
            {"status": "COMPLETED", "output": {"media_url": ["https://cdn/a.mp4", "https://b"]}},
            "https://cdn/a.mp4",
        ),
        ({"status": "COMPLETED", "output": {"media_url": []}}, None),
        ({"status": "COMPLETED", "media_url": ["", "https://cdn/c.mp4"]}, "https://cdn/c.mp4"),
        ({"task_status": "SUCCEEDED", "video_url": "https://v/flat.mp4"}, "https://v/flat.mp4"),
    ],
)
def test_video_url_from_every_place(body: dict, url: str | None) -> None:
    assert parse_task(body, task_id="given").video_url == url


def test_task_id_falls_back_to_the_polled_id() -> None:
    snapshot = parse_task({"status": "PROCESSING"}, task_id="abc123")
    assert snapshot.task_id == "abc123"
    assert snapshot.status is TaskStatus.RUNNING


def test_a_failed_task_keeps_code_and_message() -> None:
    body = {
        "request_id": "r",
        "output": {
            "task_id": "t",
            "task_status": "FAILED",
            "code": "DataInspectionFailed",
            "message": "Output data may contain inappropriate content.",
            "submit_time": "2025-07-27 21:05:15.212",
        },
    }
    snapshot = parse_task(body)
    assert snapshot.status is TaskStatus.FAILED
    assert snapshot.error_code == "DataInspectionFailed"
    assert snapshot.error_message == "Output data may contain inappropriate content."
    assert snapshot.video_url is None


def test_a_newer_contract_error_string_becomes_the_message() -> None:
    snapshot = parse_task({"status": "ERROR", "error": "GPU fell over"}, task_id="x")
    assert snapshot.status is TaskStatus.FAILED
    assert snapshot.error_message == "GPU fell over"


def test_unknown_task() -> None:
    snapshot = parse_task({"request_id": "r", "output": {"task_status": "UNKNOWN"}}, task_id="old")
    assert snapshot.status is TaskStatus.UNKNOWN
    assert snapshot.task_id == "old"


def test_odd_times_are_tolerated() -> None:
    body = {"output": {"task_id": "t", "task_status": "RUNNING", "submit_time": "soon"}}
    assert parse_task(body).submit_time is None


@pytest.mark.parametrize("body", [{"request_id": "r"}, {"output": {}}, [], "x", None])
def test_a_poll_answer_without_status_is_a_response_error(body: object) -> None:
    with pytest.raises(GatewayResponseError):
        parse_task(body, task_id="t")


# Hostile numbers: every one must be refused quickly, never turned into a huge integer.

_HOSTILE_CHILD = """
import json, sys
from studio.errors import GatewayResponseError
from studio.gateway import parse_task

body = json.loads(sys.argv[1])
try:
    usage = parse_task(body).usage
except GatewayResponseError as error:
    print("refused:", error.message)
else:
    # What the watcher does with the billed seconds of a finished task.
    billed = usage.billed_seconds if usage is not None else None
    if billed is not None:
        int(billed.to_integral_value())
    print("accepted")
"""


@pytest.mark.parametrize(
    "usage",
    [
        {"video_count": "1e999999999"},
        {"SR": "1e999999999"},
        {"video_duration": "1e999999999"},
        {"video_duration": 5, "video_count": "1E999999999"},
    ],
)
def test_a_huge_exponent_is_a_malformed_answer_not_a_frozen_server(usage: dict) -> None:
    body = {"output": {"task_id": "t", "task_status": "SUCCEEDED"}, "usage": usage}
    # In a child process: a conversion that runs for minutes holds the interpreter lock, so only
    # killing the process can stop it; the timeout turns that into a failure, not a hung suite.
    try:
        finished = subprocess.run(
            [sys.executable, "-c", _HOSTILE_CHILD, json.dumps(body)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[2],
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading usage {usage} did not finish")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("refused: The gateway's answer about the task gave an")


@pytest.mark.parametrize(
    "usage",
    [
        {"video_duration": "-5"},
        {"video_duration": "nan"},
        {"video_duration": "Infinity"},
        {"video_duration": float("inf")},
        {"video_duration": float("nan")},
        {"video_duration": "5e2"},
        {"video_duration": "601"},
        {"video_duration": 601},
        {"video_duration": "0" * 40 + "5"},
        {"video_count": 101},
        {"video_count": -1},
        {"video_count": 10**4000},
        {"video_count": "2.5"},
        {"SR": 100_001},
        {"SR": "1080" + "0" * 30},
        {"SR": "+1080"},
    ],
)
def test_an_absurd_usage_number_is_a_malformed_answer(usage: dict) -> None:
    body = {"output": {"task_id": "t", "task_status": "SUCCEEDED"}, "usage": usage}
    with pytest.raises(GatewayResponseError, match="impossible"):
        parse_task(body)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"video_duration": "600", "video_count": "100", "SR": "100000"}, (600, 100, 100000)),
        ({"video_duration": 4.5, "video_count": 2.0, "SR": "1080.0"}, (Decimal("4.5"), 2, 1080)),
        ({"video_duration": " 5 ", "video_count": 1, "SR": 720}, (5, 1, 720)),
    ],
)
def test_plausible_usage_numbers_are_read(usage: dict, expected: tuple) -> None:
    body = {"output": {"task_id": "t", "task_status": "SUCCEEDED"}, "usage": usage}
    parsed = parse_task(body).usage
    assert parsed is not None
    assert (parsed.video_duration, parsed.video_count, parsed.sr) == expected


def test_task_usage_refuses_values_beyond_its_ceilings() -> None:
    with pytest.raises(ValueError, match="video_duration"):
        TaskUsage(video_duration=Decimal("1e999999999"))
    with pytest.raises(ValueError, match="video_count"):
        TaskUsage(video_duration=Decimal(5), video_count=10**9)
    with pytest.raises(ValueError, match="SR"):
        TaskUsage(sr=-1)


def test_a_huge_unix_time_is_unreadable_not_a_crash() -> None:
    assert parse_gateway_time(10**400) is None
    assert parse_gateway_time(float("inf")) is None
