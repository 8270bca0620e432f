"""The simulator's pure parts: catalog rules, output sizes, fault rules, camera moves, frames."""

from __future__ import annotations

import io
import itertools
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageFilter, ImageStat

import simulator._render as render_module
from simulator import FaultConfigError, FaultPlan, FaultRule, output_size
from simulator._faults import FaultCounter, split_key
from simulator._render import (
    FRAMES_AHEAD_BYTES,
    FRAMES_AHEAD_MIN,
    SOURCE_MARGIN,
    camera_move,
    frame_maker,
    frames_ahead,
    plane_maker,
)
from simulator._rules import CATALOG_FILE, load_rules
from simulator._tasks import extend_prompt, upstream_time
from tests.plugins.simulator import image_bytes


@pytest.mark.parametrize(
    ("width", "height", "tier", "expected"),
    [
        (750, 1000, "720P", (816, 1104)),
        (1000, 750, "720P", (1104, 816)),
        (2000, 1125, "1080P", (1920, 1072)),
        (1280, 720, "720P", (1280, 720)),
        (1000, 1000, "480P", (544, 544)),
        (640, 480, "480P", (640, 480)),
        (360, 2000, "480P", (224, 1296)),
    ],
)
def test_output_size_keeps_aspect_and_multiples_of_16(
    width: int, height: int, tier: str, expected: tuple[int, int]
) -> None:
    assert output_size(width, height, load_rules().tier_pixels[tier]) == expected


@pytest.mark.parametrize("tier", ["480P", "720P", "1080P"])
def test_output_size_stays_near_the_tier_pixel_count(tier: str) -> None:
    pixels = load_rules().tier_pixels[tier]
    for width, height in [(360, 360), (401, 1999), (1999, 401), (1234, 567), (2000, 2000)]:
        out_width, out_height = output_size(width, height, pixels)
        assert out_width % 16 == 0
        assert out_height % 16 == 0
        assert 0.85 * pixels <= out_width * out_height <= pixels
        assert abs(out_width / out_height - width / height) / (width / height) < 0.08


def test_output_size_refuses_empty_images() -> None:
    with pytest.raises(ValueError, match="positive"):
        output_size(0, 100, 307200)


def test_rules_come_from_the_catalog_file() -> None:
    with CATALOG_FILE.open("rb") as handle:
        catalog = tomllib.load(handle)
    rules = load_rules()
    assert set(rules.models) == set(catalog["models"])
    assert rules.models["wan2.1-i2v-turbo"].durations == (3, 4, 5)
    assert rules.models["wan2.2-i2v-plus"].resolutions == ("480P", "1080P")
    assert rules.models["wan2.1-kf2v-plus"].kind == "first_and_last_frame"
    assert rules.prompt_max_chars == 800
    assert rules.seed_max == 2147483647
    assert rules.models["wan2.2-i2v-flash"].is_fast
    assert not rules.models["wan2.2-i2v-plus"].is_fast


def test_upstream_time_is_utc_plus_8_with_milliseconds() -> None:
    # 2025-07-27 13:05:15.212 UTC
    assert upstream_time(1753621515.212) == "2025-07-27 21:05:15.212"


def test_extended_prompt_keeps_the_original_and_adds_detail() -> None:
    extended = extend_prompt("a cat on a sofa", 7)
    assert extended.startswith("a cat on a sofa. ")
    assert "camera" in extended
    assert extend_prompt("a cat on a sofa", 7) == extended
    assert extend_prompt("", 7).startswith("The scene")


def test_key_faults_are_parsed_per_key() -> None:
    key = "demo+rate_limit:endpoint=poll:count=2:retry_after=0.5"
    key += "+fail_task:code=DataInspectionFailed"
    base, rules = split_key(key)
    assert base == "demo"
    assert rules == (
        FaultRule(kind="rate_limit", endpoint="poll", count=2, retry_after=0.5, key=key),
        FaultRule(kind="fail_task", code="DataInspectionFailed", key=key),
    )
    assert split_key("plain-key") == ("plain-key", ())


