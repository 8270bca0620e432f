"""Getting a task's frame image: fetch an http(s) link or decode a ``data:`` URI, then check it.

Like upstream, these checks run after the submit was accepted; a problem fails the task with
``InvalidParameter`` and a message saying what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
import urllib.error
import urllib.request

from PIL import Image, ImageOps, UnidentifiedImageError

from simulator._rules import GatewayRules

FETCH_TIMEOUT_SECONDS = 10.0
DATA_URI_MIME_TYPES = ("image/jpeg", "image/jpg", "image/png", "image/bmp", "image/webp")
_READ_CHUNK = 64 * 1024


class ImageRejected(Exception):
    """The image cannot be used; the message is what the task's ``output.message`` says."""


def _opener() -> urllib.request.OpenerDirector:
    # Built by hand so that only http(s) is spoken, also after a redirect (no file:, ftp:, data:).
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch_image_bytes(url: str, *, max_bytes: int, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """Return the bytes behind an ``http(s)`` link or a ``data:`` URI.

    Raises
    ------
    ImageRejected
        When the link cannot be fetched within ``timeout`` or holds more than ``max_bytes``.
    """
    if url.startswith("data:"):
        return _decode_data_uri(url, max_bytes=max_bytes)
    if not url.startswith(("http://", "https://")):
        raise ImageRejected("The image URL must be an http(s) link or a data: URI.")
    deadline = time.monotonic() + timeout
    # The scheme is checked above and the opener speaks nothing but http(s).
    request = urllib.request.Request(url, headers={"User-Agent": "wan-gateway-simulator"})  # noqa: S310
    try:
        with _opener().open(request, timeout=timeout) as response:
            chunks: list[bytes] = []
            total = 0
            while chunk := response.read(_READ_CHUNK):
                total += len(chunk)
                if total > max_bytes:
                    raise ImageRejected(
                        f"The image at the URL is larger than {max_bytes // (1024 * 1024)} MB."
                    )
                if time.monotonic() > deadline:
                    raise ImageRejected("Downloading the image from the URL took too long.")
                chunks.append(chunk)
    except urllib.error.HTTPError as error:
        raise ImageRejected(f"Downloading the image failed: HTTP {error.code}.") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise ImageRejected(f"Downloading the image failed: {reason}.") from None
    return b"".join(chunks)


def _decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    mime, _, encoding = header[len("data:") :].partition(";")
    if not sep or encoding.lower() != "base64":
        raise ImageRejected("The data URI must look like data:image/png;base64,<data>.")
    if mime.lower() not in DATA_URI_MIME_TYPES:
        raise ImageRejected(
            f"The data URI's type {mime or '(none)'} is not supported; "
            "use image/jpeg, image/png, image/bmp or image/webp."
        )
    # Base64 grows data by 4/3: refuse before decoding something far too large.
    if len(payload) > (max_bytes + 2) // 3 * 4 + 4:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("The data URI's base64 data is not valid.") from None
    if len(data) > max_bytes:
        raise ImageRejected(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    return data


def decode_image(data: bytes, *, rules: GatewayRules) -> Image.Image:
    """Decode and check image bytes against the gateway's rules; return an RGB image.

    Raises
    ------
    ImageRejected
        When the bytes are no image, a format the gateway refuses, too heavy, or a side is outside
        the allowed range.
    """
    if not data:
        raise ImageRejected("The image is empty.")
    if len(data) > rules.image_max_bytes:
        raise ImageRejected(
            f"The image is larger than {rules.image_max_bytes // (1024 * 1024)} MB."
        )
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ImageRejected("The image could not be decoded; it is not an image.") from None
    if (image.format or "").upper() not in rules.image_formats:
        raise ImageRejected(
            f"The image format {image.format or 'unknown'} is not supported; "
            f"use {', '.join(rules.image_formats)}."
        )
    # Check the sides from the header, before decoding the pixels (a bomb stops here).
    width, height = image.size
    low, high = rules.image_min_side_px, rules.image_max_side_px
    if not (low <= width <= high and low <= height <= high):
        raise ImageRejected(
            f"The image is {width}x{height} px; each side must be between {low} and {high} px."
        )
    try:
        image.load()
    except (OSError, ValueError, SyntaxError):
        raise ImageRejected("The image could not be decoded; the file is damaged.") from None
    return ImageOps.exif_transpose(image).convert("RGB")
