"""Motion ideas: the shipped file, its checks, and how an idea joins a prompt."""

from __future__ import annotations

import pytest

from studio.ideas import (
    MotionIdea,
    MotionIdeasError,
    default_motion_ideas,
    groups,
    parse_motion_ideas,
    with_idea,
)

PUSH_IN = MotionIdea("Camera", "Slow push-in", "the camera slowly pushes in")


def test_the_shipped_ideas_offer_camera_moves_and_subject_motions() -> None:
    rows = groups(default_motion_ideas())

    assert list(rows) == ["Camera", "Motion"]
    assert {"Slow push-in", "Pan", "Orbit"} <= {idea.label for idea in rows["Camera"]}
    assert {"Hair in the wind", "A smile"} <= {idea.label for idea in rows["Motion"]}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("", "The camera slowly pushes in"),
        ("   ", "The camera slowly pushes in"),
        ("a fox in the snow", "a fox in the snow, the camera slowly pushes in"),
        ("A fox in the snow.", "A fox in the snow. The camera slowly pushes in"),
        ("a fox in the snow, ", "a fox in the snow, the camera slowly pushes in"),
        ("A fox. The camera slowly pushes in", "A fox. The camera slowly pushes in"),
    ],
)
def test_an_idea_starts_or_joins_the_prompt_once(prompt: str, expected: str) -> None:
    assert with_idea(prompt, PUSH_IN) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"idea": {"label": "x"}}, "[[idea]] table"),
        ({"idea": [{"group": "Camera", "label": "Pan"}]}, "idea 1: give it text as text"),
        ({"idea": [{"group": "", "label": "Pan", "text": "a pan"}]}, "idea 1: give it group"),
        (
            {"idea": [{"group": "A", "label": "Pan", "text": "a"}] * 2},
            "each label once (Pan repeat)",
        ),
    ],
)
def test_a_broken_ideas_file_says_where(data: dict[str, object], message: str) -> None:
    with pytest.raises(MotionIdeasError) as refused:
        parse_motion_ideas(data)

    assert message in str(refused.value)