@pytest.mark.parametrize(
    "key",
    [
        "k+explode",
        "k+slow:seconds",
        "k+slow:seconds=soon",
        "k+slow:colour=red",
        "k+rate_limit:endpoint=everywhere",
        "k+fail_task:code=Oops",
        "k+server_error:count=0",
        "k+slow:key=other",
    ],
)
def test_bad_key_faults_are_refused(key: str) -> None:
    with pytest.raises(FaultConfigError):
        split_key(key)


def test_fault_plan_reads_toml(tmp_path) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(
        '[[fault]]\nkind = "rate_limit"\nendpoint = "poll"\nevery = 3\nretry_after = 2\n\n'
        '[[fault]]\nkind = "fail_task"\ncode = "DataInspectionFailed"\nkey = "moderated"\n'
    )
    plan = FaultPlan.from_toml(path)
    assert plan.rules == (
        FaultRule(kind="rate_limit", endpoint="poll", every=3, retry_after=2),
        FaultRule(kind="fail_task", code="DataInspectionFailed", key="moderated"),
    )


@pytest.mark.parametrize(
    "text",
    [
        '[[fault]]\nkind = "nope"\n',
        '[[fault]]\nendpoint = "poll"\n',
        '[[fault]]\nkind = "slow"\nspeed = 3\n',
        '[faults]\nkind = "slow"\n',
    ],
)
def test_fault_plan_refuses_bad_toml(tmp_path, text: str) -> None:
    path = tmp_path / "faults.toml"
    path.write_text(text)
    with pytest.raises(FaultConfigError):
        FaultPlan.from_toml(path)


def test_fault_counter_applies_count_and_every() -> None:
    counter = FaultCounter()
    first_two = FaultRule(kind="server_error", count=2)
    every_third = FaultRule(kind="rate_limit", every=3)
    fired = [
        [rule.kind for rule in counter.firing((first_two, every_third), "poll", "k")]
        for _ in range(6)
    ]
    assert fired == [
        ["server_error"],
        ["server_error"],
        ["rate_limit"],
        [],
        [],
        ["rate_limit"],
    ]


def test_fault_rules_pick_their_endpoint_and_key() -> None:
    counter = FaultCounter()
    video_only = FaultRule(kind="server_error", endpoint="video")
    api = FaultRule(kind="slow", seconds=0)
    lost = FaultRule(kind="lost_submit", endpoint="poll")
    for_key = FaultRule(kind="rate_limit", key="special")
    rules = (video_only, api, lost, for_key)
    assert counter.firing(rules, "video", None) == [video_only]
    assert counter.firing(rules, "poll", "other") == [api]
    assert counter.firing(rules, "submit", "special") == [api, lost, for_key]


def test_same_seed_same_camera_move_and_different_seeds_differ() -> None:
    assert camera_move(42) == camera_move(42)
    assert len({camera_move(seed) for seed in range(20)}) == 20


def test_camera_window_stays_inside_the_source() -> None:
    out_size = (640, 480)
    source_size = (round(640 * SOURCE_MARGIN), round(480 * SOURCE_MARGIN))
    for seed in range(50):
        move = camera_move(seed)
        for step in range(11):
            left, top, right, bottom = move.window(
                step / 10, source_size=source_size, out_size=out_size
            )
            assert 0 <= left < right <= source_size[0] + 1e-9
            assert 0 <= top < bottom <= source_size[1] + 1e-9
            assert right - left >= out_size[0] - 1e-9


def _picture(size: tuple[int, int] = (640, 480)) -> Image.Image:
    return Image.open(io.BytesIO(image_bytes(*size))).convert("RGB")


def _clamp(value: float) -> int:
    return max(0, min(255, round(value)))


