"""Drafts: every problem at once in user words, named by the draft's fields; the exact submit."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from studio.catalog import default_catalog
from studio.generation import (
    FieldProblem,
    InvalidRequest,
    JobDraft,
    build_payload,
    quote,
)
from tests.plugins.engine import first_frame

CATALOG = default_catalog()
IMAGE = "https://images.example.com/cat.png"
LAST = "https://images.example.com/cat-end.png"
FRAME = first_frame()
LAST_FRAME = first_frame(shade=9)


def _draft(**fields: object) -> JobDraft:
    return JobDraft(**{"model": "wan2.2-i2v-flash", "image": FRAME, **fields})


def _fields(draft: JobDraft) -> list[str]:
    return [problem.field for problem in draft.problems(CATALOG)]


def _payload(draft: JobDraft, *, last_frame_url: str | None = None):
    return build_payload(
        draft, quote(draft, CATALOG), image_url=IMAGE, last_frame_url=last_frame_url
    )


@pytest.mark.parametrize(
    ("model", "resolution", "duration"),
    [
        (spec.id, resolution, duration)
        for spec in CATALOG.models.values()
        for resolution in spec.resolutions
        for duration in spec.durations
    ],
)
def test_every_allowed_combination_is_valid(model: str, resolution: str, duration: int) -> None:
    last = LAST_FRAME if CATALOG.model(model).needs_last_frame else None
    draft = _draft(model=model, resolution=resolution, duration=duration, last_frame=last)
    assert draft.problems(CATALOG) == []


def test_every_problem_is_reported_at_once_in_user_words() -> None:
    draft = _draft(
        model="wan2.2-i2v-plus",
        image=None,
        prompt="x" * 812,
        negative_prompt="y" * 501,
        resolution="720P",
        duration=3,
        seed=2147483648,
    )
    assert draft.problems(CATALOG) == [
        FieldProblem("image", "Add a first frame: upload an image or paste a link."),
        FieldProblem("prompt", "The prompt is 812 characters; the limit is 800."),
        FieldProblem("negative_prompt", "The negative prompt is 501 characters; the limit is 500."),
        FieldProblem("resolution", "Wan 2.2 Plus makes 480P or 1080P videos, not 720P."),
        FieldProblem("duration", "Wan 2.2 Plus makes 5-second videos only, not 3 seconds."),
        FieldProblem("seed", "The seed must be a whole number from 0 to 2147483647."),
    ]


def test_turbo_lists_its_durations() -> None:
    assert _draft(model="wan2.1-i2v-turbo", duration=6).problems(CATALOG) == [
        FieldProblem("duration", "Wan 2.1 Turbo makes 3-, 4- or 5-second videos, not 6 seconds.")
    ]


def test_single_resolution_model_names_it() -> None:
    problems = _draft(model="wan2.1-i2v-plus", resolution="480P").problems(CATALOG)
    assert problems[0].message == "Wan 2.1 Plus makes 720P videos, not 480P."


def test_unknown_model_names_the_known_ones_and_other_fields_are_still_checked() -> None:
    problems = _draft(model="wan3-magic", image=None, prompt="x" * 801).problems(CATALOG)
    assert [problem.field for problem in problems] == ["model", "image", "prompt"]
    message = problems[0].message
    assert "wan3-magic" in message
    for known in CATALOG.models:
        assert known in message


@pytest.mark.parametrize(
    ("fields", "problems"),
    [
        ({"prompt": "x" * 800}, []),
        ({"prompt": "x" * 801}, ["prompt"]),
        ({"prompt": "中" * 800}, []),
        ({"prompt": 42}, ["prompt"]),
        ({"negative_prompt": "x" * 500}, []),
        ({"negative_prompt": "x" * 501}, ["negative_prompt"]),
        ({"seed": 0}, []),
        ({"seed": 2147483647}, []),
        ({"seed": -1}, ["seed"]),
        ({"seed": 2147483648}, ["seed"]),
        ({"seed": True}, ["seed"]),
        ({"seed": 1.5}, ["seed"]),
        ({"duration": True}, ["duration"]),
        ({"image": None}, ["image"]),
        ({"last_frame": LAST_FRAME}, ["last_frame"]),
        ({"watermark": "yes"}, ["watermark"]),
    ],
)
def test_field_rules(fields: dict, problems: list[str]) -> None:
    assert _fields(_draft(**fields)) == problems


def test_kf2v_needs_a_last_frame() -> None:
    assert _draft(model="wan2.1-kf2v-plus").problems(CATALOG) == [
        FieldProblem("last_frame", "Wan 2.1 Keyframes needs a last frame as well as a first frame.")
    ]


def test_the_quote_fills_in_the_models_defaults_and_prices_them() -> None:
    asked = quote(_draft(image=first_frame(750, 1000)), CATALOG)
    assert (asked.spec.id, asked.resolution, asked.duration) == ("wan2.2-i2v-flash", "720P", 5)
    assert asked.cost_usd == Decimal("0.225")  # 0.045 per second for 5 s
    assert (asked.output_width, asked.output_height) == (816, 1104)


def test_a_quote_needs_no_image_but_a_model_and_options_the_catalog_offers() -> None:
    asked = quote(_draft(image=None, prompt="x" * 900), CATALOG)
    assert (asked.output_width, asked.output_height) == (None, None)
    with pytest.raises(InvalidRequest) as caught:
        quote(_draft(model="nope"), CATALOG)
    assert [problem.field for problem in caught.value.problems] == ["model"]
    with pytest.raises(InvalidRequest) as caught:
        quote(_draft(resolution="1080P"), CATALOG)
    assert [problem.field for problem in caught.value.problems] == ["resolution"]


def test_full_payload_is_exactly_the_documented_body() -> None:
    draft = _draft(
        model="wan2.2-i2v-plus",
        prompt="A cat turns its head toward the window.",
        negative_prompt="blurry, low quality",
        resolution="1080P",
        duration=5,
        prompt_extend=True,
        watermark=False,
        seed=12345,
    )
    payload = _payload(draft)
    assert payload.path == "/wan-i2v/v1/generateImageToVideoRequest"
    assert payload.body == {
        "model": "wan2.2-i2v-plus",
        "input": {
            "prompt": "A cat turns its head toward the window.",
            "negative_prompt": "blurry, low quality",
            "img_url": IMAGE,
        },
        "parameters": {
            "resolution": "1080P",
            "duration": 5,
            "prompt_extend": True,
            "watermark": False,
            "seed": 12345,
        },
    }


def test_minimal_payload_fills_defaults_and_leaves_out_optional_fields() -> None:
    draft = _draft(model="wan2.1-i2v-turbo", prompt_extend=False, watermark=True)
    assert _payload(draft).body == {
        "model": "wan2.1-i2v-turbo",
        "input": {"img_url": IMAGE},
        "parameters": {
            "resolution": "720P",
            "duration": 5,
            "prompt_extend": False,
            "watermark": True,
        },
    }


def test_kf2v_payload_uses_first_and_last_frame_on_its_own_path() -> None:
    draft = _draft(model="wan2.1-kf2v-plus", last_frame=LAST_FRAME, prompt="morph", seed=7)
    payload = _payload(draft, last_frame_url=LAST)
    assert payload.path == "/wan-i2v/v1/generateImageToVideoFrameRequest"
    assert payload.body == {
        "model": "wan2.1-kf2v-plus",
        "input": {"prompt": "morph", "first_frame_url": IMAGE, "last_frame_url": LAST},
        "parameters": {
            "resolution": "720P",
            "duration": 5,
            "prompt_extend": True,
            "watermark": False,
            "seed": 7,
        },
    }


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("wan2.2-i2v-plus", "/wan-i2v/v1/generateImageToVideoRequest"),
        ("wan2.2-i2v-flash", "/wan-i2v/v1/generateImageToVideoRequest"),
        ("wan2.1-i2v-plus", "/wan-i2v/v1/generateImageToVideoRequest"),
        ("wan2.1-i2v-turbo", "/wan-i2v/v1/generateImageToVideoRequest"),
        ("wan2.1-kf2v-plus", "/wan-i2v/v1/generateImageToVideoFrameRequest"),
    ],
)
def test_submit_path_follows_the_model_kind(model: str, path: str) -> None:
    assert _payload(_draft(model=model), last_frame_url=LAST).path == path


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x07", "\x08", "\x7f"])
@pytest.mark.parametrize(
    ("field", "label"), [("prompt", "prompt"), ("negative_prompt", "negative prompt")]
)
def test_control_characters_in_prompts_are_refused_by_field(control: str, field: str, label: str):
    draft = _draft(**{field: f"waves{control} at dusk"})
    assert draft.problems(CATALOG) == [
        FieldProblem(
            field,
            f"The {label} contains an invisible control character (U+{ord(control):04X}, "
            "character 6) that can't be sent; delete it or type that part again.",
        )
    ]


def test_line_breaks_and_tabs_in_prompts_are_fine():
    draft = _draft(
        prompt="first the waves,\nthen\tthe gulls\r\n",
        negative_prompt="blur,\nnoise",
    )
    assert draft.problems(CATALOG) == []


def test_drafts_are_frozen():
    with pytest.raises(AttributeError):
        _draft().model = "other"  # type: ignore[misc]
    assert replace(_draft(), seed=3).seed == 3
