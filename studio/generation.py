"""A generation request, from the user's draft to the gateway's JSON, in one path.

A `JobDraft` is what the user chose. It checks itself against the catalog (`JobDraft.problems`,
each problem named by the draft's own field), `quote` works out once what it will cost and the
size it will come out at, and `build_payload` turns a checked draft, its quote and its hosted
images into the exact body of a submit and the path it goes to.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from studio.catalog import FIRST_AND_LAST_FRAME, FIRST_FRAME, Catalog, Limits, ModelSpec
from studio.pricing import estimate_cost, output_size

if TYPE_CHECKING:
    # Only named in annotations: the form imports drafts, and must not wait for Pillow to load.
    from studio.images import PreparedImage

SUBMIT_PATHS: dict[str, str] = {
    FIRST_FRAME: "/wan-i2v/v1/generateImageToVideoRequest",
    FIRST_AND_LAST_FRAME: "/wan-i2v/v1/generateImageToVideoFrameRequest",
}

# Line breaks and tabs belong in a prompt; no other control character does, and NUL can't even
# be stored (PostgreSQL text refuses it).
_ALLOWED_CONTROLS = frozenset("\n\r\t")


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a draft, in words for the user."""

    field: str
    message: str


class InvalidRequest(Exception):
    """A draft that breaks the catalog's rules; ``problems`` lists every one of them."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__(" ".join(problem.message for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class JobDraft:
    """Everything the user chose for one video, before it becomes a job.

    ``resolution`` and ``duration`` None mean the model's defaults; ``seed`` None means a random
    seed, drawn at submit and recorded so that "use these settings again" reproduces the video.
    ``last_frame`` is the second image of first-and-last-frame models.
    """

    model: str
    resolution: str | None = None
    duration: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = None
    image: PreparedImage | None = None
    image_source: str | None = None
    last_frame: PreparedImage | None = None

    def problems(self, catalog: Catalog) -> list[FieldProblem]:
        """Return everything that would stop this draft from being sent, in form order.

        Parameters
        ----------
        catalog
            The models and limits to check against.

        Returns
        -------
        list of FieldProblem
            Empty when it can be sent; each one names the draft's field (``image``,
            ``last_frame``, ``prompt``...).
        """
        spec = catalog.models.get(self.model)
        return [
            *([] if spec is not None else [_unknown_model(self.model, catalog)]),
            *self._frame_problems(spec),
            *self._text_problems(catalog.limits),
            *([] if spec is None else self._option_problems(spec)),
            *self._seed_problems(catalog.limits),
            *self._switch_problems(),
        ]

    def _frame_problems(self, spec: ModelSpec | None) -> list[FieldProblem]:
        problems = []
        if self.image is None:
            problems.append(
                FieldProblem("image", "Add a first frame: upload an image or paste a link.")
            )
        if spec is not None and spec.needs_last_frame and self.last_frame is None:
            problems.append(
                FieldProblem(
                    "last_frame", f"{spec.label} needs a last frame as well as a first frame."
                )
            )
        elif spec is not None and not spec.needs_last_frame and self.last_frame is not None:
            problems.append(
                FieldProblem(
                    "last_frame",
                    f"{spec.label} animates a first frame only; remove the last frame "
                    "or choose a model that uses one.",
                )
            )
        return problems

    def _text_problems(self, limits: Limits) -> list[FieldProblem]:
        problems = []
        for field, label, limit in (
            ("prompt", "prompt", limits.prompt_max_chars),
            ("negative_prompt", "negative prompt", limits.negative_prompt_max_chars),
        ):
            if message := _text_problem(getattr(self, field), label=label, limit=limit):
                problems.append(FieldProblem(field, message))
        return problems

    def _option_problems(self, spec: ModelSpec) -> list[FieldProblem]:
        problems = []
        if self.resolution is not None and self.resolution not in spec.resolutions:
            problems.append(
                FieldProblem(
                    "resolution",
                    f"{spec.label} makes {_or_list(list(spec.resolutions))} videos, "
                    f"not {self.resolution}.",
                )
            )
        if self.duration is not None and (
            isinstance(self.duration, bool) or self.duration not in spec.durations
        ):
            problems.append(
                FieldProblem(
                    "duration",
                    f"{spec.label} makes {_lengths(spec.durations)}, not {self.duration} seconds.",
                )
            )
        return problems

    def _seed_problems(self, limits: Limits) -> list[FieldProblem]:
        seed = self.seed
        if seed is None or (
            isinstance(seed, int)
            and not isinstance(seed, bool)
            and limits.seed_min <= seed <= limits.seed_max
        ):
            return []
        return [
            FieldProblem(
                "seed",
                f"The seed must be a whole number from {limits.seed_min} to {limits.seed_max}.",
            )
        ]

    def _switch_problems(self) -> list[FieldProblem]:
        return [
            FieldProblem(field, f"{field} must be on or off (true or false).")
            for field in ("prompt_extend", "watermark")
            if not isinstance(getattr(self, field), bool)
        ]


def _unknown_model(model: str, catalog: Catalog) -> FieldProblem:
    known = _or_list(list(catalog.models))
    return FieldProblem("model", f"There is no model called {model!r}; choose {known}.")


def _or_list(items: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _lengths(durations: tuple[int, ...]) -> str:
    """'5-second videos only', '3-, 4- or 5-second videos'."""
    lengths = [str(duration) for duration in durations]
    if len(lengths) == 1:
        return f"{lengths[0]}-second videos only"
    return "-, ".join(lengths[:-1]) + f"- or {lengths[-1]}-second videos"


def _text_problem(text: object, *, label: str, limit: int) -> str | None:
    if not isinstance(text, str):
        return f"The {label} must be text."
    if (where := _first_control_character(text)) is not None:
        return (
            f"The {label} contains an invisible control character (U+{ord(text[where]):04X}, "
            f"character {where + 1}) that can't be sent; delete it or type that part again."
        )
    if len(text) > limit:
        return f"The {label} is {len(text)} characters; the limit is {limit}."
    return None


def _first_control_character(text: str) -> int | None:
    """The index of the first control character other than a line break or tab, if any."""
    for index, character in enumerate(text):
        if (character < " " or character == "\x7f") and character not in _ALLOWED_CONTROLS:
            return index
    return None


@dataclass(frozen=True)
class Quote:
    """What a draft asks the gateway for and what that costs, worked out once.

    The form shows it and the job records it: the same resolution, length, price and size.
    ``output_width`` and ``output_height`` are None until the draft has a first frame.
    """

    spec: ModelSpec
    resolution: str
    duration: int
    cost_usd: Decimal
    output_width: int | None
    output_height: int | None


def quote(draft: JobDraft, catalog: Catalog) -> Quote:
    """The model's defaults filled in, the price and the video's size for this draft.

    Raises
    ------
    InvalidRequest
        When the model, resolution or duration is not one the catalog offers (the other fields
        are not looked at: a price can be shown before the draft is complete).
    """
    spec = catalog.models.get(draft.model)
    if spec is None:
        raise InvalidRequest([_unknown_model(draft.model, catalog)])
    if problems := draft._option_problems(spec):
        raise InvalidRequest(problems)
    resolution = draft.resolution if draft.resolution is not None else spec.default_resolution
    duration = draft.duration if draft.duration is not None else spec.default_duration
    width = height = None
    if draft.image is not None:
        width, height = output_size(
            draft.image.width, draft.image.height, catalog.tier_pixels[resolution]
        )
    return Quote(
        spec=spec,
        resolution=resolution,
        duration=duration,
        cost_usd=estimate_cost(spec, resolution, duration),
        output_width=width,
        output_height=height,
    )


@dataclass(frozen=True)
class SubmitPayload:
    """The exact body of one submit and the gateway path it is posted to."""

    path: str
    body: dict[str, Any]


def build_payload(
    draft: JobDraft, asked: Quote, *, image_url: str, last_frame_url: str | None = None
) -> SubmitPayload:
    """Build the submit for a checked draft whose images are hosted at the given URLs.

    Parameters
    ----------
    draft
        The user's choices, free of problems, with the seed already drawn if it was left random.
    asked
        The draft's `quote`: the model (whose kind picks the path and the image fields), and the
        resolution and length with the model's defaults filled in.
    image_url, last_frame_url
        Where the gateway reads the first and (first-and-last-frame models) the last frame.

    Returns
    -------
    SubmitPayload
        ``{"model", "input", "parameters"}`` as docs/gateway.md describes. Empty prompts and an
        unset seed are left out, since the gateway treats them as optional.
    """
    inputs: dict[str, Any] = {}
    if draft.prompt:
        inputs["prompt"] = draft.prompt
    if draft.negative_prompt:
        inputs["negative_prompt"] = draft.negative_prompt
    if asked.spec.needs_last_frame:
        inputs["first_frame_url"] = image_url
        inputs["last_frame_url"] = last_frame_url
    else:
        inputs["img_url"] = image_url
    parameters: dict[str, Any] = {
        "resolution": asked.resolution,
        "duration": asked.duration,
        "prompt_extend": draft.prompt_extend,
        "watermark": draft.watermark,
    }
    if draft.seed is not None:
        parameters["seed"] = draft.seed
    body = {"model": asked.spec.id, "input": inputs, "parameters": parameters}
    return SubmitPayload(path=SUBMIT_PATHS[asked.spec.kind], body=body)