_FULL_LUMA = [_clamp((value - 16) * 255 / 219) for value in range(256)]
_FULL_CHROMA = [_clamp((value - 128) * 255 / 224 + 128) for value in range(256)]


def _rgb(frame: bytes, size: tuple[int, int]) -> Image.Image:
    """Turn a limited-range yuv420p frame back into an RGB picture."""
    width, height = size
    half = (width // 2, height // 2)
    luma_end = width * height
    chroma_end = luma_end + half[0] * half[1]
    luma = Image.frombytes("L", size, frame[:luma_end]).point(_FULL_LUMA)
    blue = Image.frombytes("L", half, frame[luma_end:chroma_end]).resize(size)
    red = Image.frombytes("L", half, frame[chroma_end:]).resize(size)
    assert len(frame) == chroma_end + half[0] * half[1]
    chroma = (blue.point(_FULL_CHROMA), red.point(_FULL_CHROMA))
    return Image.merge("YCbCr", (luma, *chroma)).convert("RGB")


def _frames(**options: object) -> list[Image.Image]:
    size = options.pop("size", (320, 240))
    count = options.pop("frame_count", 30)
    first = options.pop("first", _picture())
    make = frame_maker(first=first, size=size, frame_count=count, **options)  # type: ignore[arg-type]
    return [_rgb(make(index), size) for index in range(count)]


def test_every_frame_moves_by_a_fraction_of_a_pixel() -> None:
    frames = _frames(last=None, seed=3, watermark=False)
    for before, after in itertools.pairwise(frames):
        difference = ImageStat.Stat(ImageChops.difference(before, after)).mean
        # Never frozen (integer crops would repeat frames), never a jump.
        assert 0 < sum(difference) / 3 < 12


def test_watermark_is_drawn_bottom_right_only() -> None:
    plain = _frames(last=None, seed=5, watermark=False, frame_count=2)[0]
    marked = _frames(last=None, seed=5, watermark=True, frame_count=2)[0]
    width, height = plain.size
    corner = (width * 2 // 3, height * 4 // 5, width, height)
    assert ImageChops.difference(plain, marked).getbbox() is not None
    assert ImageChops.difference(plain.crop(corner), marked.crop(corner)).getbbox() is not None
    rest = (0, 0, width, height * 4 // 5)
    assert ImageChops.difference(plain.crop(rest), marked.crop(rest)).getbbox() is None


def test_first_and_last_frames_cross_fade() -> None:
    red = Image.new("RGB", (640, 480), (220, 20, 20))
    blue = Image.new("RGB", (640, 480), (20, 20, 220))
    frames = _frames(first=red, last=blue, frame_count=11, seed=1, watermark=False)
    first, middle, last = (frames[i].getpixel((160, 120)) for i in (0, 5, 10))
    assert first[0] > 200
    assert first[2] < 40
    assert last[2] > 200
    assert last[0] < 40
    assert 80 < middle[0] < 160
    assert 80 < middle[2] < 160


def test_frame_colours_survive_the_yuv_conversion() -> None:
    colour = (200, 120, 40)
    (frame,) = _frames(
        first=Image.new("RGB", (640, 480), colour),
        last=None,
        frame_count=1,
        seed=2,
        watermark=False,
    )
    for got, wanted in zip(frame.getpixel((100, 100)), colour, strict=True):
        assert abs(got - wanted) <= 3


class _CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the work given to it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(*args, **kwargs)


def test_sources_fitted_partly_on_the_frame_pool_give_the_same_frames() -> None:
    # Two different pictures, so that a luma plane given to the wrong source shows.
    first, last = _picture(), _picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    options = {"first": first, "last": last, "size": (320, 240), "frame_count": 5, "seed": 4}
    alone = plane_maker(**options, watermark=True)  # type: ignore[arg-type]
    with _CountingPool() as pool:
        shared = plane_maker(**options, watermark=True, pool=pool)  # type: ignore[arg-type]
        assert pool.submitted == 2  # each source's luma was fitted on the pool
    for index in range(5):
        for got, wanted in zip(shared(index), alone(index), strict=True):
            assert (got == wanted).all()


def test_planes_reach_the_encoder_as_they_are_made_without_a_copy() -> None:
    make = plane_maker(
        first=_picture(), last=None, size=(320, 240), frame_count=3, seed=6, watermark=True
    )
    planes = make(1)
    # Arrays that are laid out exactly as yuv420p wants them, so the encoder writes their memory.
    assert [plane.shape for plane in planes] == [(240, 320), (120, 160), (120, 160)]
    assert all(plane.dtype == "uint8" and plane.flags.c_contiguous for plane in planes)
    assert b"".join(planes) == frame_maker(
        first=_picture(), last=None, size=(320, 240), frame_count=3, seed=6, watermark=True
    )(1)


@pytest.mark.parametrize("size", [(736, 400), (1280, 720), (1920, 1072), (4096, 4096)])
def test_frames_made_ahead_of_the_encoder_stay_within_their_memory_budget(
    size: tuple[int, int],
) -> None:
    frame_bytes = size[0] * size[1] * 3 // 2
    ahead = frames_ahead(frame_bytes)
    # Enough for both frame threads to have work, and otherwise only what the budget holds.
    assert ahead >= FRAMES_AHEAD_MIN
    assert ahead == FRAMES_AHEAD_MIN or ahead * frame_bytes <= FRAMES_AHEAD_BYTES
    # A small frame gets far more room than the two frame threads need.
    assert frames_ahead(736 * 400 * 3 // 2) > 4 * FRAMES_AHEAD_MIN


def _noise_plane(size: tuple[int, int], seed: int) -> np.ndarray:
    """A sharp, busy plane: any sampling position off by a fraction of a pixel shows."""
    noise = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    return np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(0.8)))


@pytest.mark.parametrize("crossfade", [False, True], ids=["first frame", "first and last"])
def test_resized_frames_land_where_the_exact_warp_does(crossfade: bool) -> None:
    size = (368, 200)
    source_size = (round(size[0] * SOURCE_MARGIN / 2) * 2, round(size[1] * SOURCE_MARGIN / 2) * 2)
    planes = [_noise_plane(source_size, 1)] + ([_noise_plane(source_size, 2)] if crossfade else [])
    source = render_module._Source(planes)
    resized = 0
    for seed in range(6):
        move = camera_move(seed)
        for index in range(0, 150, 7):
            progress = index / 149
            box = move.window(progress, source_size=source_size, out_size=size)
            exact = render_module._warped(source, progress, box, size)
            got = render_module._resample(source, progress, box, size)
            # Two fixed-point bilinear resamplers, at most 1/64 px apart: a few levels on the
            # sharpest edges; a whole pixel off would be tens of levels.
            assert np.abs(got.astype(int) - exact).max() <= 4
            resized += not np.array_equal(got, exact)
    # The cheap path is taken: the resize and the warp round differently, so they rarely agree.
    assert resized > 0.8 * 6 * len(range(0, 150, 7))


@pytest.mark.parametrize("scale", [1.0, 1.001])
def test_a_zoom_of_one_or_nearly_is_still_placed_at_its_fraction(scale: float) -> None:
    # At 1.001 the resize would start 135 and 35 pixels early, and its size would round to
    # its input's: OpenCV would copy the pixels instead of resampling them.
    plane = _noise_plane((480, 120), 3)
    source = render_module._Source([plane])
    size = (96, 64)
    box = (10.15, 5.05, 10.15 + size[0] * scale, 5.05 + size[1] * scale)
    got = render_module._resample(source, 0.0, box, size)
    exact = render_module._warped(source, 0.0, box, size)
    assert np.abs(got.astype(int) - exact).max() <= 4
    # Not the whole-pixel crop a plain copy would give.
    assert not np.array_equal(got, plane[5 : 5 + 64, 10 : 10 + 96])
