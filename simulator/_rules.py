"""The gateway's rules as the simulator enforces them, read from the project's catalog data file.

The simulator is the other side of the wire, so it reads the TOML itself instead of importing the
client's catalog code: a bug in one must not hide the same bug in the other.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CATALOG_FILE = Path(__file__).resolve().parents[1] / "studio" / "catalog.toml"

FIRST_FRAME = "first_frame"
FIRST_AND_LAST_FRAME = "first_and_last_frame"

# Output sides are multiples of this, as upstream's encoder needs.
SIDE_MULTIPLE = 16


@dataclass(frozen=True)
class ModelRules:
    """What one model accepts."""

    model_id: str
    kind: str
    resolutions: tuple[str, ...]
    default_resolution: str
    durations: tuple[int, ...]
    default_duration: int
    speed_class: str = "standard"

    @property
    def is_fast(self) -> bool:
        """Flash and turbo models finish in about half the time of the plus ones."""
        return self.speed_class == "fast"


@dataclass(frozen=True)
class GatewayRules:
    """Every model's options, the input limits and the pixel count of each resolution tier."""

    models: dict[str, ModelRules]
    tier_pixels: dict[str, int]
    prompt_max_chars: int
    negative_prompt_max_chars: int
    seed_min: int
    seed_max: int
    image_formats: tuple[str, ...]
    image_max_bytes: int
    image_min_side_px: int
    image_max_side_px: int


def parse_rules(data: dict) -> GatewayRules:
    """Build the rules from a parsed catalog TOML document."""
    limits = data["limits"]
    models = {
        model_id: ModelRules(
            model_id=model_id,
            kind=raw.get("kind", FIRST_FRAME),
            resolutions=tuple(raw["resolutions"]),
            default_resolution=raw["default_resolution"],
            durations=tuple(int(d) for d in raw["durations"]),
            default_duration=int(raw["default_duration"]),
            speed_class=raw.get("speed_class", "standard"),
        )
        for model_id, raw in data["models"].items()
    }
    return GatewayRules(
        models=models,
        tier_pixels={tier: int(pixels) for tier, pixels in data["tiers"].items()},
        prompt_max_chars=int(limits["prompt_max_chars"]),
        negative_prompt_max_chars=int(limits["negative_prompt_max_chars"]),
        seed_min=int(limits["seed_min"]),
        seed_max=int(limits["seed_max"]),
        image_formats=tuple(str(f).upper() for f in limits["image_formats"]),
        image_max_bytes=int(limits["image_max_bytes"]),
        image_min_side_px=int(limits["image_min_side_px"]),
        image_max_side_px=int(limits["image_max_side_px"]),
    )


@cache
def load_rules(path: Path = CATALOG_FILE) -> GatewayRules:
    """Read the rules from the catalog file, once per process."""
    with path.open("rb") as handle:
        return parse_rules(tomllib.load(handle))


def output_size(width: int, height: int, tier_pixels: int) -> tuple[int, int]:
    """Return the video size the gateway makes for an image of this size at a tier.

    Parameters
    ----------
    width, height
        The input image's size in pixels.
    tier_pixels
        The tier's total pixel count (``[tiers]`` in the catalog).

    Returns
    -------
    tuple[int, int]
        ``(width, height)`` with the image's aspect ratio, about ``tier_pixels`` pixels in all, and
        both sides floored to multiples of 16 (750x1000 at 921600 pixels gives 816x1104).
    """
    if width <= 0 or height <= 0:
        raise ValueError("image sides must be positive")
    # Integer square roots keep exact cases exact (16:9 at 2073600 pixels is 1920x1080).
    out_width = math.isqrt(tier_pixels * width // height)
    out_height = math.isqrt(tier_pixels * height // width)
    return (
        max(SIDE_MULTIPLE, out_width // SIDE_MULTIPLE * SIDE_MULTIPLE),
        max(SIDE_MULTIPLE, out_height // SIDE_MULTIPLE * SIDE_MULTIPLE),
    )
