"""Motion ideas: one-click starters for the prompt, kept as data in ``motion_ideas.toml``.

People who have never written a video prompt do not know what to ask for; a handful of common
camera moves and subject motions gets them started. The file can be edited without code.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path

MOTION_IDEAS_PATH = Path(__file__).with_name("motion_ideas.toml")


@dataclass(frozen=True)
class MotionIdea:
    """One starter: its row (``group``), its button (``label``) and what it adds (``text``)."""

    group: str
    label: str
    text: str


class MotionIdeasError(ValueError):
    """The ideas file is not as ``motion_ideas.toml`` describes; the text says where."""


def parse_motion_ideas(data: dict[str, object]) -> tuple[MotionIdea, ...]:
    """The ideas of a parsed TOML document, in file order."""
    entries = data.get("idea", [])
    if not isinstance(entries, list):
        raise MotionIdeasError("motion ideas: write each idea as an [[idea]] table")
    ideas = []
    for number, entry in enumerate(entries, start=1):
        fields = {name: entry.get(name) if isinstance(entry, dict) else None for name in _FIELDS}
        missing = [
            name
            for name, value in fields.items()
            if not isinstance(value, str) or not value.strip()
        ]
        if missing:
            raise MotionIdeasError(f"motion idea {number}: give it {_and_list(missing)} as text")
        ideas.append(MotionIdea(**{name: value.strip() for name, value in fields.items()}))
    labels = [idea.label for idea in ideas]
    if duplicated := sorted({label for label in labels if labels.count(label) > 1}):
        raise MotionIdeasError(f"motion ideas: each label once ({_and_list(duplicated)} repeat)")
    return tuple(ideas)


_FIELDS = ("group", "label", "text")


def _and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@functools.cache
def default_motion_ideas() -> tuple[MotionIdea, ...]:
    """The ideas shipped beside the catalog, read once."""
    with MOTION_IDEAS_PATH.open("rb") as handle:
        return parse_motion_ideas(tomllib.load(handle))


def groups(ideas: tuple[MotionIdea, ...]) -> dict[str, list[MotionIdea]]:
    """The ideas by row, rows in the order they first appear."""
    rows: dict[str, list[MotionIdea]] = {}
    for idea in ideas:
        rows.setdefault(idea.group, []).append(idea)
    return rows


def with_idea(prompt: str, idea: MotionIdea) -> str:
    """The prompt with the idea added: it starts an empty prompt, and is joined onto one with text.

    An idea already in the prompt is not added twice.
    """
    text = prompt.rstrip()
    if idea.text.casefold() in text.casefold():
        return prompt
    if not text:
        return _capitalised(idea.text)
    if text.endswith((".", "!", "?")):
        return f"{text} {_capitalised(idea.text)}"
    if text.endswith((",", ";")):
        return f"{text} {idea.text}"
    return f"{text}, {idea.text}"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
