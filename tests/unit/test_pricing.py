"""Prices are exact decimals from the catalog; output sizes follow the gateway's tier rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from studio.catalog import ModelSpec, default_catalog
from studio.pricing import (
    cost_for_usage,
    estimate_cost,
    listed_clip_price,
    listed_price_differs,
    output_size,
)


def spec(model_id: str) -> ModelSpec:
    return default_catalog().model(model_id)


# The pricing table of the documentation: (model, resolution, USD per second, listed clip price).
DOC_PRICES = [
    ("wan2.2-i2v-flash", "480P", "0.017", "0.085"),
    ("wan2.2-i2v-flash", "720P", "0.045", "0.2"),
    ("wan2.2-i2v-plus", "480P", "0.025", "0.125"),
    ("wan2.2-i2v-plus", "1080P", "0.15", "0.75"),
    ("wan2.1-i2v-turbo", "480P", "0.045", "0.2"),
    ("wan2.1-i2v-turbo", "720P", "0.04", "0.2"),
    ("wan2.1-i2v-plus", "720P", "0.15", "0.75"),
    ("wan2.1-kf2v-plus", "720P", "0.125", "0.6"),
]


@pytest.mark.parametrize(("model", "resolution", "rate", "listed"), DOC_PRICES)
def test_estimate_is_rate_times_seconds(
    model: str, resolution: str, rate: str, listed: str
) -> None:
    assert estimate_cost(spec(model), resolution, 5) == Decimal(rate) * 5
    assert estimate_cost(spec(model), resolution, 1) == Decimal(rate)
    assert listed_clip_price(spec(model), resolution) == Decimal(listed)
    assert listed_price_differs(spec(model), resolution) is (Decimal(rate) * 5 != Decimal(listed))


@pytest.mark.parametrize(
    ("model", "resolution", "estimate", "listed"),
    [
        ("wan2.2-i2v-flash", "720P", "0.225", "0.2"),
        ("wan2.1-kf2v-plus", "720P", "0.625", "0.6"),
    ],
)
def test_the_documented_differences_are_flagged(
    model: str, resolution: str, estimate: str, listed: str
) -> None:
    assert estimate_cost(spec(model), resolution, 5) == Decimal(estimate)
    assert listed_clip_price(spec(model), resolution) == Decimal(listed)
    assert listed_price_differs(spec(model), resolution)


def test_equal_listed_price_is_not_flagged() -> None:
    assert not listed_price_differs(spec("wan2.2-i2v-plus"), "1080P")


def test_estimate_is_exact() -> None:
    cost = estimate_cost(spec("wan2.1-i2v-turbo"), "480P", 3)
    assert cost == Decimal("0.135")
    assert str(cost) == "0.135"


def test_estimate_for_a_resolution_the_model_lacks_says_which_it_offers() -> None:
    with pytest.raises(ValueError, match="480P, 1080P"):
        estimate_cost(spec("wan2.2-i2v-plus"), "720P", 5)


@pytest.mark.parametrize(
    ("billed_seconds", "expected"),
    [
        (5, "0.75"),
        (Decimal("5"), "0.75"),
        (4.5, "0.675"),
        (0, "0"),
        (None, "0"),
    ],
)
def test_cost_for_usage(billed_seconds: object, expected: str) -> None:
    assert cost_for_usage(spec("wan2.2-i2v-plus"), "1080P", billed_seconds) == Decimal(expected)


@pytest.mark.parametrize(
    ("size", "tier", "expected"),
    [
        ((750, 1000), "720P", (816, 1104)),
        ((1000, 750), "720P", (1104, 816)),
        ((1000, 1000), "480P", (544, 544)),
        ((1000, 1000), "720P", (960, 960)),
        ((1920, 1080), "1080P", (1920, 1072)),
        ((1280, 720), "720P", (1280, 720)),
        ((854, 480), "480P", (736, 400)),
    ],
)
def test_output_size(size: tuple[int, int], tier: str, expected: tuple[int, int]) -> None:
    tier_pixels = default_catalog().tier_pixels[tier]
    assert output_size(*size, tier_pixels) == expected


@pytest.mark.parametrize("tier", ["480P", "720P", "1080P"])
@pytest.mark.parametrize(
    "size", [(360, 2000), (2000, 360), (640, 480), (1024, 1536), (1999, 1001), (361, 363)]
)
def test_output_size_keeps_the_rules(size: tuple[int, int], tier: str) -> None:
    tier_pixels = default_catalog().tier_pixels[tier]
    width, height = output_size(*size, tier_pixels)
    assert width % 16 == 0
    assert height % 16 == 0
    assert width * height <= tier_pixels
    # Rounding down to multiples of 16 loses at most one 16-px strip per side.
    assert (width + 16) * (height + 16) > tier_pixels
    assert width / height == pytest.approx(size[0] / size[1], rel=0.1)


def test_output_size_refuses_empty_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        output_size(0, 100, 921600)
