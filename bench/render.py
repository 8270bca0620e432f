"""How fast the simulator renders a clip, beside the encoder alone (the floor).

For each tier, a 16:9 first frame is rendered to a 5 s, 30 fps clip exactly as the simulator does
(frames made in Python while ffmpeg encodes). The floor is the time to encode the same number of
ready-made frames with the same encoder settings. Run: ``python bench/render.py [--repeat N]``.
Targets on a 2-core machine: 1080P under 5 s of wall time, and render / floor at most 1.3.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator._render import Encoder, Planes, plane_maker, render_video
from simulator._rules import load_rules, output_size

SOURCE_SIZE = (2000, 1125)  # 16:9, within the gateway's 2000 px limit
DURATION = 5
FPS = 30
SEED = 20250727
TARGET_RATIO = 1.3  # render wall time over the floor's
BUSY_MACHINE_CORES = 0.3  # "others" above this: the walls say more about the load than the render


def test_image(size: tuple[int, int]) -> Image.Image:
    """A detailed, photo-like 16:9 picture, so the encoder works as hard as on a real image."""
    width, height = size
    fractal = Image.effect_mandelbrot(size, (-2.2, -1.0, 1.0, 0.8), 120)
    grain = Image.effect_noise(size, 40).filter(ImageFilter.GaussianBlur(1))
    gradient = Image.linear_gradient("L").resize(size)
    red = ImageChops.add(fractal, gradient, scale=2.0)
    green = ImageChops.add(fractal.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grain, scale=2.0)
    blue = ImageChops.add(gradient.rotate(90, expand=False), grain, scale=2.0)
    return Image.merge("RGB", (red, green, blue)).resize((width, height))


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (Linux), to record beside the figures."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the ffmpeg encoders)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds used by every process on the machine so far (Linux), to spot other load."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def time_render(
    image: Image.Image, size: tuple[int, int], out_dir: Path
) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and file size of one render."""
    out_path = out_dir / f"render-{size[0]}x{size[1]}.mp4"
    started, cpu_started = time.perf_counter(), cpu_seconds()
    render_video(
        first=image,
        size=size,
        duration=DURATION,
        fps=FPS,
        seed=SEED,
        watermark=True,
        out_path=out_path,
    )
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    return wall, cpu, out_path.stat().st_size


def time_floor(frames: list[Planes], size: tuple[int, int], out_dir: Path) -> tuple[float, float]:
    """Wall and CPU seconds to encode ready-made frames."""
    out_path = out_dir / f"floor-{size[0]}x{size[1]}.mp4"
    started, cpu_started = time.perf_counter(), cpu_seconds()
    encoder = Encoder(out_path, size, FPS)
    for frame in frames:
        encoder.write(frame)
    encoder.close()
    return time.perf_counter() - started, cpu_seconds() - cpu_started


def main() -> None:
    """Print render time, floor and their ratio per tier."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per tier; the median counts")
    parser.add_argument("--tiers", nargs="*", default=["480P", "720P", "1080P"])
    options = parser.parse_args()
    rules = load_rules()
    image = test_image(SOURCE_SIZE)
    print(f"{os.cpu_count()} cores, {DURATION} s at {FPS} fps, load average {load_average()}")
    print(f"16:9 input {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]}, median of {options.repeat} runs")
    print(
        f"{'tier':6} {'size':>10} {'render s':>9} {'floor s':>8} {'ratio':>6}"
        f" {'render cpu':>11} {'floor cpu':>10} {'cpu ratio':>10} {'file MB':>8}"
        f" {'others':>7} {'target':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-render-") as folder:
        out_dir = Path(folder)
        for tier in options.tiers:
            size = output_size(*image.size, rules.tier_pixels[tier])
            make = plane_maker(
                first=image,
                last=None,
                size=size,
                frame_count=DURATION * FPS,
                seed=SEED,
                watermark=True,
            )
            frames = [make(index) for index in range(DURATION * FPS)]
            renders, floors = [], []
            file_bytes = 0
            busy_started, cpu_started, wall_started = (
                machine_busy_seconds(),
                cpu_seconds(),
                time.perf_counter(),
            )
            # Alternate the two so that drift in machine load hits both alike.
            for _ in range(options.repeat):
                wall, cpu, file_bytes = time_render(image, size, out_dir)
                renders.append((wall, cpu))
                floors.append(time_floor(frames, size, out_dir))
            render_s, render_cpu = (statistics.median(r[i] for r in renders) for i in (0, 1))
            floor_s, floor_cpu = (statistics.median(f[i] for f in floors) for i in (0, 1))
            # Cores that other processes kept busy meanwhile: near 0 for figures worth keeping.
            busy_ended = machine_busy_seconds()
            others = "n/a"
            verdict = "met" if render_s / floor_s <= TARGET_RATIO else "NOT met"
            if busy_started is not None and busy_ended is not None:
                foreign = busy_ended - busy_started - (cpu_seconds() - cpu_started)
                other_cores = max(0.0, foreign) / (time.perf_counter() - wall_started)
                others = f"{other_cores:.2f}"
                if other_cores > BUSY_MACHINE_CORES:
                    # Time-sliced with other work, both walls stretch and the ratio means little.
                    verdict += " (machine busy: not a verdict)"
            print(
                f"{tier:6} {size[0]:>4}x{size[1]:<5} {render_s:>9.2f} {floor_s:>8.2f}"
                f" {render_s / floor_s:>6.2f} {render_cpu:>11.2f} {floor_cpu:>10.2f}"
                f" {render_cpu / floor_cpu:>10.2f} {file_bytes / 1e6:>8.2f} {others:>7}"
                f" {'<=' + format(TARGET_RATIO, '.1f'):>7}"
                f" {verdict}"
            )
            del frames
    print("others: cores used by other processes during the tier's runs")
    print(f"load average at the end {load_average()}")


if __name__ == "__main__":
    main()
