"""How fast the simulator renders a clip, beside the encoder alone (the floor).

For each tier, a 16:9 first frame is rendered to a 5 s, 30 fps clip exactly as the simulator does
(frames made in Python while ffmpeg encodes). The floor is the time to encode the same frames,
made beforehand, through the same encoder (the same ffmpeg command: flags, faststart, output).
Neither counts importing OpenCV and numpy (once per process, done before the first run).
Run: ``python bench/render.py [--repeat N] [--baseline CHECKOUT] [--timeline]``.
Targets on a 2-core machine: 1080P under 5 s of wall time, and render / floor at most 1.3.

``--baseline`` renders with another checkout's renderer too (its ``simulator/_render.py``), in
the same rounds, so that a change is measured side by side with the code before it. The runs of
a round go in a rotating order, and every run records how many cores other processes used
meanwhile ("others"): the medians are printed over all rounds and over the quiet runs alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

from PIL import Image, ImageChops, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simulator._render as current_renderer
from simulator._render import Encoder, Planes, plane_maker
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


@dataclass
class Run:
    """One timed run: wall and CPU seconds (this process and ffmpeg), and cores others used."""

    wall: float
    cpu: float
    others: float | None
    file_bytes: int = 0


def timed(work: Callable[[], Path]) -> Run:
    """Time ``work`` (which returns the file it wrote)."""
    busy_started, cpu_started = machine_busy_seconds(), cpu_seconds()
    started = time.perf_counter()
    out_path = work()
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    busy_ended = machine_busy_seconds()
    others = None
    if busy_started is not None and busy_ended is not None:
        others = max(0.0, busy_ended - busy_started - cpu) / wall
    return Run(wall, cpu, others, out_path.stat().st_size)


def load_renderer(checkout: Path) -> ModuleType:
    """Another checkout's ``simulator/_render.py`` as a module of its own (it imports nothing
    else of the simulator), to run the code before a change beside the code after it."""
    name = "baseline_render"
    spec = importlib.util.spec_from_file_location(name, checkout / "simulator" / "_render.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no simulator/_render.py in {checkout}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def render(renderer: ModuleType, image: Image.Image, size: tuple[int, int], out: Path) -> Path:
    """Render the bench's clip with ``renderer`` exactly as the simulator does."""
    renderer.render_video(
        first=image,
        size=size,
        duration=DURATION,
        fps=FPS,
        seed=SEED,
        watermark=True,
        out_path=out,
    )
    return out


def encode(frames: list[Planes], size: tuple[int, int], out: Path) -> Path:
    """The floor: encode ready-made frames with the renderer's own encoder."""
    encoder = Encoder(out, size, FPS)
    for frame in frames:
        encoder.write(frame)
    encoder.close()
    return out


