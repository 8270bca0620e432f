"""What a clip costs and what size it comes out at, from the catalog's data."""

from __future__ import annotations

import math
from decimal import Decimal

from studio.catalog import ModelSpec

# The documentation lists a price per clip of this many seconds.
LISTED_CLIP_SECONDS = 5
# Output sides are multiples of this many pixels.
SIDE_MULTIPLE = 16


def _rate(spec: ModelSpec, resolution: str) -> Decimal:
    try:
        return spec.price_per_second[resolution]
    except KeyError:
        offered = ", ".join(spec.resolutions)
        raise ValueError(f"{spec.id} has no price for {resolution}; it offers {offered}") from None


def _decimal(value: int | float | Decimal) -> Decimal:
    # Through str() so that a float like 4.1 stays 4.1 rather than its binary approximation.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def estimate_cost(spec: ModelSpec, resolution: str, seconds: int | float | Decimal) -> Decimal:
    """Estimate a clip's price before it is made: the per-second rate times its length.

    Parameters
    ----------
    spec
        The model, from the catalog (``catalog.model(model_id)``).
    resolution
        One of the model's resolutions, e.g. ``"1080P"``.
    seconds
        The clip's length.

    Returns
    -------
    Decimal
        The price in USD, exact (``0.045 × 5`` is ``0.225``).

    Raises
    ------
    ValueError
        When the model has no price for this resolution.
    """
    return _rate(spec, resolution) * _decimal(seconds)


def cost_for_usage(
    spec: ModelSpec, resolution: str, billed_seconds: int | float | Decimal | None
) -> Decimal:
    """The billed cost of a finished task from the seconds its ``usage`` reports.

    Parameters
    ----------
    spec
        The model, from the catalog.
    resolution
        The resolution the task was made at.
    billed_seconds
        Seconds of video billed (``TaskUsage.billed_seconds``); None or zero means nothing billed.

    Returns
    -------
    Decimal
        The cost in USD, exact.
    """
    if billed_seconds is None or _decimal(billed_seconds) <= 0:
        return Decimal(0)
    return estimate_cost(spec, resolution, billed_seconds)


def listed_clip_price(spec: ModelSpec, resolution: str) -> Decimal | None:
    """The documentation's listed price for a 5-second clip, or None when it lists none."""
    return spec.listed_clip_price.get(resolution)


def listed_price_differs(spec: ModelSpec, resolution: str) -> bool:
    """True when the listed 5-second price is not the rate × 5 s that we estimate."""
    listed = spec.listed_clip_price.get(resolution)
    if listed is None:
        return False
    return listed != estimate_cost(spec, resolution, LISTED_CLIP_SECONDS)


def output_size(width: int, height: int, tier_pixels: int) -> tuple[int, int]:
    """The size the gateway makes a video at for an input image and a resolution tier.

    Parameters
    ----------
    width, height
        The input image's size in pixels.
    tier_pixels
        The tier's total pixel count (``Catalog.tier_pixels["720P"]``).

    Returns
    -------
    tuple of int
        ``(width, height)`` with the image's aspect ratio, about ``tier_pixels`` in total, each
        side rounded down to a multiple of 16 (750×1000 at 720P gives 816×1104).
    """
    if width <= 0 or height <= 0 or tier_pixels <= 0:
        raise ValueError("width, height and tier_pixels must be positive")
    # Integer square roots keep this exact: floor(sqrt(tier × w / h)) with no float rounding.
    exact_width = math.isqrt(tier_pixels * width // height)
    exact_height = math.isqrt(tier_pixels * height // width)
    return (
        max(SIDE_MULTIPLE, exact_width // SIDE_MULTIPLE * SIDE_MULTIPLE),
        max(SIDE_MULTIPLE, exact_height // SIDE_MULTIPLE * SIDE_MULTIPLE),
    )
