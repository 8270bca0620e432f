"""Variations: several clips from one click, each its own job, grouped as a batch.

A ``Variations`` says what changes from clip to clip (the seed, the prompt or the model);
``expand`` turns one draft into the drafts of the batch, and ``quote_batch`` prices them all, with
the arithmetic the form shows before the click.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from studio.catalog import Catalog
from studio.generation import FieldProblem, JobDraft, Quote, quote
from studio.humane import money, plural

MIN_CLIPS = 2
MAX_CLIPS = 8
MAX_MODELS = 3
# A billed batch above this total asks the user to confirm once before anything is sent: enough
# for a few ordinary clips, well under what a mistaken batch of long high-resolution clips costs.
CONFIRM_ABOVE_USD = Decimal("2.00")


class VariationKind(StrEnum):
    """What differs from one clip of a batch to the next."""

    SEEDS = "seeds"  # the same frame and prompt, a different seed each
    PROMPTS = "prompts"  # one clip per prompt of a short list
    MODELS = "models"  # the same frame and prompt across two or three models


@dataclass(frozen=True)
class Variations:
    """How to make a batch out of one draft.

    ``count`` is the number of clips for ``SEEDS``; ``prompts`` and ``models`` give one clip each
    for ``PROMPTS`` and ``MODELS``.
    """

    kind: VariationKind
    count: int = 0
    prompts: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    @classmethod
    def of_prompt_lines(cls, text: str) -> Variations:
        """One clip per non-blank line of ``text``."""
        lines = tuple(line.strip() for line in text.splitlines())
        return cls(VariationKind.PROMPTS, prompts=tuple(line for line in lines if line))

    @property
    def size(self) -> int:
        """How many clips the batch makes."""
        return {
            VariationKind.SEEDS: self.count,
            VariationKind.PROMPTS: len(self.prompts),
            VariationKind.MODELS: len(self.models),
        }[self.kind]

    def problems(self, catalog: Catalog) -> list[FieldProblem]:
        """What stops this batch from being made, in words for the user (field ``variations``)."""
        messages = []
        if self.kind is VariationKind.MODELS:
            unknown = [model for model in self.models if model not in catalog.models]
            if unknown:
                messages.append("Choose models from the list.")
            elif len(set(self.models)) != len(self.models):
                messages.append("Choose each model once.")
            elif not MIN_CLIPS <= len(self.models) <= MAX_MODELS:
                messages.append(f"Choose {MIN_CLIPS} or {MAX_MODELS} models to try side by side.")
        elif not MIN_CLIPS <= self.size <= MAX_CLIPS:
            what = "prompts, one a line" if self.kind is VariationKind.PROMPTS else "clips"
            messages.append(
                f"A batch makes {MIN_CLIPS} to {MAX_CLIPS} clips: give {MIN_CLIPS} to "
                f"{MAX_CLIPS} {what} (now {self.size})."
            )
        return [FieldProblem("variations", message) for message in messages]

    def expand(self, draft: JobDraft, catalog: Catalog) -> list[JobDraft]:
        """The draft of each clip, in order.

        Seeds: a fixed seed counts up from the one chosen (so the batch can be made again); no
        seed leaves each clip's seed to be drawn when it is sent. Models: each model keeps the
        chosen resolution and length where it offers them, and takes its own default otherwise.
        """
        if self.kind is VariationKind.SEEDS:
            return [
                dataclasses.replace(draft, seed=_nth_seed(draft.seed, index, catalog))
                for index in range(self.count)
            ]
        if self.kind is VariationKind.PROMPTS:
            return [dataclasses.replace(draft, prompt=prompt) for prompt in self.prompts]
        return [_for_model(draft, model, catalog) for model in self.models]


def _nth_seed(seed: int | None, index: int, catalog: Catalog) -> int | None:
    if seed is None:
        return None
    limits = catalog.limits
    span = limits.seed_max - limits.seed_min + 1
    return limits.seed_min + (seed - limits.seed_min + index) % span


def _for_model(draft: JobDraft, model: str, catalog: Catalog) -> JobDraft:
    spec = catalog.models.get(model)
    if spec is None:  # reported by Variations.problems; the draft's own check names it too
        return dataclasses.replace(draft, model=model)
    resolution = draft.resolution if draft.resolution in spec.resolutions else None
    duration = draft.duration if draft.duration in spec.durations else None
    return dataclasses.replace(draft, model=model, resolution=resolution, duration=duration)


@dataclass(frozen=True)
class BatchQuote:
    """The price of every clip of a batch, and their sum."""

    quotes: tuple[Quote, ...]

    @property
    def clips(self) -> int:
        return len(self.quotes)

    @property
    def total_usd(self) -> Decimal:
        return sum((each.cost_usd for each in self.quotes), Decimal(0))

    @property
    def video_seconds(self) -> int:
        return sum(each.duration for each in self.quotes)

    def arithmetic(self) -> str:
        """The sum as the form shows it: "4 × $0.085 = $0.340" or "$0.085 + $0.750 = $0.835"."""
        prices = [each.cost_usd for each in self.quotes]
        if len(set(prices)) == 1:
            return f"{self.clips} × {money(prices[0])} = {money(self.total_usd)}"
        return " + ".join(money(price) for price in prices) + f" = {money(self.total_usd)}"

    def summary(self) -> str:
        """ "4 clips, 20 seconds of video" """
        return f"{plural(self.clips, 'clip')}, {plural(self.video_seconds, 'second')} of video"

    def needs_confirmation(self, *, billed: bool) -> bool:
        """True when a billed batch costs enough that the user should confirm it once."""
        return billed and self.total_usd > CONFIRM_ABOVE_USD


def quote_batch(drafts: list[JobDraft], catalog: Catalog) -> BatchQuote:
    """Price each clip's draft (raises ``InvalidRequest`` as ``quote`` does)."""
    return BatchQuote(tuple(quote(draft, catalog) for draft in drafts))
