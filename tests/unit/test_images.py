"""First frames: reading, checking and fixing images, and the content-addressed image library."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

import pytest
from PIL import Image

from studio import images
from studio.catalog import Limits, default_catalog
from studio.images import (
    MAX_PIXELS,
    ImageLibrary,
    ImageRejected,
    read_image,
    shrink_to_jpeg,
)
from tests.plugins.images import (
    animated,
    blank_png,
    bomb_png,
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    gradient,
    gray16_png,
    image_bytes,
    inspect_image,
    jpeg,
    noise_png,
    png,
    prepare_image,
    rgb48_png,
    rgba_png,
    truncated,
    webp_claiming,
)

TEN_MB = 10 * 1024 * 1024


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def codes(data: bytes) -> list[str]:
    return [problem.code for problem in inspect_image(data).problems]


def codes_with(data: bytes, limits: Limits) -> list[str]:
    return [p.code for p in inspect_image(data, limits=limits).problems]


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# --- refusals -------------------------------------------------------------------------------


def test_empty_file_is_refused_with_what_to_do() -> None:
    with pytest.raises(ImageRejected, match=r"empty \(0 bytes\).*Choose the image again"):
        inspect_image(b"")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.7\n%binary", "PDF document"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG drawing"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC photo"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "AVIF image"),
    ],
)
def test_known_unusable_formats_are_named_and_told_to_convert(data: bytes, expected: str) -> None:
    with pytest.raises(ImageRejected, match=rf"{expected}.*Convert it to JPEG or PNG"):
        prepare_image(data, filename="picture.jpg")


def test_text_is_not_an_image() -> None:
    with pytest.raises(ImageRejected, match="not an image this app can read"):
        inspect_image(b"just some words, no pixels", filename="notes.png")


def test_corrupt_image_is_refused() -> None:
    data = png()
    # A valid signature and header followed by garbage where the pixels should be.
    corrupt = data[:33] + bytes(range(256)) * 4
    with pytest.raises(ImageRejected, match="damaged"):
        inspect_image(corrupt)


@pytest.mark.parametrize("make", [jpeg, png], ids=["jpeg", "png"])
def test_truncated_image_is_refused(make) -> None:
    with pytest.raises(ImageRejected, match=r"incomplete or damaged.*again"):
        inspect_image(truncated(make()))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("width", "height"),
    [(10_000, 9_000), (30_000, 30_000)],
    ids=["over-our-cap", "over-pillows-error-cap"],
)
def test_decompression_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    data = bomb_png(width, height)
    assert len(data) < 2_000
    largest = f"the largest we can work with is {MAX_PIXELS // 1_000_000} megapixels"
    with pytest.raises(ImageRejected, match=rf"{largest}\. Please use a smaller image\."):
        inspect_image(data)
    with pytest.raises(ImageRejected, match=largest):
        prepare_image(data)


# --- checks and notes ------------------------------------------------------------------------


def test_good_jpeg_is_ok_and_sent_untouched() -> None:
    data = jpeg(1280, 720)
    check = inspect_image(data, filename="photo.jpg")
    assert (check.format, check.width, check.height, check.mode) == ("JPEG", 1280, 720, "RGB")
    assert check.size_bytes == len(data)
    assert check.sha256 == hashlib.sha256(data).hexdigest()
    assert check.ok
    assert not check.can_fix
    assert check.notes == []

    prepared = prepare_image(data, filename="photo.jpg")
    assert prepared.data is data
    assert prepared.fixes == []
    assert prepared.warnings == []
    assert (prepared.mime, prepared.format) == ("image/jpeg", "JPEG")
    assert prepared.sha256 == prepared.original_sha256 == check.sha256


@pytest.mark.parametrize(("image_format", "mime"), [("BMP", "image/bmp"), ("WEBP", "image/webp")])
def test_other_accepted_formats_pass_as_they_are(image_format: str, mime: str) -> None:
    data = image_bytes(640, 480, image_format)
    assert inspect_image(data).ok
    prepared = prepare_image(data)
    assert (prepared.format, prepared.mime, prepared.fixes) == (image_format, mime, [])
    assert prepared.data == data


def test_wrong_extension_is_noted_but_accepted() -> None:
    data = jpeg()
    check = inspect_image(data, filename="holiday.PNG")
    assert check.format == "JPEG"
    assert check.ok
    assert check.notes == [
        "The file is named 'holiday.PNG' but is really a JPEG image; it is treated as JPEG."
    ]
    assert prepare_image(data, filename="holiday.PNG").mime == "image/jpeg"


def test_exif_rotation_is_applied_to_what_is_checked_and_sent() -> None:
    data = exif_rotated_jpeg(800, 600, orientation=6)
    check = inspect_image(data)
    assert (check.width, check.height) == (600, 800)
    assert "Rotated upright from its camera orientation." in check.notes
    assert check.ok

    prepared = prepare_image(data)
    assert prepared.fixes == ["Rotated upright from its camera orientation"]
    assert (prepared.width, prepared.height) == (600, 800)
    sent = decode(prepared.data)
    assert sent.size == (600, 800)
    assert sent.getexif().get(0x0112, 1) == 1
    # Turned a quarter clockwise: the stored bottom-left (red) corner is now top-left, and the
    # stored top-left (dark) corner is now top-right.
    top_left, top_right = sent.getpixel((0, 0)), sent.getpixel((599, 0))
    assert top_left[0] > 215
    assert top_left[1] < 40
    assert max(top_right[:2]) < 40


@pytest.mark.parametrize("image_format", ["GIF", "WEBP"])
def test_animation_uses_its_first_frame_and_says_so(image_format: str) -> None:
    data = animated(image_format)
    check = inspect_image(data)
    assert "This is an animation; only its first frame is used." in check.notes

    prepared = prepare_image(data)
    assert "Took the first frame of the animation" in prepared.fixes
    sent = decode(prepared.data)
    assert not getattr(sent, "is_animated", False)
    red, green, blue = sent.convert("RGB").getpixel((10, 10))
    assert red > 200
    assert max(green, blue) < 60


def test_gif_is_converted_to_a_format_the_gateway_takes() -> None:
    check = inspect_image(animated("GIF"))
    problem = next(p for p in check.problems if p.code == "unsupported_format_for_gateway")
    assert problem.message == (
        "The video service does not accept GIF images, only JPEG, PNG, BMP or WEBP."
    )
    assert problem.fix == "Convert to PNG"
    prepared = prepare_image(animated("GIF"))
    assert prepared.format == "PNG"
    assert "Converted GIF to PNG" in prepared.fixes


def test_tiff_is_converted_to_png() -> None:
    data = image_bytes(640, 480, "TIFF")
    assert codes(data) == ["unsupported_format_for_gateway"]
    prepared = prepare_image(data)
    assert (prepared.format, prepared.fixes) == ("PNG", ["Converted TIFF to PNG"])
    assert decode(prepared.data).format == "PNG"


def test_alpha_is_flattened_on_white() -> None:
    data = rgba_png(640, 480)
    check = inspect_image(data)
    assert check.mode == "RGBA"
    assert [(p.code, p.fix) for p in check.problems] == [
        ("has_alpha", "Fill transparent areas with white")
    ]
    assert check.can_fix

    prepared = prepare_image(data)
    assert prepared.fixes == ["Filled transparent areas with white"]
    sent = decode(prepared.data)
    assert (sent.format, sent.mode) == ("PNG", "RGB")
    assert sent.getpixel((600, 240)) == (255, 255, 255)


def test_cmyk_is_converted_to_rgb() -> None:
    data = cmyk_jpeg()
    check = inspect_image(data)
    assert check.mode == "CMYK"
    assert codes(data) == ["cmyk"]
    prepared = prepare_image(data)
    assert prepared.fixes == ["Converted CMYK colours to RGB"]
    assert decode(prepared.data).mode == "RGB"
    assert prepared.format == "JPEG"


def test_cmyk_colour_profile_is_not_carried_onto_rgb_pixels() -> None:
    data = encode(gradient(640, 480, mode="CMYK"), "JPEG", icc_profile=b"a CMYK profile")
    sent = decode(prepare_image(data).data)
    assert sent.mode == "RGB"
    assert "icc_profile" not in sent.info


@pytest.mark.parametrize("make", [gray16_png, rgb48_png], ids=["grey-16", "rgb-48"])
def test_sixteen_bit_colour_is_reduced_to_eight(make) -> None:
    data = make()
    assert codes(data) == ["high_bit_depth"]
    prepared = prepare_image(data)
    assert prepared.fixes == ["Converted 16-bit colour to 8-bit"]
    sent = decode(prepared.data)
    assert sent.mode in ("L", "RGB")
    assert prepared.data[24] == 8  # the PNG header's bit depth


def test_sixteen_bit_grey_keeps_its_brightness() -> None:
    sent = decode(prepare_image(gray16_png()).data)
    assert sent.getpixel((0, 0)) == 60000 // 256


def test_too_small_is_scaled_up_just_enough_with_a_warning() -> None:
    data = png(800, 300)
    problem = inspect_image(data).problems[0]
    assert problem.code == "too_small"
    assert problem.message == "300 px high: the video service needs at least 360 px on each side."
    assert problem.fix == "Scale up to 960×360 px (may look softer)"

    prepared = prepare_image(data)
    assert (prepared.width, prepared.height) == (960, 360)
    assert prepared.fixes == ["Scaled up from 800×300 to 960×360 px"]
    assert prepared.warnings == ["Scaled up 1.2×: it may look softer than the original."]
    assert decode(prepared.data).size == (960, 360)


def test_too_small_on_both_sides_names_both() -> None:
    problem = inspect_image(png(300, 200)).problems[0]
    assert problem.message == "300×200 px: the video service needs at least 360 px on each side."
    assert problem.fix == "Scale up to 540×360 px (may look softer)"


def test_too_large_is_scaled_down_keeping_the_aspect() -> None:
    data = jpeg(4000, 3000)
    problem = inspect_image(data).problems[0]
    assert problem.code == "too_large"
    assert problem.message == (
        "4000×3000 px: the video service accepts at most 2000 px on each side."
    )
    assert problem.fix == "Scale down to 2000×1500 px"

    prepared = prepare_image(data)
    assert prepared.fixes == ["Scaled down from 4000×3000 to 2000×1500 px"]
    assert prepared.warnings == []
    assert (prepared.format, decode(prepared.data).size) == ("JPEG", (2000, 1500))
    assert prepared.original_sha256 == hashlib.sha256(data).hexdigest()
    assert prepared.sha256 == hashlib.sha256(prepared.data).hexdigest()


def test_tall_image_scales_down_to_the_smallest_side_allowed() -> None:
    # 3000×600 → 2000×400: the short side stays above 360 px.
    prepared = prepare_image(png(3000, 600))
    assert (prepared.width, prepared.height) == (2000, 400)


def test_extreme_panorama_cannot_be_fixed_by_scaling() -> None:
    data = png(5000, 300)
    check = inspect_image(data)
    assert [p.code for p in check.problems] == ["extreme_aspect_ratio"]
    assert check.problems[0].fix is None
    assert not check.ok
    assert not check.can_fix
    with pytest.raises(ImageRejected, match=r"5000×300 px is too long and thin.*Crop it"):
        prepare_image(data)


def test_too_heavy_is_recompressed_under_ten_megabytes() -> None:
    data = noise_png(2000, 1900)
    assert len(data) > TEN_MB
    check = inspect_image(data)
    problem = check.problems[0]
    assert [p.code for p in check.problems] == ["too_heavy"]
    assert problem.message.endswith("the video service accepts at most 10.4 MB.")
    assert problem.fix == "Recompress to fit under 10.4 MB"

    prepared = prepare_image(data)
    assert prepared.size_bytes == len(prepared.data) <= TEN_MB
    assert prepared.format == "JPEG"
    assert (prepared.width, prepared.height) == (2000, 1900)
    assert len(prepared.fixes) == 1
    assert prepared.fixes[0].startswith("Recompressed as JPEG (quality ")
    assert prepared.fixes[0].endswith(f"to fit under 10.4 MB; it was {len(data) / 1e6:.1f} MB")


def test_several_fixes_are_applied_in_one_go() -> None:
    rotated_cmyk_giant = encode(
        gradient(3000, 2400, mode="CMYK"),
        "JPEG",
        exif=_orientation_exif(8),
    )
    prepared = prepare_image(rotated_cmyk_giant)
    assert prepared.fixes == [
        "Rotated upright from its camera orientation",
        "Converted CMYK colours to RGB",
        "Scaled down from 2400×3000 to 1600×2000 px",
    ]
    sent = decode(prepared.data)
    assert (sent.mode, sent.size) == ("RGB", (1600, 2000))


def test_custom_limits_are_honoured() -> None:
    strict = replace(default_catalog().limits, image_max_side_px=1000)
    assert inspect_image(jpeg(1280, 720)).ok
    assert codes_with(jpeg(1280, 720), strict) == ["too_large"]
    assert (prepare_image(jpeg(1280, 720), limits=strict).width) == 1000


# --- the library -----------------------------------------------------------------------------


def test_library_keeps_images_by_content_hash(tmp_path) -> None:
    library = ImageLibrary(tmp_path)
    data = jpeg()
    sha = library.save(data, format="JPEG")
    assert sha == hashlib.sha256(data).hexdigest()
    assert library.path(sha) == tmp_path / "images" / sha[:2] / f"{sha}.jpg"
    assert library.exists(sha)
    assert library.load(sha) == data
    # Saving the same bytes again is a no-op that returns the same hash.
    assert library.save(data, format="JPEG") == sha
    assert [p.name for p in (tmp_path / "images" / sha[:2]).iterdir()] == [f"{sha}.jpg"]


def test_library_refuses_what_is_not_a_hash(tmp_path) -> None:
    library = ImageLibrary(tmp_path)
    missing = "0" * 64
    assert not library.exists(missing)
    with pytest.raises(FileNotFoundError):
        library.load(missing)
    with pytest.raises(ValueError, match="SHA-256"):
        library.path("../../etc/passwd")


def test_thumbnail_is_small_upright_and_cached(tmp_path) -> None:
    library = ImageLibrary(tmp_path)
    sha = library.save(exif_rotated_jpeg(800, 600, orientation=6), format="JPEG")
    thumb = library.thumbnail(sha)
    image = decode(thumb)
    assert (image.format, image.size) == ("JPEG", (120, 160))
    cached = list((tmp_path / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1
    assert library.thumbnail(sha) == thumb


def test_thumbnail_of_transparent_png_is_flattened(tmp_path) -> None:
    library = ImageLibrary(tmp_path)
    sha = library.save(rgba_png(640, 480), format="PNG")
    image = decode(library.thumbnail(sha, max_side=64))
    assert image.size == (64, 48)
    assert image.mode == "RGB"
    assert all(channel > 245 for channel in image.getpixel((60, 24)))


def test_damaged_webp_is_called_damaged() -> None:
    data = image_bytes(640, 480, "WEBP")
    with pytest.raises(ImageRejected, match="damaged"):
        inspect_image(data[:16] + b"\x00" * 64)


@pytest.mark.parametrize(
    ("data", "max_side", "expected_size"),
    [
        (rgba_png(2000, 1000), 720, (720, 360)),  # shrunk, aspect kept, alpha flattened
        (png(400, 300), 720, (400, 300)),  # never enlarged
    ],
)
def test_previews_are_light_upright_jpegs(data: bytes, max_side: int, expected_size) -> None:
    preview = shrink_to_jpeg(data, max_side=max_side)
    with Image.open(io.BytesIO(preview)) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", expected_size)


# --- huge images in small files -------------------------------------------------------------


def test_a_tiny_webp_declaring_a_huge_image_is_refused_from_its_header() -> None:
    data = webp_claiming(16383, 4880)
    assert len(data) < 100
    expected = (
        "This image is 16383 × 4880 pixels (79.9 megapixels); the largest we can work with is "
        f"{MAX_PIXELS // 1_000_000} megapixels. Please use a smaller image."
    )
    for read in (inspect_image, prepare_image):
        with pytest.raises(ImageRejected) as refused:
            read(data)
        assert str(refused.value) == expected
    with pytest.raises(ImageRejected, match="Please use a smaller image"):
        shrink_to_jpeg(data, max_side=720)


def test_a_decode_over_the_memory_budget_is_refused_by_name_and_limit() -> None:
    # 12 megapixels is under the pixel ceiling, but Pillow's WebP decoder holds four copies.
    data = webp_claiming(4000, 3000)
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data)
    message = str(refused.value)
    assert message.startswith("This image is 4000 × 3000 pixels (12 megapixels); the largest ")
    largest = float(message.split("we can work with is ")[1].split(" megapixels")[0])
    assert 4 < largest < 12
    assert "WEBP image" in message


def test_a_large_jpeg_is_decoded_reduced_and_scaled_to_fit() -> None:
    # 48 megapixels: a full decode would be over the budget, but a JPEG is read at a quarter of
    # its size here, which still covers the 2000×1500 px it is scaled to.
    data = encode(Image.new("RGB", (8000, 6000), (200, 120, 40)), "JPEG", quality=80)
    check = inspect_image(data)
    assert (check.width, check.height) == (8000, 6000)
    assert [p.code for p in check.problems] == ["too_large"]
    prepared = prepare_image(data)
    assert prepared.fixes == ["Scaled down from 8000×6000 to 2000×1500 px"]
    sent = decode(prepared.data)
    assert sent.size == (2000, 1500)
    orange = (200, 120, 40)
    assert all(abs(a - b) < 6 for a, b in zip(sent.getpixel((1000, 700)), orange, strict=True))


def test_no_more_decodes_run_at_once_than_there_are_slots(monkeypatch) -> None:
    import threading

    from studio import images as images_module

    running = 0
    most = 0
    lock = threading.Lock()
    # One more party than there are slots: it can only be completed if the limit fails. Held
    # until it breaks, so every slot fills before anyone moves on.
    one_too_many = threading.Barrier(images_module.DECODE_SLOTS + 1, timeout=2)
    real_decode = images_module._decode

    def counted(*args, **kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            one_too_many.wait()
        except threading.BrokenBarrierError:
            pass
        finally:
            with lock:
                running -= 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(images_module, "_decode", counted)
    data = png(640, 480)
    threads = [
        threading.Thread(target=inspect_image, args=(data,))
        for _ in range(images_module.DECODE_SLOTS + 4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == images_module.DECODE_SLOTS


_PEAK_MEMORY_CHILD = """
import json, sys, threading, warnings
warnings.simplefilter("ignore")
from studio.images import ImageRejected, shrink_to_jpeg
from tests.plugins.images import inspect_image, prepare_image

