"""A generation request: what the user asked for, checked against the catalog, as gateway JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from studio.catalog import FIRST_AND_LAST_FRAME, FIRST_FRAME, Catalog, ModelSpec, default_catalog

SUBMIT_PATHS: dict[str, str] = {
    FIRST_FRAME: "/wan-i2v/v1/generateImageToVideoRequest",
    FIRST_AND_LAST_FRAME: "/wan-i2v/v1/generateImageToVideoFrameRequest",
}

_IMAGE_SCHEMES = ("http://", "https://", "data:")


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field of a request, in words for the user."""

    field: str
    message: str


class InvalidRequest(Exception):
    """A request that breaks the catalog's rules; ``problems`` lists every one of them."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__(" ".join(problem.message for problem in problems))
        self.problems = problems


def _or_list(items: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# Line breaks and tabs belong in a prompt; no other control character does, and NUL can't even
# be stored (PostgreSQL text refuses it).
_ALLOWED_CONTROLS = frozenset("\n\r\t")


def _first_control_character(text: str) -> int | None:
    """The index of the first control character other than a line break or tab, if any."""
    for index, character in enumerate(text):
        if (character < " " or character == "\x7f") and character not in _ALLOWED_CONTROLS:
            return index
    return None


def _image_problem(value: object, *, what: str) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None if value is None else f"The {what} is empty."
    if not value.startswith(_IMAGE_SCHEMES):
        return f"The {what} must be a web link (http or https) or an embedded image (data: URI)."
    return None


@dataclass(frozen=True)
class GenerationRequest:
    """One image-to-video job as the user set it up; None means the model's default."""

    model: str
    image_url: str
    prompt: str = ""
    negative_prompt: str = ""
    resolution: str | None = None
    duration: int | None = None
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = None
    last_frame_url: str | None = None

    def _spec(self, catalog: Catalog) -> ModelSpec:
        try:
            return catalog.models[self.model]
        except KeyError:
            raise InvalidRequest([self._unknown_model(catalog)]) from None

    def _unknown_model(self, catalog: Catalog) -> FieldProblem:
        known = _or_list(list(catalog.models))
        return FieldProblem("model", f"There is no model called {self.model!r}; choose {known}.")

    def validate(self, catalog: Catalog | None = None) -> list[FieldProblem]:
        """Return every problem with this request at once; an empty list means it can be sent.

        Parameters
        ----------
        catalog
            The models and limits to check against; the shipped catalog by default.

        Returns
        -------
        list of FieldProblem
            One entry per problem, in form order, each naming its field.
        """
        catalog = catalog or default_catalog()
        limits = catalog.limits
        spec = catalog.models.get(self.model)
        problems: list[FieldProblem] = []

        if spec is None:
            problems.append(self._unknown_model(catalog))

        if not isinstance(self.image_url, str) or not self.image_url.strip():
            problems.append(
                FieldProblem("image_url", "Add a first frame: upload an image or paste a link.")
            )
        elif message := _image_problem(self.image_url, what="first frame"):
            problems.append(FieldProblem("image_url", message))

        if spec is not None and spec.needs_last_frame:
            if self.last_frame_url is None or not str(self.last_frame_url).strip():
                problems.append(
                    FieldProblem(
                        "last_frame_url",
                        f"{spec.label} needs a last frame as well as a first frame.",
                    )
                )
            elif message := _image_problem(self.last_frame_url, what="last frame"):
                problems.append(FieldProblem("last_frame_url", message))
        elif spec is not None and self.last_frame_url:
            problems.append(
                FieldProblem(
                    "last_frame_url",
                    f"{spec.label} animates a first frame only; remove the last frame "
                    "or choose a model that uses one.",
                )
            )

        text_fields = (
            ("prompt", "prompt", limits.prompt_max_chars),
            ("negative_prompt", "negative prompt", limits.negative_prompt_max_chars),
        )
        for field, label, limit in text_fields:
            text = getattr(self, field)
            if not isinstance(text, str):
                problems.append(FieldProblem(field, f"The {label} must be text."))
            elif (where := _first_control_character(text)) is not None:
                problems.append(
                    FieldProblem(
                        field,
                        f"The {label} contains an invisible control character (U+"
                        f"{ord(text[where]):04X}, character {where + 1}) that can't be sent; "
                        "delete it or type that part again.",
                    )
                )
            elif len(text) > limit:
                problems.append(
                    FieldProblem(
                        field, f"The {label} is {len(text)} characters; the limit is {limit}."
                    )
                )

        if (
            spec is not None
            and self.resolution is not None
            and self.resolution not in spec.resolutions
        ):
            problems.append(
                FieldProblem(
                    "resolution",
                    f"{spec.label} makes {_or_list(list(spec.resolutions))} videos, "
                    f"not {self.resolution}.",
                )
            )

        if (
            spec is not None
            and self.duration is not None
            and (isinstance(self.duration, bool) or self.duration not in spec.durations)
        ):
            lengths = [str(d) for d in spec.durations]
            choices = (
                f"{lengths[0]}-second videos only"
                if len(lengths) == 1
                else "-, ".join(lengths[:-1]) + f"- or {lengths[-1]}-second videos"
            )
            problems.append(
                FieldProblem(
                    "duration", f"{spec.label} makes {choices}, not {self.duration} seconds."
                )
            )

        if self.seed is not None and (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not limits.seed_min <= self.seed <= limits.seed_max
        ):
            problems.append(
                FieldProblem(
                    "seed",
                    f"The seed must be a whole number from {limits.seed_min} to {limits.seed_max}.",
                )
            )

        for field in ("prompt_extend", "watermark"):
            if not isinstance(getattr(self, field), bool):
                problems.append(FieldProblem(field, f"{field} must be on or off (true or false)."))

        return problems

    def resolved_resolution(self, catalog: Catalog | None = None) -> str:
        """The resolution that will be asked for: the chosen one or the model's default."""
        spec = self._spec(catalog or default_catalog())
        return self.resolution if self.resolution is not None else spec.default_resolution

    def resolved_duration(self, catalog: Catalog | None = None) -> int:
        """The duration in seconds that will be asked for: the chosen one or the model's default."""
        spec = self._spec(catalog or default_catalog())
        return self.duration if self.duration is not None else spec.default_duration

    def resolved(self, catalog: Catalog | None = None) -> GenerationRequest:
        """A copy with the model's defaults filled in for resolution and duration."""
        catalog = catalog or default_catalog()
        return dataclasses.replace(
            self,
            resolution=self.resolved_resolution(catalog),
            duration=self.resolved_duration(catalog),
        )

    def submit_path(self, catalog: Catalog | None = None) -> str:
        """The gateway path this request is submitted to, which depends on the model's kind."""
        return SUBMIT_PATHS[self._spec(catalog or default_catalog()).kind]

    def to_payload(self, catalog: Catalog | None = None) -> dict[str, Any]:
        """Build the exact JSON body of a submit.

        Parameters
        ----------
        catalog
            The models and limits to check against; the shipped catalog by default.

        Returns
        -------
        dict
            ``{"model", "input", "parameters"}`` as docs/gateway.md describes. Empty prompts and an
            unset seed are left out, since the gateway treats them as optional.

        Raises
        ------
        InvalidRequest
            When ``validate`` finds any problem; it carries all of them.
        """
        catalog = catalog or default_catalog()
        if problems := self.validate(catalog):
            raise InvalidRequest(problems)
        spec = catalog.models[self.model]

        inputs: dict[str, Any] = {}
        if self.prompt:
            inputs["prompt"] = self.prompt
        if self.negative_prompt:
            inputs["negative_prompt"] = self.negative_prompt
        if spec.needs_last_frame:
            inputs["first_frame_url"] = self.image_url
            inputs["last_frame_url"] = self.last_frame_url
        else:
            inputs["img_url"] = self.image_url

        parameters: dict[str, Any] = {
            "resolution": self.resolved_resolution(catalog),
            "duration": self.resolved_duration(catalog),
            "prompt_extend": self.prompt_extend,
            "watermark": self.watermark,
        }
        if self.seed is not None:
            parameters["seed"] = self.seed
        return {"model": self.model, "input": inputs, "parameters": parameters}
