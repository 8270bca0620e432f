"""First frames: read an image safely, check it against the gateway's rules, fix what can be fixed.

Everything here works on bytes, so uploads and fetched links take the same path. The format is
sniffed from the content, and the image is decoded through to its last pixel (a file that only
*looks* right is refused here rather than by the gateway after a wait), and EXIF orientation is
applied so that what is checked and sent is what the user sees.

Small files can declare huge images, so the size in the header is checked before any pixel is
decoded: over :data:`MAX_PIXELS`, or over :data:`DECODE_BUDGET_BYTES` of memory to decode, is
refused. JPEGs are decoded at the smallest scale that still covers what is needed, everything
is scaled down before it is turned or converted, and at most :data:`DECODE_SLOTS` decodes run at
once in the process. `ImageLibrary` keeps images by content hash in the data
folder so history can show and reuse them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from studio.catalog import Limits
from studio.humane import file_size, size_limit

if TYPE_CHECKING:
    from PIL import Image

# The most pixels this app decodes. A 48-megapixel phone photo fits; the gateway itself takes at
# most 2000×2000 px, so anything larger only ever gets scaled down.
MAX_PIXELS = 50_000_000
# The most memory one decode may take at its peak, working copies included. Sizes come from the
# header, so an image over budget is refused before any pixel is decoded.
DECODE_BUDGET_BYTES = 160 * 1024 * 1024
# How many images are decoded at once in this process; more wait their turn, so several large
# uploads at the same moment cannot multiply the peak.
DECODE_SLOTS = 2
_decode_slots = threading.BoundedSemaphore(DECODE_SLOTS)
# Pillow allocates pixels in blocks (16 MB by default). Blocks above the C library's largest mmap
# threshold (32 MB) are mapped and unmapped directly; smaller ones stay in the freeing thread's
# malloc arena after use, so each server thread that once decoded a large image kept its memory.
_PIXEL_BLOCK_BYTES = 64 * 1024 * 1024


@functools.cache
def _pillow() -> ModuleType:
    """Pillow's ``Image`` module, imported where an image is first read, not with this module.

    The page's own modules import this one for its records, and draw the form on a fresh server
    without waiting for Pillow.
    """
    from PIL import Image

    Image.core.set_block_size(_PIXEL_BLOCK_BYTES)
    return Image


# Scaling first halves by whole factors (cheap, and the full-size copy goes at once), then
# resamples; 3 keeps the result as sharp as a direct resample.
_REDUCING_GAP = 3.0

# Decoders allowed to open input. Restricting Pillow's plugins keeps rarely used, riskier decoders
# (EPS via Ghostscript, FITS, ...) away from untrusted bytes. The JPEG decoder also opens MPO,
# Pillow's name for camera JPEGs carrying extra previews; to everyone else they are plain JPEGs.
_DECODABLE_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF")
_FORMAT_ALIASES = {"MPO": "JPEG"}

MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}
FILE_EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "BMP": "bmp",
    "WEBP": "webp",
    "GIF": "gif",
    "TIFF": "tiff",
}
_EXTENSION_FORMATS = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "jpe": "JPEG",
    "jfif": "JPEG",
    "png": "PNG",
    "bmp": "BMP",
    "dib": "BMP",
    "webp": "WEBP",
    "gif": "GIF",
    "tif": "TIFF",
    "tiff": "TIFF",
    "heic": "HEIC",
    "heif": "HEIC",
    "avif": "AVIF",
    "svg": "SVG",
    "pdf": "PDF",
}

# Signatures of files people often try that cannot be used, so the refusal can name them.
_UNUSABLE_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"%PDF", "a PDF document"),
    (4, b"ftypheic", "a HEIC photo"),
    (4, b"ftypheix", "a HEIC photo"),
    (4, b"ftyphevc", "a HEIC photo"),
    (4, b"ftypmif1", "a HEIF photo"),
    (4, b"ftypmsf1", "a HEIF photo"),
    (4, b"ftypavif", "an AVIF image"),
    (0, b"8BPS", "a Photoshop document"),
    (0, b"\x00\x00\x01\x00", "an icon file"),
)

# How the decodable formats begin, to tell a damaged image from something that is no image at all.
_DECODABLE_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)

JPEG_QUALITY = 92
# Tried in order when an image must shrink to fit the byte limit.
_JPEG_QUALITY_LADDER = (92, 85, 75, 65, 50)
_WEBP_QUALITY = 90
_STRONG_COMPRESSION_BELOW = 75

_EXIF_ORIENTATION_TAG = 0x0112
# How to stand an image upright for each EXIF orientation (1, upright, needs nothing), by the
# name of Pillow's ``Image.Transpose`` member.
_ORIENTATION_TURNS = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
# Transparency stored premultiplied, and the ordinary mode that holds the same picture.
_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}
# Copies of the frame a decoder holds at its peak, the image included (measured).
_FORMAT_DECODE_COPIES = {"WEBP": 4, "TIFF": 2, "GIF": 2}
_MODES_WITH_ALPHA = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_HIGH_BIT_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_SENDABLE_MODES = frozenset({"1", "L", "P", "RGB"})


class ImageRejected(Exception):
    """An image that cannot be used; its text says what is wrong and what to do."""


@dataclass(frozen=True)
class ImageProblem:
    """One rule of the gateway that an image breaks, and the fix on offer (None: no fix)."""

    code: str
    message: str
    fix: str | None


@dataclass(frozen=True)
class ImageCheck:
    """What an image is and which of the gateway's rules it breaks.

    ``width`` and ``height`` are those of the upright first frame, the one that would be sent.
    ``ok`` means it can be sent as it is; ``can_fix`` means every problem has a fix.
    """

    format: str
    width: int
    height: int
    size_bytes: int
    mode: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    problems: list[ImageProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def can_fix(self) -> bool:
        return bool(self.problems) and all(problem.fix for problem in self.problems)


@dataclass(frozen=True)
class PreparedImage:
    """The bytes to send for a frame, what they are, and what was done to get them.

    It keeps everything later steps need (format, size, hash), so nothing decodes it again.
    """

    data: bytes = field(repr=False)
    mime: str
    format: str
    mode: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    original_sha256: str
    fixes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_check(self) -> ImageCheck:
        """The check of these bytes, without reading them again: they meet every rule."""
        return ImageCheck(
            format=self.format,
            width=self.width,
            height=self.height,
            size_bytes=self.size_bytes,
            mode=self.mode,
            sha256=self.sha256,
        )


@dataclass(frozen=True)
class ImageReading:
    """An image read and decoded once: its check, and what would be sent.

    ``prepared`` is the image as given when it meets every rule (turned upright, first frame
    only), else with every fix applied; it is None when no fix can make it sendable, and
    ``refusal`` then says why.
    """

    check: ImageCheck
    prepared: PreparedImage | None
    refusal: str | None = None


@dataclass
class _Decoded:
    """An image read from its header, then decoded at the size the task needs.

    ``width`` and ``height`` are those of the whole upright first frame, as the header gives them;
    ``image`` holds its pixels in stored orientation, possibly already reduced on decode (a JPEG
    draft), so it may be smaller.
    """

    image: Image.Image
    format: str
    source_mode: str
    width: int
    height: int
    orientation: int
    sha256: str
    size_bytes: int
    animated: bool
    high_bit_depth: bool
    has_alpha: bool
    notes: list[str]

    @property
    def rotated(self) -> bool:
        return self.orientation != 1

    def stored(self, size: tuple[int, int]) -> tuple[int, int]:
        """An upright size as it is in the file: turned a quarter when the EXIF turns it back."""
        return (size[1], size[0]) if self.orientation in _QUARTER_TURNS else size


@contextmanager
def _decode_slot(decoded: _Decoded) -> Iterator[None]:
    """Wait for one of the process's decode slots and hold it while pixels are in memory.

    The decoded pixels are released on the way out, before the slot is: Pillow's images can sit
    in reference cycles, and waiting for the garbage collector would let the next decode start
    while this one's memory is still held.
    """
    with _decode_slots:
        try:
            yield
        finally:
            decoded.image.close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _megapixels(pixels: float) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def _dimensions(width: int, height: int) -> str:
    return f"{width}×{height} px"


def _describe_unusable(data: bytes) -> str | None:
    for offset, signature, description in _UNUSABLE_SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return description
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "an SVG drawing"
    if head.startswith((b"<!doctype html", b"<html")):
        return "a web page"
    return None


def _png_bit_depth(data: bytes) -> int | None:
    # Pillow reads 48- and 64-bit PNGs as 8-bit RGB(A) without saying so; the header tells.
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) > 24:
        return data[24]
    return None


def _extension_note(filename: str | None, real_format: str) -> str | None:
    if not filename or "." not in filename:
        return None
    named_format = _EXTENSION_FORMATS.get(filename.rsplit(".", 1)[1].lower())
    if named_format is None or named_format == real_format:
        return None
    return (
        f"The file is named {filename!r} but is really a {real_format} image; "
        f"it is treated as {real_format}."
    )


def _open(data: bytes) -> Image.Image:
    """Read the header only: format, size and mode, no pixels yet."""
    if not data:
        raise ImageRejected(
            "The file is empty (0 bytes). Choose the image again; it may not have finished "
            "saving or downloading."
        )
    pillow = _pillow()
    try:
        return pillow.open(io.BytesIO(data), formats=_DECODABLE_FORMATS)
    except pillow.DecompressionBombError:
        raise ImageRejected(
            "This image claims to be far larger than any photo needs; the largest we can work "
            f"with is {_megapixels(MAX_PIXELS)} megapixels. Please use a smaller image."
        ) from None
    except pillow.UnidentifiedImageError:
        is_webp = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
        if data.startswith(_DECODABLE_SIGNATURES) or is_webp:
            raise ImageRejected(
                "The image is damaged and cannot be read. Save or export it again, then retry."
            ) from None
        unusable = _describe_unusable(data)
        if unusable:
            raise ImageRejected(
                f"This file is {unusable}, which cannot be used as a first frame. "
                "Convert it to JPEG or PNG and try again."
            ) from None
        raise ImageRejected(
            "This file is not an image this app can read. Use a JPEG, PNG, BMP or WEBP image."
        ) from None
    except Exception:
        # A damaged header can make any decoder raise almost anything; all mean the same thing.
        raise ImageRejected(
            "The image is damaged and cannot be read. Save or export it again, then retry."
        ) from None


def _orientation(image: Image.Image) -> int:
    if image.format == "PNG" and "exif" not in image.info and image.tile:
        # A PNG may keep its EXIF after the pixels, and asking for it would decode them all
        # before any check; it is read again once the image is decoded.
        return 1
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:
        # Broken camera metadata must not block a readable image.
        return 1
    return orientation if orientation in _ORIENTATION_TURNS else 1


def _read_header(data: bytes, *, filename: str | None) -> _Decoded:
    """Everything the header tells, with the pixel ceiling applied; nothing is decoded yet."""
    image = _open(data)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageRejected(_too_many_pixels(width, height, MAX_PIXELS, image_format=None))
    real_format = _FORMAT_ALIASES.get(image.format or "", image.format or "")
    animated = bool(getattr(image, "is_animated", False))
    notes: list[str] = []
    if note := _extension_note(filename, real_format):
        notes.append(note)
    if animated:
        notes.append("This is an animation; only its first frame is used.")
    bit_depth = _png_bit_depth(data)
    decoded = _Decoded(
        image=image,
        format=real_format,
        source_mode=image.mode,
        width=width,
        height=height,
        orientation=1,
        sha256=_sha256(data),
        size_bytes=len(data),
        animated=animated,
        high_bit_depth=image.mode in _HIGH_BIT_DEPTH_MODES or (bit_depth or 8) > 8,
        has_alpha=_has_alpha(image),
        notes=notes,
    )
    _set_orientation(decoded, _orientation(image))
    return decoded


def _set_orientation(decoded: _Decoded, orientation: int) -> None:
    if orientation == decoded.orientation:
        return
    # Only ever called with the header's orientation 1 still in place.
    decoded.orientation = orientation
    decoded.notes.append("Rotated upright from its camera orientation.")
    if orientation in _QUARTER_TURNS:
        decoded.width, decoded.height = decoded.height, decoded.width


def _too_many_pixels(width: int, height: int, largest: float, *, image_format: str | None) -> str:
    kind = f" {image_format} image" if image_format else ""
    return (
        f"This image is {width} × {height} pixels ({_megapixels(width * height)} megapixels); "
        f"the largest{kind} we can work with is {_megapixels(largest)} megapixels. "
        "Please use a smaller image."
    )


def _stored_bytes_per_pixel(mode: str) -> int:
    # How Pillow keeps pixels in memory: one byte for 1, L and P, two for 16-bit grey, and four
    # for everything else (RGB included, padded).
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _decode_cost(image: Image.Image, source_mode: str, full_size: tuple[int, int]) -> int:
    """Peak bytes to decode ``image`` at its current (possibly drafted) size and work on it.

    Measured per format: Pillow's WebP decoder holds about four copies of the frame, a
    progressive JPEG holds every DCT coefficient (two bytes each) of the whole image whatever the
    draft, scaling down passes through an image up to half the frame's size, and palette, bilevel
    and transparent images need one more full-size copy before they can be scaled.
    """
    width, height = image.size
    stored = _stored_bytes_per_pixel(image.mode)
    per_pixel = stored * _FORMAT_DECODE_COPIES.get(image.format or "", 1) + stored / 2
    if source_mode in ("1", "P", "PA", "LA", "RGBA") or "transparency" in image.info:
        per_pixel += 4
    cost = int(width * height * per_pixel)
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        cost += _jpeg_coefficient_bytes(image, full_size)
    return cost


def _jpeg_coefficient_bytes(image: Image.Image, full_size: tuple[int, int]) -> int:
    # Each colour component has its own sampling; its share of the full image is kept.
    layers = getattr(image, "layer", None) or [("", 1, 1, 0)]
    full_width, full_height = full_size
    most_across = max(layer[1] for layer in layers)
    most_down = max(layer[2] for layer in layers)
    samples = sum(
        full_width * full_height * layer[1] * layer[2] / (most_across * most_down)
        for layer in layers
    )
    return int(samples * 2)


def _decode(decoded: _Decoded, *, upright_box: tuple[int, int]) -> None:
    """Decode the first frame's pixels into ``decoded.image``, no larger than needed.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale when that still covers ``upright_box``; other
    formats decode in full. Either way the cost is worked out from the header first, and a
    decode over :data:`DECODE_BUDGET_BYTES` is refused before it starts. Call it holding a slot.
    """
    image = decoded.image
    full_width, full_height = image.size
    if image.format in ("JPEG", "MPO"):
        # Should a damaged header upset the draft, the image is costed and decoded in full.
        with suppress(Exception):
            image.draft(image.mode, decoded.stored(upright_box))
    cost = _decode_cost(image, decoded.source_mode, (full_width, full_height))
    if cost > DECODE_BUDGET_BYTES:
        largest = min(MAX_PIXELS, DECODE_BUDGET_BYTES * full_width * full_height / cost)
        raise ImageRejected(
            _too_many_pixels(full_width, full_height, largest, image_format=decoded.format)
        )
    try:
        # Frame 0 is the current frame after open; load() decodes it completely.
        image.load()
    except Exception:
        raise ImageRejected(
            "The image is incomplete or damaged (the file may be cut short). "
            "Save or download it again, then retry."
        ) from None
    if decoded.orientation == 1:
        # Now that the pixels are in, EXIF stored after them can be read without cost.
        _set_orientation(decoded, _orientation(image))


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """The image turned as its EXIF orientation says, or the image itself if it needs no turn."""
    turn = _ORIENTATION_TURNS.get(orientation)
    return image if turn is None else image.transpose(_pillow().Transpose[turn])


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in _MODES_WITH_ALPHA or "transparency" in image.info


def _resizable(image: Image.Image) -> Image.Image:
    """The same picture in a mode that scales smoothly (palette and bilevel images expand)."""
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("P", "PA"):
        return image.convert("RGBA" if _has_alpha(image) else "RGB")
    if image.mode in _PREMULTIPLIED:
        return image.convert(_PREMULTIPLIED[image.mode])
    return image


def _scaled(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    # 16-bit grey cannot be reduced by whole factors, only resampled.
    gap = None if image.mode.startswith("I;16") else _REDUCING_GAP
    return image.resize(size, _pillow().Resampling.LANCZOS, reducing_gap=gap)


def _target_size(width: int, height: int, limits: Limits) -> tuple[int, int] | None:
    """Smallest change of scale that puts both sides within the limits, or None if none can."""
    low, high = limits.image_min_side_px, limits.image_max_side_px
    if max(width, height) / min(width, height) > high / low:
        return None
    if max(width, height) > high:
        scale = high / max(width, height)
    elif min(width, height) < low:
        scale = low / min(width, height)
    else:
        return width, height
    # Rounding may nudge a side one pixel past a limit; clamping costs under a pixel of aspect.
    return (
        min(high, max(low, round(width * scale))),
        min(high, max(low, round(height * scale))),
    )


def _size_problems(width: int, height: int, limits: Limits) -> list[ImageProblem]:
    low, high = limits.image_min_side_px, limits.image_max_side_px
    target = _target_size(width, height, limits)
    if target is None:
        return [
            ImageProblem(
                code="extreme_aspect_ratio",
                message=(
                    f"{_dimensions(width, height)} is too long and thin: the video service needs "
                    f"every side between {low} and {high} px, so the long side can be at most "
                    f"{high / low:.1f} times the short one. Crop it to a less extreme shape."
                ),
                fix=None,
            )
        ]
    new_width, new_height = target
    if max(width, height) > high:
        return [
            ImageProblem(
                code="too_large",
                message=(
                    f"{_dimensions(width, height)}: the video service accepts at most {high} px on "
                    "each side."
                ),
                fix=f"Scale down to {_dimensions(new_width, new_height)}",
            )
        ]
    if min(width, height) < low:
        if width < low and height < low:
            measured = _dimensions(width, height)
        elif height < low:
            measured = f"{height} px high"
        else:
            measured = f"{width} px wide"
        return [
            ImageProblem(
                code="too_small",
                message=f"{measured}: the video service needs at least {low} px on each side.",
                fix=f"Scale up to {_dimensions(new_width, new_height)} (may look softer)",
            )
        ]
    return []


def _problems(decoded: _Decoded, limits: Limits) -> list[ImageProblem]:
    problems: list[ImageProblem] = []
    if decoded.format not in limits.image_formats:
        accepted = ", ".join(limits.image_formats[:-1]) + f" or {limits.image_formats[-1]}"
        problems.append(
            ImageProblem(
                code="unsupported_format_for_gateway",
                message=(
                    f"The video service does not accept {decoded.format} images, only {accepted}."
                ),
                fix=f"Convert to {_output_format(decoded)}",
            )
        )
    problems.extend(_size_problems(decoded.width, decoded.height, limits))
    if decoded.size_bytes > limits.image_max_bytes:
        problems.append(
            ImageProblem(
                code="too_heavy",
                message=(
                    f"The file is {file_size(decoded.size_bytes)}: the video service accepts at "
                    f"most {size_limit(limits.image_max_bytes)}."
                ),
                fix=f"Recompress to fit under {size_limit(limits.image_max_bytes)}",
            )
        )
    if decoded.has_alpha:
        problems.append(
            ImageProblem(
                code="has_alpha",
                message="It has a transparency channel, which the video service does not accept.",
                fix="Fill transparent areas with white",
            )
        )
    if decoded.source_mode == "CMYK":
        problems.append(
            ImageProblem(
                code="cmyk",
                message="Its colours are stored as CMYK (for print); the video service needs RGB.",
                fix="Convert to RGB colour",
            )
        )
    elif decoded.high_bit_depth:
        problems.append(
            ImageProblem(
                code="high_bit_depth",
                message="It uses 16 or more bits per colour; the video service needs 8.",
                fix="Convert to 8-bit colour",
            )
        )
    elif decoded.source_mode not in _SENDABLE_MODES and not decoded.has_alpha:
        problems.append(
            ImageProblem(
                code="unusual_colour_mode",
                message=(
                    f"Its colours are stored as {decoded.source_mode}; the video service needs RGB."
                ),
                fix="Convert to RGB colour",
            )
        )
    return problems


def read_image(data: bytes, *, filename: str | None = None, limits: Limits) -> ImageReading:
    """Read an image once: check it against the gateway's rules and prepare what would be sent.

    One header read and one decode serve both, so an upload is decoded once however it is used
    next (shown as ready, fixed with one click, sent).

    Parameters
    ----------
    data
        The file's bytes, as uploaded or fetched.
    filename
        The name it came with, used only to point out a misleading extension.
    limits
        The gateway's input limits.

    Returns
    -------
    ImageReading
        The check and the prepared image (or why none can be made).

    Raises
    ------
    ImageRejected
        If the bytes are empty, not a readable image, damaged, truncated or a decompression bomb.
    """
    decoded = _read_header(data, filename=filename)
    with _decode_slot(decoded):
        check = _decoded_check(decoded, limits)
        try:
            prepared = _prepare(decoded, data, check.problems, limits)
        except ImageRejected as refusal:
            return ImageReading(check=check, prepared=None, refusal=str(refusal))
    return ImageReading(check=check, prepared=prepared)


def inspect_image(data: bytes, *, filename: str | None = None, limits: Limits) -> ImageCheck:
    """The check `read_image` makes, alone: nothing is prepared.

    Raises ``ImageRejected`` for the same files as `read_image`.
    """
    decoded = _read_header(data, filename=filename)
    with _decode_slot(decoded):
        return _decoded_check(decoded, limits)


def _decoded_check(decoded: _Decoded, limits: Limits) -> ImageCheck:
    """Decode the pixels, then say what the image is and which rules it breaks (hold a slot)."""
    # Decoded as far as a fix would: proves the file whole at the cost the fix will have.
    _decode(decoded, upright_box=_working_size(decoded, limits))
    return ImageCheck(
        format=decoded.format,
        width=decoded.width,
        height=decoded.height,
        size_bytes=decoded.size_bytes,
        mode=decoded.source_mode,
        sha256=decoded.sha256,
        notes=list(decoded.notes),
        problems=_problems(decoded, limits),
    )


def _working_size(decoded: _Decoded, limits: Limits) -> tuple[int, int]:
    """The upright size a fix scales to (the smallest decode when no scale can fit)."""
    return _target_size(decoded.width, decoded.height, limits) or (1, 1)


def _output_format(decoded: _Decoded) -> str:
    # Photos stay lossy, everything else becomes lossless PNG (BMP too: same pixels, smaller file).
    if decoded.format == "JPEG":
        return "JPEG"
    if decoded.format == "WEBP":
        return "WEBP"
    return "PNG"


def _to_8bit(image: Image.Image) -> Image.Image:
    as_int = image.convert("I")
    _, high = as_int.getextrema()
    if high > 255:
        as_int = as_int.point(lambda value: value / 256)
    return as_int.convert("L")


def _flatten_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    pillow = _pillow()
    background = pillow.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat = pillow.alpha_composite(background, rgba).convert("RGB")
    # Only an RGB(A) source's colour profile still describes the RGB result.
    if image.mode == "RGBA" and "icc_profile" in image.info:
        flat.info["icc_profile"] = image.info["icc_profile"]
    return flat


def _convert_colours(image: Image.Image, decoded: _Decoded) -> tuple[Image.Image, list[str]]:
    fixes: list[str] = []
    if _has_alpha(image):
        fixes.append("Filled transparent areas with white")
        return _flatten_on_white(image), fixes
    if image.mode == "CMYK":
        fixes.append("Converted CMYK colours to RGB")
        rgb = image.convert("RGB")
        # convert() keeps the CMYK colour profile, which would mislabel the RGB pixels.
        rgb.info.pop("icc_profile", None)
        return rgb, fixes
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        fixes.append("Converted 16-bit colour to 8-bit")
        return _to_8bit(image), fixes
    if decoded.high_bit_depth:
        # Pillow already reduced it to 8 bits while reading; saving it again makes that real.
        fixes.append("Converted 16-bit colour to 8-bit")
    if image.mode in ("L", "RGB"):
        return image, fixes
    if image.mode == "1":
        return image.convert("L"), fixes
    if image.mode != "P":
        fixes.append(f"Converted {image.mode} colours to RGB")
    return _as_rgb(image, decoded), fixes


def _as_rgb(image: Image.Image, decoded: _Decoded) -> Image.Image:
    try:
        return image.convert("RGB")
    except ValueError:
        # Pillow opens a few colour modes it cannot convert; say so rather than fail.
        raise ImageRejected(
            f"Its colours are stored as {decoded.source_mode}, which this app cannot convert. "
            "Save it as an ordinary RGB JPEG or PNG and try again."
        ) from None


def _encode(image: Image.Image, image_format: str, *, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality, icc_profile=image.info.get("icc_profile"))
    elif image_format == "WEBP":
        image.save(buffer, "WEBP", quality=_WEBP_QUALITY, icc_profile=image.info.get("icc_profile"))
    else:
        image.save(buffer, image_format, icc_profile=image.info.get("icc_profile"))
    return buffer.getvalue()


def prepare_image(data: bytes, *, filename: str | None = None, limits: Limits) -> PreparedImage:
    """Apply every available fix at once and return the bytes to send.

    The image is rotated upright, reduced to its first frame, scaled (down to the largest side
    allowed, or up just enough to reach the smallest, keeping its aspect), converted to 8-bit RGB
    without transparency, saved in a format the gateway accepts and recompressed if it is still
    too heavy. An image that already meets every rule is returned untouched.

    Parameters
    ----------
    data
        The original bytes.
    filename
        The name it came with, used only for notes.
    limits
        The gateway's input limits, from the catalog.

    Returns
    -------
    PreparedImage
        The bytes to send, with one line per fix applied and any warnings.

    Raises
    ------
    ImageRejected
        If the image cannot be read, or breaks a rule that no fix can satisfy.
    """
    reading = read_image(data, filename=filename, limits=limits)
    if reading.prepared is None:
        raise ImageRejected(reading.refusal)
    return reading.prepared


def _prepare(
    decoded: _Decoded, data: bytes, problems: list[ImageProblem], limits: Limits
) -> PreparedImage:
    """The decoded image made sendable: untouched if it already is, else with every fix."""
    if blocking := [problem for problem in problems if problem.fix is None]:
        raise ImageRejected(" ".join(problem.message for problem in blocking))
    if not problems and not decoded.rotated and not decoded.animated:
        return PreparedImage(
            data=data,
            mime=MIME_TYPES[decoded.format],
            format=decoded.format,
            mode=decoded.source_mode,
            width=decoded.width,
            height=decoded.height,
            size_bytes=len(data),
            sha256=decoded.sha256,
            original_sha256=decoded.sha256,
        )
    # Taken after decoding: a PNG's EXIF, read only then, may have turned the image. Past the
    # check of problems it is always a size that fits, as shapes no scale fits are refused.
    target = _working_size(decoded, limits)
    image, fixes, warnings = _fixed_pixels(decoded, target)
    encoded, output_format, encoding_fixes, encoding_warnings = _encode_to_fit(
        image, decoded, limits
    )
    return PreparedImage(
        data=encoded,
        mime=MIME_TYPES[output_format],
        format=output_format,
        mode=image.mode,
        width=image.width,
        height=image.height,
        size_bytes=len(encoded),
        sha256=_sha256(encoded),
        original_sha256=decoded.sha256,
        fixes=fixes + encoding_fixes,
        warnings=warnings + encoding_warnings,
    )


def _fixed_pixels(
    decoded: _Decoded, target: tuple[int, int]
) -> tuple[Image.Image, list[str], list[str]]:
    """The first frame upright, at the target size, in colours the gateway takes; what was done."""
    fixes: list[str] = []
    warnings: list[str] = []
    if decoded.rotated:
        fixes.append("Rotated upright from its camera orientation")
    if decoded.animated:
        fixes.append("Took the first frame of the animation")
    # Scaled first, so that turning and colour conversion work on the small copy only.
    image = _scaled(_resizable(decoded.image), decoded.stored(target))
    image = _upright(image, decoded.orientation)
    image, colour_fixes = _convert_colours(image, decoded)
    fixes.extend(colour_fixes)
    width, height = decoded.width, decoded.height
    if target != (width, height):
        verb = "down" if target[0] < width else "up"
        fixes.append(f"Scaled {verb} from {width}×{height} to {target[0]}×{target[1]} px")
        if verb == "up":
            warnings.append(
                f"Scaled up {target[0] / width:.1f}×: it may look softer than the original."
            )
    return image, fixes, warnings


def _encode_to_fit(
    image: Image.Image, decoded: _Decoded, limits: Limits
) -> tuple[bytes, str, list[str], list[str]]:
    """The fixed pixels saved in a format the gateway takes, recompressed to fit if needed."""
    output_format = _output_format(decoded)
    encoded = _encode(image, output_format)
    limit = size_limit(limits.image_max_bytes)
    was = (
        f"; it was {file_size(decoded.size_bytes)}"
        if decoded.size_bytes > limits.image_max_bytes
        else ""
    )
    if len(encoded) > limits.image_max_bytes:
        encoded, quality = _fit_as_jpeg(image, limits.image_max_bytes, heavy_size=len(encoded))
        fixes = [f"Recompressed as JPEG (quality {quality}) to fit under {limit}{was}"]
        warnings = []
        if quality < _STRONG_COMPRESSION_BELOW:
            warnings.append(
                f"Compressed strongly (JPEG quality {quality}); fine detail may be lost."
            )
        return encoded, "JPEG", fixes, warnings
    fixes = []
    if output_format != decoded.format:
        fixes.append(f"Converted {decoded.format} to {output_format}")
    if was:
        fixes.append(f"Recompressed to fit under {limit}{was}")
    return encoded, output_format, fixes, []


def _fit_as_jpeg(image: Image.Image, max_bytes: int, *, heavy_size: int) -> tuple[bytes, int]:
    for quality in _JPEG_QUALITY_LADDER:
        encoded = _encode(image, "JPEG", quality=quality)
        if len(encoded) <= max_bytes:
            return encoded, quality
    raise ImageRejected(
        f"The image stays heavier than {size_limit(max_bytes)} even when compressed strongly "
        f"(it is {file_size(heavy_size)}). Use a smaller or simpler image."
    )


_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ImageLibrary:
    """Images kept by content hash under ``root/images``, with cached thumbnails.

    Files are written atomically and never change once written, so concurrent readers and
    writers (several sessions, the watcher) are safe without locks.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._images = self.root / "images"
        self._thumbnails = self.root / "thumbnails"

    def _folder(self, sha256: str) -> Path:
        if not _SHA256_PATTERN.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self._images / sha256[:2]

    def save(self, data: bytes, *, format: str) -> str:
        """Store the bytes (if not already there) and return their SHA-256."""
        canonical = _FORMAT_ALIASES.get(format.upper(), format.upper())
        if canonical not in FILE_EXTENSIONS:
            raise ValueError(f"cannot store {format!r} images")
        extension = FILE_EXTENSIONS[canonical]
        sha256 = _sha256(data)
        target = self._folder(sha256) / f"{sha256}.{extension}"
        if not target.exists():
            _write_atomically(target, data)
        return sha256

    def path(self, sha256: str) -> Path:
        """Return the stored file for this hash; raise ``FileNotFoundError`` if there is none."""
        for candidate in sorted(self._folder(sha256).glob(f"{sha256}.*")):
            if not candidate.name.endswith(".tmp"):
                return candidate
        raise FileNotFoundError(f"no stored image with hash {sha256}")

    def exists(self, sha256: str) -> bool:
        """Whether an image with this hash is stored."""
        try:
            self.path(sha256)
        except FileNotFoundError:
            return False
        return True

    def load(self, sha256: str) -> bytes:
        """Return the stored bytes for this hash."""
        return self.path(sha256).read_bytes()

    def thumbnail(self, sha256: str, max_side: int = 160) -> bytes:
        """Return a small upright JPEG of the image, made once and cached on disk."""
        cached = self._thumbnails / sha256[:2] / f"{sha256}-{max_side}.jpg"
        if cached.exists():
            return cached.read_bytes()
        data = shrink_to_jpeg(self.path(sha256).read_bytes(), max_side=max_side)
        _write_atomically(cached, data)
        return data


def shrink_to_jpeg(data: bytes, *, max_side: int) -> bytes:
    """An upright JPEG of an image at most ``max_side`` pixels on its longer side (for previews).

    Raises
    ------
    ImageRejected
        If the image cannot be read, is too large to decode, or its colours cannot be shown.
    """
    decoded = _read_header(data, filename=None)
    with _decode_slot(decoded):
        _decode(decoded, upright_box=(max_side, max_side))
        image = _resizable(decoded.image)
        scale = min(1.0, max_side / max(image.size))
        small = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = _upright(_scaled(image, small), decoded.orientation)
        image = _viewable(image, decoded)
        return _encode(image, "JPEG", quality=85)


def _viewable(image: Image.Image, decoded: _Decoded) -> Image.Image:
    """8-bit RGB for a preview, whatever the colours were stored as."""
    if _has_alpha(image):
        return _flatten_on_white(image)
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return _to_8bit(image).convert("RGB")
    return _as_rgb(image, decoded)