def kilobytes():
    # The peak resident size of this program since it started. Not ru_maxrss: Linux carries the
    # parent's peak over into a child, which would hide any smaller peak here.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

blobs = [open(path, "rb").read() for path in sys.argv[1:]]
outcomes = []

def use(data):
    for step in (inspect_image, prepare_image, lambda d: shrink_to_jpeg(d, max_side=720)):
        try:
            step(data)
            outcomes.append("ok")
        except ImageRejected as problem:
            outcomes.append(str(problem))

baseline = kilobytes()
threads = [threading.Thread(target=use, args=(data,)) for data in blobs]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"baseline_kb": baseline, "peak_kb": kilobytes(), "outcomes": outcomes}))
"""

# Two decode slots of the budget, plus room for encoders and the interpreter's own churn.
_PEAK_ALLOWANCE_MB = 400


def _hostile_files(kind: str, folder) -> list:
    if kind == "webp-header-bomb":
        blobs = [webp_claiming(16383, 4880)]
    elif kind == "four-compressible-pngs-over-the-ceiling":
        blobs = [blank_png(10_000, 8_000)] * 4
    elif kind == "four-compressible-pngs-under-the-budget":
        blobs = [blank_png(6_000, 4_500)] * 4
    else:
        photo = Image.new("RGB", (5_600, 5_600), (40, 90, 200))
        blobs = [encode(photo, "JPEG", quality=90, progressive=True)] * 4
        del photo
    paths = []
    for number, data in enumerate(blobs):
        assert len(data) < 400_000  # small files, all of them
        path = folder / f"{kind}-{number}"
        path.write_bytes(data)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "kind",
    [
        "webp-header-bomb",
        "four-compressible-pngs-over-the-ceiling",
        "four-compressible-pngs-under-the-budget",
        "four-progressive-jpegs",
    ],
)
def test_hostile_images_decoded_at_once_stay_within_the_memory_bound(kind, tmp_path) -> None:
    """Inspect, fix and preview each file, all files at once, in a fresh process; read its peak."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    paths = _hostile_files(kind, tmp_path)
    finished = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY_CHILD, *map(str, paths)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(finished.stdout)
    grown_mb = (report["peak_kb"] - report["baseline_kb"]) / 1024
    print(f"{kind}: peak grew {grown_mb:.0f} MB over {report['baseline_kb'] / 1024:.0f} MB")
    assert grown_mb < _PEAK_ALLOWANCE_MB
    outcomes = report["outcomes"]
    assert len(outcomes) == 3 * len(paths)
    if kind in ("webp-header-bomb", "four-compressible-pngs-over-the-ceiling"):
        assert all(outcome.endswith("Please use a smaller image.") for outcome in outcomes)
    else:
        # Large but fixable: every inspection, fix and preview works.
        assert set(outcomes) == {"ok"}


