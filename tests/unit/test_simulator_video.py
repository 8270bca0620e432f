"""The videos the simulator makes, decoded with ffmpeg: codec, size, rate, length, frames."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest
import requests
from PIL import Image

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
