"""Test images made in memory: every format, size and oddity the first-frame code must handle.

Nothing binary is committed; each helper builds its file from scratch. The ``images`` fixture
exposes the same helpers as a namespace for tests that prefer fixtures.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from types import SimpleNamespace

import pytest
from PIL import Image

from studio import images as studio_images
from studio.catalog import Limits, default_catalog

EXIF_ORIENTATION_TAG = 0x0112
# The shipped catalog's input rules: what the app checks an image against.
SHIPPED_LIMITS = default_catalog().limits


def inspect_image(
    data: bytes, *, filename: str | None = None, limits: Limits = SHIPPED_LIMITS
) -> studio_images.ImageCheck:
    """``studio.images.inspect_image``, against the shipped catalog's rules unless told."""
    return studio_images.inspect_image(data, filename=filename, limits=limits)


def prepare_image(
    data: bytes, *, filename: str | None = None, limits: Limits = SHIPPED_LIMITS
) -> studio_images.PreparedImage:
    """``studio.images.prepare_image``, against the shipped catalog's rules unless told."""
    return studio_images.prepare_image(data, filename=filename, limits=limits)


def encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    """Save a Pillow image to bytes in the given format."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def gradient(width: int, height: int, *, mode: str = "RGB") -> Image.Image:
    """A smooth image whose corners differ, so rotations are detectable.

    Red grows from top to bottom and green from left to right: the top-left corner is dark, the
    bottom-left red, the top-right green.
    """
    red = Image.linear_gradient("L").resize((width, height))
    if mode == "L":
        return red
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    blue = Image.new("L", (width, height), 64)
    rgb = Image.merge("RGB", (red, green, blue))
    return rgb if mode == "RGB" else rgb.convert(mode)


def image_bytes(width: int, height: int, image_format: str = "PNG", *, mode: str = "RGB") -> bytes:
    """A gradient of the given size, mode and format."""
    return encode(gradient(width, height, mode=mode), image_format)


def jpeg(width: int = 640, height: int = 480) -> bytes:
    return image_bytes(width, height, "JPEG")


def png(width: int = 640, height: int = 480) -> bytes:
    return image_bytes(width, height, "PNG")


def rgba_png(width: int = 640, height: int = 480) -> bytes:
    """A PNG whose right half is fully transparent."""
    image = gradient(width, height, mode="RGBA")
    image.paste((0, 0, 0, 0), (width // 2, 0, width, height))
    return encode(image, "PNG")


def cmyk_jpeg(width: int = 640, height: int = 480) -> bytes:
    return encode(gradient(width, height, mode="CMYK"), "JPEG")


def gray16_png(width: int = 640, height: int = 480) -> bytes:
    """A 16-bit greyscale PNG (Pillow mode I;16) with values up to 60000."""
    return encode(Image.new("I;16", (width, height), 60000), "PNG")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def rgb48_png(width: int = 400, height: int = 400) -> bytes:
    """A 16-bit-per-channel RGB PNG, written by hand because Pillow cannot write one."""
    row = b"\x00" + b"\xff\x00\x80\x00\x00\x00" * width
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(row * height))
        + _png_chunk(b"IEND", b"")
    )


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (its pixel data is never reached)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


def blank_png(width: int, height: int, *, alpha: bool = False) -> bytes:
    """A real, complete PNG of one colour: huge in pixels, a few hundred KB on disk at most.

    Compressed a row at a time, so making it never holds the pixels in memory.
    """
    bands, colour_type = (4, 6) if alpha else (3, 2)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + bands * width)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def webp_claiming(width: int, height: int) -> bytes:
    """A valid lossless WebP of about 40 bytes that decodes to ``width`` × ``height`` pixels.

    A one-pixel image's stream codes every pixel in zero bits, so writing a larger size into its
    header (14 bits a side, after the ``VP8L`` chunk's signature byte) makes a real image of any
    size up to 16383 × 16383.
    """
    data = encode(Image.new("RGB", (1, 1), (10, 20, 30)), "WEBP", lossless=True)
    start = data.index(b"VP8L") + 9
    fields = int.from_bytes(data[start : start + 4], "little")
    fields = (fields & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    return data[:start] + fields.to_bytes(4, "little") + data[start + 4 :]


def noise_png(width: int, height: int) -> bytes:
    """Random pixels stored uncompressed: about width × height × 3 bytes."""
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    return encode(image, "PNG", compress_level=0)


def exif_rotated_jpeg(width: int = 800, height: int = 600, *, orientation: int = 6) -> bytes:
    """A JPEG stored as width × height whose EXIF says to rotate it (6: 90° clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    return encode(gradient(width, height), "JPEG", exif=exif.tobytes())


def animated(image_format: str = "GIF", *, width: int = 480, height: int = 480) -> bytes:
    """A three-frame animation: red, green, blue."""
    frames = [Image.new("RGB", (width, height), colour) for colour in ("red", "lime", "blue")]
    return encode(frames[0], image_format, save_all=True, append_images=frames[1:], duration=100)


def truncated(data: bytes, *, keep: float = 0.5) -> bytes:
    """The first part of a file, as an interrupted download leaves it."""
    return data[: int(len(data) * keep)]


@pytest.fixture
def images() -> SimpleNamespace:
    """Every image builder of this module, for tests that take fixtures."""
    return SimpleNamespace(
        encode=encode,
        gradient=gradient,
        image_bytes=image_bytes,
        jpeg=jpeg,
        png=png,
        rgba_png=rgba_png,
        cmyk_jpeg=cmyk_jpeg,
        gray16_png=gray16_png,
        rgb48_png=rgb48_png,
        bomb_png=bomb_png,
        blank_png=blank_png,
        webp_claiming=webp_claiming,
        noise_png=noise_png,
        exif_rotated_jpeg=exif_rotated_jpeg,
        animated=animated,
        truncated=truncated,
    )