# --- every colour mode ---------------------------------------------------------------------


def _in_mode(mode: str, image_format: str, size: tuple[int, int]) -> bytes:
    if mode.startswith("I;16"):
        image = Image.new(mode, size, 60000)
    elif mode in ("I", "F"):
        image = Image.new(mode, size, 40000)
    elif mode == "P":
        image = gradient(*size).convert("P")
        return encode(image, image_format, transparency=0)
    elif mode == "PA":
        image = Image.new("PA", size, (3, 128))
    else:
        image = gradient(*size).convert(mode) if mode != "LAB" else Image.new("LAB", size)
    return encode(image, image_format)


_MODES_AND_FORMATS = [
    ("1", "PNG"),
    ("L", "PNG"),
    ("LA", "PNG"),
    ("P", "PNG"),
    ("PA", "TIFF"),
    ("RGB", "PNG"),
    ("RGBA", "PNG"),
    ("CMYK", "JPEG"),
    ("CMYK", "TIFF"),
    ("YCbCr", "TIFF"),
    ("LAB", "TIFF"),
    ("I", "TIFF"),
    ("I;16", "PNG"),
    ("I;16", "TIFF"),
    ("I;16B", "TIFF"),
    ("F", "TIFF"),
]
# Below the thumbnail, between thumbnail and preview, wider than the preview (the crash was
# past about 1440 px), and over the gateway's largest side.
_SIZES = [(120, 90), (500, 400), (1600, 900), (3000, 1200)]


