"""The catalog holds exactly the models, options and prices of the gateway's documentation."""

from __future__ import annotations

import copy
import tomllib
from decimal import Decimal

import pytest

from simulator._rules import parse_rules
from studio.catalog import (
    CATALOG_PATH,
    FAST_SPEED,
    FIRST_AND_LAST_FRAME,
    FIRST_FRAME,
    STANDARD_SPEED,
    default_catalog,
    parse_catalog,
)

# model: (resolutions, default resolution, durations, default duration, kind)
DOC_OPTIONS = {
    "wan2.2-i2v-plus": (("480P", "1080P"), "1080P", (5,), 5, FIRST_FRAME),
    "wan2.2-i2v-flash": (("480P", "720P"), "720P", (5,), 5, FIRST_FRAME),
    "wan2.1-i2v-plus": (("720P",), "720P", (5,), 5, FIRST_FRAME),
    "wan2.1-i2v-turbo": (("480P", "720P"), "720P", (3, 4, 5), 5, FIRST_FRAME),
    "wan2.1-kf2v-plus": (("720P",), "720P", (5,), 5, FIRST_AND_LAST_FRAME),
}

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


def _raw_catalog() -> dict:
    with CATALOG_PATH.open("rb") as handle:
        return tomllib.load(handle)


def test_the_catalog_has_exactly_the_documented_models() -> None:
    assert set(default_catalog().models) == set(DOC_OPTIONS)


@pytest.mark.parametrize("model_id", sorted(DOC_OPTIONS))
def test_each_model_has_the_documented_options(model_id: str) -> None:
    spec = default_catalog().model(model_id)
    resolutions, default_resolution, durations, default_duration, kind = DOC_OPTIONS[model_id]
    assert spec.resolutions == resolutions
    assert spec.default_resolution == default_resolution
    assert spec.durations == durations
    assert spec.default_duration == default_duration
    assert spec.kind == kind
    assert spec.label
    assert spec.description


@pytest.mark.parametrize(("model_id", "resolution", "rate", "listed"), DOC_PRICES)
def test_each_price_is_the_documented_one(
    model_id: str, resolution: str, rate: str, listed: str
) -> None:
    spec = default_catalog().model(model_id)
    assert spec.price_per_second[resolution] == Decimal(rate)
    assert spec.listed_clip_price[resolution] == Decimal(listed)
    # Exact decimals, not binary floats.
    assert isinstance(spec.price_per_second[resolution], Decimal)
    assert str(spec.price_per_second[resolution]) == rate


def test_every_price_row_is_in_the_doc_table() -> None:
    rows = {
        (spec.id, resolution)
        for spec in default_catalog().models.values()
        for resolution in spec.price_per_second
    }
    assert rows == {(model, resolution) for model, resolution, _, _ in DOC_PRICES}


def test_kf2v_is_the_only_first_and_last_frame_model() -> None:
    catalog = default_catalog()
    assert catalog.model("wan2.1-kf2v-plus").needs_last_frame
    assert [spec.id for spec in catalog.models.values() if spec.needs_last_frame] == [
        "wan2.1-kf2v-plus"
    ]
    assert "wan2.1-kf2v-plus" not in {spec.id for spec in catalog.first_frame_models()}
    assert len(catalog.first_frame_models()) == 4


def test_the_recommended_model_is_the_default() -> None:
    assert default_catalog().default_model.id == "wan2.2-i2v-plus"


def test_limits_are_the_documented_ones() -> None:
    limits = default_catalog().limits
    assert limits.prompt_max_chars == 800
    assert limits.negative_prompt_max_chars == 500
    assert (limits.seed_min, limits.seed_max) == (0, 2147483647)
    assert set(limits.image_formats) == {"JPEG", "PNG", "BMP", "WEBP"}
    assert limits.image_max_bytes == 10 * 1024 * 1024
    assert (limits.image_min_side_px, limits.image_max_side_px) == (360, 2000)


def test_tiers_give_the_documented_pixel_counts() -> None:
    assert default_catalog().tier_pixels == {"480P": 307200, "720P": 921600, "1080P": 2073600}


