"""The videos the simulator makes, decoded with ffmpeg: codec, size, rate, length, frames."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import requests
from PIL import Image, ImageFilter

from simulator import RunningSimulator
from tests.plugins.simulator import (
    SUBMIT_FRAMES_PATH,
    api_post,
    data_uri,
    image_bytes,
    submit_body,
    submit_task,
    wait_for_task,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def _download(sim: RunningSimulator, task_id: str, folder: Path) -> Path:
    result, _ = wait_for_task(sim.url, task_id)
    assert result["output"]["task_status"] == "SUCCEEDED", result
    path = folder / f"{task_id}.mp4"
    path.write_bytes(requests.get(result["output"]["video_url"], timeout=10).content)
    return path


def _stream_info(path: Path) -> str:
    # No ffprobe in imageio-ffmpeg: `ffmpeg -i` prints the streams to stderr and exits non-zero.
    run = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    (line,) = [line for line in run.stderr.splitlines() if "Video:" in line]
    return line


def _frame_hashes(path: Path) -> list[str]:
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.rsplit(",", 1)[1].strip() for line in run.stdout.splitlines() if line[:1] != "#"]


def _frame(path: Path, index: int) -> Image.Image:
    select = ["-vf", f"select=eq(n\\,{index})", "-frames:v", "1"]
    as_png = ["-f", "image2pipe", "-vcodec", "png", "-"]
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), *select, *as_png], capture_output=True, check=True
    )
    return Image.open(io.BytesIO(run.stdout)).convert("RGB")


def _luma_frames(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Every frame's luma plane, decoded by ffmpeg, as floats of shape (frames, height, width)."""
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
        capture_output=True,
        check=True,
    )
    width, height = size
    return np.frombuffer(run.stdout, np.uint8).reshape(-1, height, width).astype(np.float32)


def _shift_across(before: np.ndarray, after: np.ndarray) -> float:
    """How far the picture moved left from ``before`` to ``after``, in pixels, to about 0.1.

    An iterative image alignment (ECC, translation only), which stays accurate at any fraction
    of a pixel where a phase correlation's peak is biased.
    """
    warp = np.eye(2, 3, dtype=np.float32)
    stop = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-5)
    _, warp = cv2.findTransformECC(before, after, warp, cv2.MOTION_TRANSLATION, stop, None, 1)
    return -float(warp[0, 2])


