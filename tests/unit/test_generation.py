"""Generation requests: every problem at once in user words, and the exact JSON of a submit."""

from __future__ import annotations

import pytest

from studio.catalog import default_catalog
from studio.generation import (
    FieldProblem,
    GenerationRequest,
    InvalidRequest,
)

IMAGE = "https://images.example.com/cat.png"
LAST = "https://images.example.com/cat-end.png"


def _fields(request: GenerationRequest) -> list[str]:
    return [problem.field for problem in request.validate()]


@pytest.mark.parametrize(
    ("model", "resolution", "duration"),
    [
        (spec.id, resolution, duration)
        for spec in default_catalog().models.values()
        for resolution in spec.resolutions
        for duration in spec.durations
    ],
)
def test_every_allowed_combination_is_valid(model: str, resolution: str, duration: int) -> None:
    last = LAST if default_catalog().model(model).needs_last_frame else None
    request = GenerationRequest(
        model=model,
        image_url=IMAGE,
        resolution=resolution,
        duration=duration,
        last_frame_url=last,
    )
    assert request.validate() == []


def test_every_problem_is_reported_at_once_in_user_words() -> None:
    request = GenerationRequest(
        model="wan2.2-i2v-plus",
        image_url="",
        prompt="x" * 812,
        negative_prompt="y" * 501,
        resolution="720P",
        duration=3,
        seed=2147483648,
    )
    assert request.validate() == [
        FieldProblem("image_url", "Add a first frame: upload an image or paste a link."),
        FieldProblem("prompt", "The prompt is 812 characters; the limit is 800."),
        FieldProblem("negative_prompt", "The negative prompt is 501 characters; the limit is 500."),
        FieldProblem("resolution", "Wan 2.2 Plus makes 480P or 1080P videos, not 720P."),
        FieldProblem("duration", "Wan 2.2 Plus makes 5-second videos only, not 3 seconds."),
        FieldProblem("seed", "The seed must be a whole number from 0 to 2147483647."),
    ]


def test_turbo_lists_its_durations() -> None:
    problems = GenerationRequest(model="wan2.1-i2v-turbo", image_url=IMAGE, duration=6).validate()
    assert problems == [
        FieldProblem("duration", "Wan 2.1 Turbo makes 3-, 4- or 5-second videos, not 6 seconds.")
    ]


def test_single_resolution_model_names_it() -> None:
    problems = GenerationRequest(model="wan2.1-i2v-plus", image_url=IMAGE, resolution="480P")
    assert problems.validate()[0].message == "Wan 2.1 Plus makes 720P videos, not 480P."


def test_unknown_model_names_the_known_ones_and_other_fields_are_still_checked() -> None:
    problems = GenerationRequest(model="wan3-magic", image_url="", prompt="x" * 801).validate()
    assert [problem.field for problem in problems] == ["model", "image_url", "prompt"]
    message = problems[0].message
    assert "wan3-magic" in message
    for known in default_catalog().models:
        assert known in message


@pytest.mark.parametrize(
    ("kwargs", "fields"),
    [
        ({"prompt": "x" * 800}, []),
        ({"prompt": "x" * 801}, ["prompt"]),
        ({"prompt": "中" * 800}, []),
        ({"negative_prompt": "x" * 500}, []),
        ({"negative_prompt": "x" * 501}, ["negative_prompt"]),
        ({"seed": 0}, []),
        ({"seed": 2147483647}, []),
        ({"seed": -1}, ["seed"]),
        ({"seed": 2147483648}, ["seed"]),
        ({"seed": True}, ["seed"]),
        ({"seed": 1.5}, ["seed"]),
        ({"duration": True}, ["duration"]),
        ({"image_url": "data:image/png;base64,iVBORw0KGgo="}, []),
        ({"image_url": "ftp://example.com/a.png"}, ["image_url"]),
        ({"image_url": "   "}, ["image_url"]),
        ({"last_frame_url": LAST}, ["last_frame_url"]),
        ({"watermark": "yes"}, ["watermark"]),
    ],
)
def test_field_rules(kwargs: dict, fields: list[str]) -> None:
    request = GenerationRequest(**{"model": "wan2.2-i2v-flash", "image_url": IMAGE, **kwargs})
    assert _fields(request) == fields


def test_kf2v_needs_a_last_frame() -> None:
    problems = GenerationRequest(model="wan2.1-kf2v-plus", image_url=IMAGE).validate()
    assert problems == [
        FieldProblem(
            "last_frame_url", "Wan 2.1 Keyframes needs a last frame as well as a first frame."
        )
    ]


def test_defaults_come_from_the_model() -> None:
    request = GenerationRequest(model="wan2.2-i2v-flash", image_url=IMAGE)
    assert request.resolved_resolution() == "720P"
    assert request.resolved_duration() == 5
    resolved = request.resolved()
    assert (resolved.resolution, resolved.duration) == ("720P", 5)
    assert request.resolution is None  # frozen: the original is untouched


def test_resolved_of_an_unknown_model_raises_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest(model="nope", image_url=IMAGE).resolved()
    assert caught.value.problems[0].field == "model"


def test_full_payload_is_exactly_the_documented_body() -> None:
    request = GenerationRequest(
        model="wan2.2-i2v-plus",
        image_url=IMAGE,
        prompt="A cat turns its head toward the window.",
        negative_prompt="blurry, low quality",
        resolution="1080P",
        duration=5,
        prompt_extend=True,
        watermark=False,
        seed=12345,
    )
    assert request.to_payload() == {
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
    request = GenerationRequest(
        model="wan2.1-i2v-turbo", image_url=IMAGE, prompt_extend=False, watermark=True
    )
    assert request.to_payload() == {
        "model": "wan2.1-i2v-turbo",
        "input": {"img_url": IMAGE},
        "parameters": {
            "resolution": "720P",
            "duration": 5,
            "prompt_extend": False,
            "watermark": True,
        },
    }


def test_kf2v_payload_uses_first_and_last_frame() -> None:
    request = GenerationRequest(
        model="wan2.1-kf2v-plus", image_url=IMAGE, last_frame_url=LAST, prompt="morph", seed=7
    )
    assert request.to_payload() == {
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


def test_to_payload_refuses_an_invalid_request_with_every_problem() -> None:
    request = GenerationRequest(model="wan2.2-i2v-plus", image_url="", resolution="720P")
    with pytest.raises(InvalidRequest) as caught:
        request.to_payload()
    assert [problem.field for problem in caught.value.problems] == ["image_url", "resolution"]
    assert "480P or 1080P" in str(caught.value)


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
    assert GenerationRequest(model=model, image_url=IMAGE).submit_path() == path


@pytest.mark.parametrize("control", ["\x00", "\x1b", "\x07", "\x08", "\x7f"])
@pytest.mark.parametrize(
    ("field", "label"), [("prompt", "prompt"), ("negative_prompt", "negative prompt")]
)
def test_control_characters_in_prompts_are_refused_by_field(control: str, field: str, label: str):
    request = GenerationRequest(
        model="wan2.2-i2v-flash", image_url=IMAGE, **{field: f"waves{control} at dusk"}
    )
    assert request.validate() == [
        FieldProblem(
            field,
            f"The {label} contains an invisible control character (U+{ord(control):04X}, "
            "character 6) that can't be sent; delete it or type that part again.",
        )
    ]


def test_line_breaks_and_tabs_in_prompts_are_fine():
    request = GenerationRequest(
        model="wan2.2-i2v-flash",
        image_url=IMAGE,
        prompt="first the waves,\nthen\tthe gulls\r\n",
        negative_prompt="blur,\nnoise",
    )
    assert request.validate() == []