def test_an_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"wan2\.2-i2v-plus"):
        default_catalog().model("wan9-i2v-ultra")


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"default_resolution": "720P"}, "default resolution"),
        ({"default_duration": 10}, "default duration"),
        ({"price_per_second": {"480P": 0.025}}, "price per second"),
        (
            {
                "resolutions": ["480P", "1080P", "4K"],
                "price_per_second": {"480P": 0.025, "1080P": 0.15, "4K": 1},
            },
            "no [tiers] entry",
        ),
        ({"speed_class": "warp"}, "speed_class"),
        ({"prior_running_seconds": {"480P": 108}}, "prior running time"),
        ({"prior_running_seconds": {"480P": 108, "1080P": 0}}, "must be positive"),
    ],
)
def test_parse_catalog_rejects_inconsistent_entries(change: dict, complaint: str) -> None:
    data = copy.deepcopy(_raw_catalog())
    data["models"]["wan2.2-i2v-plus"].update(change)
    with pytest.raises(ValueError, match=r"wan2\.2-i2v-plus") as caught:
        parse_catalog(data)
    assert complaint in str(caught.value)


def test_a_price_edit_in_the_data_changes_the_catalog() -> None:
    data = copy.deepcopy(_raw_catalog())
    data["models"]["wan2.2-i2v-flash"]["price_per_second"]["720P"] = 0.05
    assert parse_catalog(data).model("wan2.2-i2v-flash").price_per_second["720P"] == Decimal("0.05")


# Flash and turbo run about twice as fast as the plus models.
SPEED_CLASSES = {
    "wan2.2-i2v-plus": STANDARD_SPEED,
    "wan2.2-i2v-flash": FAST_SPEED,
    "wan2.1-i2v-plus": STANDARD_SPEED,
    "wan2.1-i2v-turbo": FAST_SPEED,
    "wan2.1-kf2v-plus": STANDARD_SPEED,
}


@pytest.mark.parametrize(("model_id", "speed_class"), sorted(SPEED_CLASSES.items()))
def test_each_model_has_its_speed_class_in_the_data(model_id: str, speed_class: str) -> None:
    spec = default_catalog().model(model_id)
    assert spec.speed_class == speed_class
    assert spec.is_fast == (speed_class == FAST_SPEED)


def test_a_speed_class_edit_in_the_data_changes_the_model_and_the_simulator() -> None:
    data = copy.deepcopy(_raw_catalog())
    data["models"]["wan2.2-i2v-plus"]["speed_class"] = FAST_SPEED
    assert parse_catalog(data).model("wan2.2-i2v-plus").is_fast
    assert parse_rules(data).models["wan2.2-i2v-plus"].is_fast


def test_priors_follow_the_model_the_tier_and_the_duration() -> None:
    catalog = default_catalog()
    plus = catalog.prior_running_seconds("wan2.1-i2v-plus", "720P", 5)
    flash = catalog.prior_running_seconds("wan2.2-i2v-flash", "720P", 5)
    turbo_short = catalog.prior_running_seconds("wan2.1-i2v-turbo", "480P", 3)
    turbo = catalog.prior_running_seconds("wan2.1-i2v-turbo", "480P", 5)
    big = catalog.prior_running_seconds("wan2.2-i2v-plus", "1080P", 5)
    assert flash == plus / 2
    assert turbo_short == pytest.approx(turbo * 3 / 5)
    assert turbo < flash < plus < big == 288
    # A resolution the model no longer lists (a job from an older catalog) takes its default's.
    assert catalog.prior_running_seconds("wan2.2-i2v-plus", "720P", 5) == big


def test_every_prior_is_a_positive_time_for_each_resolution() -> None:
    for spec in default_catalog().models.values():
        assert set(spec.prior_running_seconds) == set(spec.resolutions)
        assert all(seconds > 0 for seconds in spec.prior_running_seconds.values())
    timing = default_catalog().timing
    assert 0 < timing.prior_low_share < 1 < timing.prior_high_share
