"""The error tree: Retry-After, status codes, error bodies, and keys that never leak."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from studio.errors import (
    AuthenticationError,
    BadRequestError,
    GatewayError,
    GatewayStatusError,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    error_from_response,
    parse_retry_after,
    redact,
)

NOW = datetime(2025, 7, 27, 13, 0, 0, tzinfo=UTC)
KEY = "sk-live-4f9a2c7e1b3d"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sun, 27 Jul 2025 13:00:30 GMT", 30.0),
        ("Sun, 27 Jul 2025 12:00:00 GMT", 0.0),  # already past: go now
        ("soon", None),
        ("-5", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("nan", None),
        ("inf", None),
        ("Sun, 99 Foo 2025 99:00:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientBalanceError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (409, GatewayStatusError),
        (418, GatewayStatusError),
    ],
)
def test_status_maps_to_one_class(status: int, error_class: type[GatewayStatusError]) -> None:
    error = error_from_response(status, '{"error": "nope"}', {})
    assert type(error) is error_class
    assert error.status_code == status
    assert error.message
    assert error.hint


def test_unlisted_status_names_the_status() -> None:
    error = error_from_response(409, "", {})
    assert "HTTP 409" in error.message


@pytest.mark.parametrize(
    ("body", "code", "detail", "request_id"),
    [
        ({"error": "Invalid resolution for model"}, None, "Invalid resolution for model", None),
        (
            {"code": "InvalidParameter", "message": "duration must be 5", "request_id": "r-1"},
            "InvalidParameter",
            "duration must be 5",
            "r-1",
        ),
        (
            {"message": "Access denied due to invalid subscription key."},
            None,
            "Access denied",
            None,
        ),
        (
            {"error": {"code": "Throttling", "message": "slow down"}},
            "Throttling",
            "slow down",
            None,
        ),
    ],
)
def test_error_body_shapes(
    body: dict, code: str | None, detail: str, request_id: str | None
) -> None:
    error = error_from_response(400, json.dumps(body), {})
    assert error.code == code
    assert detail in error.message
    assert error.request_id == request_id


@pytest.mark.parametrize(
    "body_text",
    ["<html><body>502 Bad Gateway</body></html>", "", "not json at all", "[1, 2]", "null"],
)
def test_non_json_or_odd_bodies_still_give_a_plain_error(body_text: str) -> None:
    error = error_from_response(502, body_text, {})
    assert isinstance(error, ServerError)
    assert error.code is None
    assert error.message == ServerError.summary
    assert "<html>" not in error.message


def test_request_id_falls_back_to_the_header() -> None:
    error = error_from_response(500, '{"error": "x"}', {"X-Request-Id": "hdr-7"})
    assert error.request_id == "hdr-7"


def test_rate_limit_carries_retry_after_and_says_how_long() -> None:
    error = error_from_response(429, '{"error": "Too many"}', {"retry-after": "12"})
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 12.0
    assert "12 seconds" in error.hint


def test_rate_limit_without_retry_after() -> None:
    error = error_from_response(429, "", {})
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


def test_long_detail_is_shortened() -> None:
    error = error_from_response(400, json.dumps({"error": "x" * 5000}), {})
    assert len(error.message) < 400
    assert len(error.body_excerpt) <= 300


@pytest.mark.parametrize(
    "body",
    [
        {"error": f"Invalid key {KEY}"},
        {"code": KEY, "message": f"key {KEY} is not valid", "request_id": "r"},
        {"message": f"Ocp-Apim-Subscription-Key: {KEY}"},
    ],
)
def test_an_echoed_key_is_never_in_the_error(body: dict) -> None:
    error = error_from_response(401, json.dumps(body), {}, secrets=[KEY])
    for text in (str(error), error.message, error.hint, error.body_excerpt, error.code or ""):
        assert KEY not in text
    assert KEY not in repr(error)
    assert KEY not in str(error.args)


def test_a_key_echoed_in_header_form_is_hidden_even_when_unknown() -> None:
    text = redact('{"Ocp-Apim-Subscription-Key": "abcdef123456"}')
    assert "abcdef123456" not in text
    assert "[hidden]" in text


def test_short_secrets_are_not_searched_for() -> None:
    assert redact("a cat sat", ["a"]) == "a cat sat"


def test_str_is_the_plain_message_and_hint_is_separate() -> None:
    error = GatewayError("The gateway is down.", hint="Try later.")
    assert str(error) == "The gateway is down."
    assert error.hint == "Try later."
    assert GatewayError("x").hint  # a default hint is always there


def test_a_refused_image_is_explained_with_the_catalogs_own_rules() -> None:
    from dataclasses import replace

    from studio.explain import explain_failure
    from tests.plugins.images import SHIPPED_LIMITS

    shipped = explain_failure("InvalidParameter", "bad image", limits=SHIPPED_LIMITS)
    assert "a JPEG, PNG, BMP or WEBP of at most 10.4 MB" in shipped
    assert "each side between 360 and 2000 px" in shipped
    # Edited limits are what the explanation says: nothing is retyped in prose.
    stricter = replace(
        SHIPPED_LIMITS,
        image_formats=("JPEG", "PNG"),
        image_max_bytes=5_000_000,
        image_max_side_px=1500,
    )
    edited = explain_failure("InvalidParameter", None, limits=stricter)
    assert "a JPEG or PNG of at most 5 MB with each side between 360 and 1500 px" in edited