class Timeline:
    """When a run's milestones happen, in ms from its start, read through the encoder it uses."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str, *, again: bool = False) -> None:
        if again or name not in self.marks:
            self.marks[name] = (time.perf_counter() - self.started) * 1000

    def encoder_class(self, base: type) -> type:
        timeline = self

        class TimedEncoder(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)
                timeline.mark("ffmpeg started")

            def write(self, planes: object) -> None:
                super().write(planes)
                timeline.mark("first frame written")
                timeline.mark("last frame written", again=True)

            def close(self) -> None:
                super().close()
                timeline.mark("ffmpeg exited")

        return TimedEncoder


def print_timeline(label: str, run: Callable[[Timeline], object]) -> None:
    """Run once with the encoder timed and print its milestones."""
    timeline = Timeline()
    run(timeline)
    milestones = ", ".join(f"{name} {ms:.0f}" for name, ms in timeline.marks.items())
    print(f"  timeline {label:9} (ms): {milestones}")


def timeline_render(
    renderer: ModuleType, image: Image.Image, size: tuple[int, int], out: Path
) -> Callable[[Timeline], object]:
    def run(timeline: Timeline) -> object:
        original = renderer.Encoder
        renderer.Encoder = timeline.encoder_class(original)
        try:
            return render(renderer, image, size, out)
        finally:
            renderer.Encoder = original

    return run


def timeline_floor(
    frames: list[Planes], size: tuple[int, int], out: Path
) -> Callable[[Timeline], object]:
    def run(timeline: Timeline) -> object:
        encoder = timeline.encoder_class(Encoder)(out, size, FPS)
        for frame in frames:
            encoder.write(frame)
        encoder.close()
        return out

    return run


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    """Print render time, floor and their ratio per tier."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per tier; medians count")
    parser.add_argument("--tiers", nargs="*", default=["480P", "720P", "1080P"])
    parser.add_argument(
        "--baseline", type=Path, help="a checkout whose renderer runs beside this one"
    )
    parser.add_argument("--timeline", action="store_true", help="print each tier's milestones once")
    options = parser.parse_args()
    rules = load_rules()
    image = test_image(SOURCE_SIZE)
    renderers = {"render": current_renderer}
    if options.baseline is not None:
        renderers["baseline"] = load_renderer(options.baseline)
    print(f"{os.cpu_count()} cores, {DURATION} s at {FPS} fps, load average {load_average()}")
    print(
        f"16:9 input {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]}, {options.repeat} rounds, medians;"
        f" quiet: runs with others <= {BUSY_MACHINE_CORES}"
    )
    print(
        f"{'tier':6} {'size':>10} {'kind':>8} {'wall s':>7} {'ratio':>6} {'paired':>7}"
        f" {'cpu s':>6} {'cpu ratio':>10} {'others':>7} {'quiet':>6} {'quiet ratio':>12}"
        f" {'file MB':>8}  target"
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
            works: dict[str, Callable[[], Path]] = {
                "floor": partial(encode, frames, size, out_dir / "floor.mp4"),
            }
            for kind, renderer in renderers.items():
                works[kind] = partial(render, renderer, image, size, out_dir / f"{kind}.mp4")
            kinds = list(works)
            rounds: list[dict[str, Run]] = []
            for round_index in range(options.repeat):
                # A rotating order, so that drift in the machine's load hits every kind alike.
                shift = round_index % len(kinds)
                order = kinds[shift:] + kinds[:shift]
                rounds.append({kind: timed(works[kind]) for kind in order})
            floor_wall = median([runs["floor"].wall for runs in rounds])
            for kind in kinds:
                print_kind(tier, size, kind, rounds, floor_wall)
            if options.timeline:
                print_timeline("floor", timeline_floor(frames, size, out_dir / "floor.mp4"))
                for kind, renderer in renderers.items():
                    print_timeline(
                        kind, timeline_render(renderer, image, size, out_dir / f"{kind}.mp4")
                    )
            del frames
    print("ratio: median wall over the floor's median; paired: median of each round's own ratio")
    print("others: cores used by other processes during a run (median); quiet: runs with others")
    print(f"<= {BUSY_MACHINE_CORES} of all, and the paired ratio of the rounds quiet throughout")
    print(f"load average at the end {load_average()}")


def print_kind(
    tier: str, size: tuple[int, int], kind: str, rounds: list[dict[str, Run]], floor_wall: float
) -> None:
    """One line of the table: a kind's medians, against the floor of the same rounds."""
    runs = [each[kind] for each in rounds]
    wall = median([run.wall for run in runs])
    paired = median([each[kind].wall / each["floor"].wall for each in rounds])
    cpu_ratio = median([each[kind].cpu / each["floor"].cpu for each in rounds])
    known = [run.others for run in runs if run.others is not None]
    others = f"{median(known):.2f}" if known else "n/a"
    quiet_rounds = [
        each
        for each in rounds
        if all(run.others is not None and run.others <= BUSY_MACHINE_CORES for run in each.values())
    ]
    quiet_runs = sum(1 for others in known if others <= BUSY_MACHINE_CORES)
    quiet_ratio = median([each[kind].wall / each["floor"].wall for each in quiet_rounds])
    verdict = ""
    if kind != "floor":
        verdict = "met" if paired <= TARGET_RATIO else "NOT met"
        if not quiet_rounds:
            # Time-sliced with other work, both walls stretch and the ratio means little.
            verdict += " (machine busy: not a verdict)"
        elif quiet_ratio <= TARGET_RATIO:
            verdict += ", met when quiet"
        else:
            verdict += ", NOT met when quiet"
    print(
        f"{tier:6} {size[0]:>4}x{size[1]:<5} {kind:>8} {wall:>7.2f} {wall / floor_wall:>6.2f}"
        f" {paired:>7.2f} {median([run.cpu for run in runs]):>6.2f} {cpu_ratio:>10.2f}"
        f" {others:>7} {quiet_runs:>3}/{len(runs):<2} {quiet_ratio:>12.2f}"
        f" {runs[-1].file_bytes / 1e6:>8.2f}  <={TARGET_RATIO:.1f} {verdict}"
    )


if __name__ == "__main__":
    main()