def _textured_picture(size: tuple[int, int]) -> bytes:
    """Fine detail everywhere, so that the shift between two frames has a sharp peak."""
    grain = Image.effect_noise(size, 80).filter(ImageFilter.GaussianBlur(1.2))
    fractal = Image.effect_mandelbrot(size, (-2.2, -1.2, 1.0, 1.2), 64)
    buffer = io.BytesIO()
    Image.merge("RGB", (grain, fractal, grain.transpose(Image.Transpose.ROTATE_180))).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def test_a_pan_moves_by_fractions_of_a_pixel_without_stalls_or_jumps(
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    # Seed 5 is a pan from left to right of about 50 pixels over 90 frames at 640x480: under
    # a pixel a frame, so a renderer that moved in whole pixels would repeat every other frame.
    body = submit_body(data_uri(_textured_picture((640, 480))), seed=5, watermark=False)
    frames = _luma_frames(
        _download(simulator, submit_task(simulator.url, body), tmp_path), (640, 480)
    )
    assert len(frames) == 90
    across = np.array(
        [_shift_across(before, after) for before, after in itertools.pairwise(frames)]
    )
    # The camera eases in and out; away from the ends it moves steadily.
    middle = across[20:69]
    assert middle.min() > 0.25, f"a stall: {middle.round(2).tolist()}"
    assert middle.max() < 1.5, f"a jump: {middle.round(2).tolist()}"
    # Each step is close to its neighbours' mean: smooth, not alternating 0 and 1 pixel.
    neighbours = (middle[:-2] + middle[2:]) / 2
    assert np.abs(middle[1:-1] - neighbours).max() < 0.3, middle.round(2).tolist()
    # Fractions of a pixel, not whole ones.
    assert np.abs(middle - middle.round()).max() > 0.2
    # And the whole pan adds up to the camera's sweep.
    assert 35 < across.sum() < 70


def test_video_is_h264_yuv420p_faststart_with_exact_frames(
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    body = submit_body(data_uri(image_bytes(640, 480)), seed=21, watermark=True)
    path = _download(simulator, submit_task(simulator.url, body), tmp_path)
    info = _stream_info(path)
    assert "Video: h264" in info
    assert "yuv420p" in info
    assert re.search(r"\b640x480\b", info)
    assert re.search(r"\b30 fps\b", info)
    assert imageio_ffmpeg.count_frames_and_secs(str(path)) == (90, 3.0)
    data = path.read_bytes()
    # faststart: the index comes before the media, so browsers can play while downloading.
    assert data.index(b"moov") < data.index(b"mdat")


def test_video_keeps_the_image_aspect_at_the_tier_size(
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    body = submit_body(data_uri(image_bytes(600, 800)), seed=2)
    path = _download(simulator, submit_task(simulator.url, body), tmp_path)
    assert re.search(r"\b480x640\b", _stream_info(path))


def test_same_seed_same_frames_and_another_seed_other_frames(
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    picture = data_uri(image_bytes(640, 480))
    task_ids = [
        submit_task(simulator.url, submit_body(picture, seed=seed)) for seed in (1234, 1234, 99)
    ]
    first, again, other = (_frame_hashes(_download(simulator, t, tmp_path)) for t in task_ids)
    assert len(first) == 90
    assert first == again
    assert first != other
    # The camera really moves (the encoder may merge a few nearly still frames at the start).
    assert len(set(first)) > 80


def test_first_and_last_frame_model_fades_from_one_to_the_other(
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    def plain(colour: tuple[int, int, int]) -> str:
        buffer = io.BytesIO()
        Image.new("RGB", (640, 480), colour).save(buffer, "PNG")
        return data_uri(buffer.getvalue())

    body = {
        "model": "wan2.1-kf2v-plus",
        "input": {
            "prompt": "red turns blue",
            "first_frame_url": plain((220, 30, 30)),
            "last_frame_url": plain((30, 30, 220)),
        },
        "parameters": {"resolution": "720P", "duration": 5, "seed": 4},
    }
    answer = api_post(simulator.url, SUBMIT_FRAMES_PATH, body)
    assert answer.status_code == 200, answer.text
    path = _download(simulator, answer.json()["output"]["task_id"], tmp_path)
    assert imageio_ffmpeg.count_frames_and_secs(str(path)) == (150, 5.0)
    assert re.search(r"\b1104x816\b", _stream_info(path))
    red, _, blue = _frame(path, 0).getpixel((550, 400))
    assert red > 180
    assert blue < 70
    red, _, blue = _frame(path, 149).getpixel((550, 400))
    assert blue > 180
    assert red < 70


@pytest.mark.parametrize("watermark", [True, False])
def test_watermark_follows_the_parameter_and_colours_are_kept(
    simulator: RunningSimulator,
    tmp_path: Path,
    watermark: bool,
) -> None:
    # A flat, dark picture: anything bright in the corner can only be the watermark.
    colour = (40, 90, 150)
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(buffer, "PNG")
    body = submit_body(data_uri(buffer.getvalue()), seed=9, watermark=watermark)
    frame = _frame(_download(simulator, submit_task(simulator.url, body), tmp_path), 45)
    corner = frame.crop((400, 400, 640, 480)).convert("L")
    brightest = corner.getextrema()[1]
    assert (brightest > 150) is watermark
    assert frame.crop((0, 0, 320, 240)).convert("L").getextrema()[1] < 100
    # Decoded as the file's colour tags say, the picture keeps its colour.
    for got, wanted in zip(frame.getpixel((160, 120)), colour, strict=True):
        assert abs(got - wanted) <= 6