@pytest.mark.parametrize("size", _SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize(("mode", "image_format"), _MODES_AND_FORMATS)
def test_every_mode_is_inspected_fixed_and_previewed(
    mode: str, image_format: str, size: tuple[int, int]
) -> None:
    data = _in_mode(mode, image_format, size)
    check = inspect_image(data)
    assert (check.width, check.height) == size
    assert check.ok or check.can_fix

    prepared = prepare_image(data)
    sent = decode(prepared.data)
    assert sent.mode in ("1", "L", "P", "RGB")  # what the gateway takes
    assert sent.size == (prepared.width, prepared.height)
    assert min(sent.size) >= 360
    assert max(sent.size) <= 2000

    for side in (160, 720):
        with Image.open(io.BytesIO(shrink_to_jpeg(data, max_side=side))) as preview:
            assert (preview.format, preview.mode) == ("JPEG", "RGB")
            assert max(preview.size) == min(side, max(size))


def test_a_wide_sixteen_bit_grey_preview_keeps_its_brightness() -> None:
    # The Generate page crashed here: Pillow cannot reduce 16-bit grey by whole factors.
    preview = decode(shrink_to_jpeg(gray16_png(1600, 900), max_side=720))
    assert preview.size == (720, 405)
    assert all(abs(channel - 60000 // 256) <= 2 for channel in preview.getpixel((360, 200)))


def test_thumbnails_of_sixteen_bit_grey_are_made(tmp_path) -> None:
    library = ImageLibrary(tmp_path)
    sha = library.save(gray16_png(2000, 1000), format="PNG")
    assert decode(library.thumbnail(sha)).size == (160, 80)


# -- one read serves the check and the fix --------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The box of every pixel decode."""
    seen: list[tuple[int, int]] = []
    decode_pixels = images._decode

    def counting(decoded: object, *, upright_box: tuple[int, int]) -> None:
        seen.append(upright_box)
        decode_pixels(decoded, upright_box=upright_box)

    monkeypatch.setattr(images, "_decode", counting)
    return seen


def test_one_decode_gives_the_check_and_the_fixed_image(decodes: list[tuple[int, int]]) -> None:
    data = rgba_png(500, 300)
    reading = read_image(data, filename="logo.png", limits=default_catalog().limits)
    assert len(decodes) == 1
    assert [problem.code for problem in reading.check.problems] == ["too_small", "has_alpha"]
    assert reading.check.sha256 == hashlib.sha256(data).hexdigest()
    prepared = reading.prepared
    assert prepared is not None
    assert (prepared.width, prepared.height, prepared.mode) == (600, 360, "RGB")
    assert "Filled transparent areas with white" in prepared.fixes
    assert reading.refusal is None
    # What the fix makes from that one decode is what preparing on its own makes.
    assert prepared == prepare_image(data, filename="logo.png")


def test_an_image_that_passes_is_kept_as_it_is_and_knows_its_own_check() -> None:
    data = jpeg(640, 480)
    reading = read_image(data, limits=default_catalog().limits)
    assert reading.check.ok
    assert reading.prepared is not None
    assert reading.prepared.data == data
    assert reading.prepared.as_check() == replace(reading.check, notes=[])


def test_a_reading_says_why_no_fix_can_make_it_sendable() -> None:
    blocked = read_image(png(5000, 300), limits=default_catalog().limits)
    assert blocked.prepared is None
    assert blocked.refusal is not None
    assert "too long and thin" in blocked.refusal

    tiny_files = replace(default_catalog().limits, image_max_bytes=2_000)
    heavy = read_image(noise_png(800, 600), limits=tiny_files)
    assert heavy.check.can_fix
    assert heavy.prepared is None
    assert heavy.refusal is not None
    assert "even when compressed strongly" in heavy.refusal
