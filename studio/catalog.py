"""The model catalog: which options each Wan model allows, what it costs, how long it runs, and
the input limits.

The data lives in ``catalog.toml`` beside this module so that prices and options can be updated
without touching code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

CATALOG_PATH = Path(__file__).with_name("catalog.toml")

FIRST_FRAME = "first_frame"
FIRST_AND_LAST_FRAME = "first_and_last_frame"
STANDARD_SPEED = "standard"
FAST_SPEED = "fast"
SPEED_CLASSES = (STANDARD_SPEED, FAST_SPEED)


@dataclass(frozen=True)
class Timing:
    """How the priors for running time read: the clip length they are for and their spread."""

    prior_clip_seconds: int
    prior_low_share: float
    prior_high_share: float
    prior_queue_seconds: float


@dataclass(frozen=True)
class Limits:
    """What the gateway accepts as input."""

    prompt_max_chars: int
    negative_prompt_max_chars: int
    seed_min: int
    seed_max: int
    image_formats: tuple[str, ...]
    image_max_bytes: int
    image_min_side_px: int
    image_max_side_px: int


@dataclass(frozen=True)
class ModelSpec:
    """One model: its options, their defaults and its prices."""

    id: str
    label: str
    description: str
    kind: str
    recommended: bool
    resolutions: tuple[str, ...]
    default_resolution: str
    durations: tuple[int, ...]
    default_duration: int
    price_per_second: dict[str, Decimal]
    listed_clip_price: dict[str, Decimal]
    speed_class: str
    prior_running_seconds: dict[str, float]

    @property
    def needs_last_frame(self) -> bool:
        return self.kind == FIRST_AND_LAST_FRAME

    @property
    def is_fast(self) -> bool:
        """Flash and turbo models: about twice as fast as the standard ones."""
        return self.speed_class == FAST_SPEED


@dataclass(frozen=True)
class Catalog:
    """Every model, the input limits and the pixel count of each resolution tier."""

    models: dict[str, ModelSpec]
    limits: Limits
    tier_pixels: dict[str, int]
    timing: Timing

    def model(self, model_id: str) -> ModelSpec:
        """Return the model with this id; raise ``KeyError`` naming the known ones otherwise."""
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(self.models)
            raise KeyError(f"unknown model {model_id!r}; known models: {known}") from None

    @property
    def default_model(self) -> ModelSpec:
        """The recommended model, or the first one listed."""
        recommended = [m for m in self.models.values() if m.recommended]
        return recommended[0] if recommended else next(iter(self.models.values()))

    def first_frame_models(self) -> list[ModelSpec]:
        """Models that animate a single first frame (the image-to-video ones)."""
        return [m for m in self.models.values() if m.kind == FIRST_FRAME]

    def prior_running_seconds(self, model_id: str, resolution: str, duration: int) -> float:
        """The guess of a job's running time before any job of its class was timed, in seconds.

        Parameters
        ----------
        model_id, resolution, duration
            The job's class. A resolution the model does not list takes the model's default
            one's prior (a job recorded under an older catalog must still be watched).

        Returns
        -------
        float
            The model's prior for the resolution, in proportion to the duration.
        """
        spec = self.model(model_id)
        per_clip = spec.prior_running_seconds.get(
            resolution, spec.prior_running_seconds[spec.default_resolution]
        )
        return per_clip * duration / self.timing.prior_clip_seconds


def _decimal_map(table: dict[str, float]) -> dict[str, Decimal]:
    # Through str() so that 0.017 stays 0.017 rather than its binary approximation.
    return {key: Decimal(str(value)) for key, value in table.items()}


def _float_map(table: dict[str, float]) -> dict[str, float]:
    return {key: float(value) for key, value in table.items()}


def parse_catalog(data: dict) -> Catalog:
    """Build a catalog from the parsed TOML, checking that it is self-consistent."""
    limits = Limits(**{**data["limits"], "image_formats": tuple(data["limits"]["image_formats"])})
    tier_pixels = {tier: int(pixels) for tier, pixels in data["tiers"].items()}
    timing = Timing(**data["timing"])
    if not (0 < timing.prior_low_share < 1 < timing.prior_high_share):
        raise ValueError("the catalog's [timing] needs prior_low_share < 1 < prior_high_share")
    models: dict[str, ModelSpec] = {}
    for model_id, raw in data["models"].items():
        spec = ModelSpec(
            id=model_id,
            label=raw["label"],
            description=raw["description"],
            kind=raw.get("kind", FIRST_FRAME),
            recommended=bool(raw.get("recommended", False)),
            resolutions=tuple(raw["resolutions"]),
            default_resolution=raw["default_resolution"],
            durations=tuple(int(d) for d in raw["durations"]),
            default_duration=int(raw["default_duration"]),
            price_per_second=_decimal_map(raw["price_per_second"]),
            listed_clip_price=_decimal_map(raw.get("listed_clip_price", {})),
            speed_class=raw.get("speed_class", ""),
            prior_running_seconds=_float_map(raw.get("prior_running_seconds", {})),
        )
        problems = []
        if spec.speed_class not in SPEED_CLASSES:
            problems.append(f"its speed_class must be one of {', '.join(SPEED_CLASSES)}")
        if set(spec.prior_running_seconds) != set(spec.resolutions):
            problems.append("it needs exactly one prior running time for each resolution")
        if any(seconds <= 0 for seconds in spec.prior_running_seconds.values()):
            problems.append("its prior running times must be positive")
        if spec.default_resolution not in spec.resolutions:
            problems.append("its default resolution is not one of its resolutions")
        if spec.default_duration not in spec.durations:
            problems.append("its default duration is not one of its durations")
        if set(spec.price_per_second) != set(spec.resolutions):
            problems.append("it needs exactly one price per second for each resolution")
        if unknown := set(spec.resolutions) - set(tier_pixels):
            problems.append(f"resolutions {sorted(unknown)} have no [tiers] entry")
        if problems:
            raise ValueError(f"catalog entry {model_id!r} is inconsistent: " + "; ".join(problems))
        models[model_id] = spec
    return Catalog(models=models, limits=limits, tier_pixels=tier_pixels, timing=timing)


def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Read and check a catalog file."""
    with path.open("rb") as handle:
        return parse_catalog(tomllib.load(handle))


@cache
def default_catalog() -> Catalog:
    """The catalog shipped beside this module, read once per process."""
    return load_catalog()
