"""The command line's batches: --variations, several --prompt, several --model."""

from __future__ import annotations

from pathlib import Path

import pytest

import simulator
from studio import cli
from tests.plugins.engine import ENGINE_KEY, RequestLog
from tests.plugins.simulator import SUBMIT_PATH
from tests.unit.test_batch_service import NOT_SENT_WORDS, THIRD_SUBMIT_LIMITED
from tests.unit.test_cli import QUICK, frame, home, is_mp4, run, run_json  # noqa: F401 - fixtures

TURBO = ["--resolution", "480P", "--duration", "3"]


def generate(frame: Path, *extra: str) -> list[str]:  # noqa: F811
    return ["generate", "--image", str(frame), *extra]


def test_variations_show_the_price_before_sending_and_wait_for_every_clip(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(
        capsys, *generate(frame, "--prompt", "waves", *QUICK, "--variations", "3", "--wait")
    )

    assert code == 0, err
    price = "3 clips, 9 seconds of video: demo, not billed: would cost 3 × $0.135 = $0.405"
    assert price in err
    assert err.index(price) < err.index("Clip 1: job 1 sent")
    videos = [Path(line) for line in out.split()]
    assert len(videos) == 3
    assert all(is_mp4(video) for video in videos)
    assert "Done: 3 videos. Demo, not billed." in err
    jobs = run_json(capsys, "jobs", "--json")
    assert len({job["seed"] for job in jobs}) == 3
    assert {job["prompt"] for job in jobs} == {"waves"}


def test_one_clip_per_prompt_and_per_model(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts = ["--prompt", "waves", "--prompt", "a storm rolls in"]
    code, out, err = run(capsys, *generate(frame, *prompts, *QUICK))
    assert code == 0, err
    assert out.split() == ["1", "2"]
    assert "2 × $0.135 = $0.270" in err

    models = ["--model", "wan2.1-i2v-turbo", "--model", "wan2.2-i2v-flash"]
    code, out, err = run(capsys, *generate(frame, "--prompt", "waves", *models, *TURBO))
    assert code == 0, err
    assert out.split() == ["3", "4"]
    # Flash has no 3-second clips: it keeps its own default length and its own price.
    assert "$0.135 + $0.085 = $0.220" in err

    jobs = run_json(capsys, "jobs", "--json")
    assert [job["prompt"] for job in jobs[::-1]] == ["waves", "a storm rolls in", "waves", "waves"]
    assert [job["model"] for job in jobs[1::-1]] == ["wan2.1-i2v-turbo", "wan2.2-i2v-flash"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--prompt", "b", "--variations", "2"], "Vary one thing at a time"),
        (["--model", "wan2.2-i2v-flash", "--variations", "2"], "Vary one thing at a time"),
        (["--variations", "9"], "A batch makes 2 to 8 clips"),
        (["--model", "wan9-video"], "wan9-video"),
    ],
)
def test_a_batch_that_cannot_be_made_exits_2_and_sends_nothing(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code, out, err = run(capsys, *generate(frame, "--prompt", "a", *QUICK, *extra))

    assert code == 2
    assert message in err
    assert out == ""
    assert run_json(capsys, "jobs", "--json") == []


def test_a_batch_partly_refused_says_which_clips_did_not_go(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    engine_gateway: simulator.RunningSimulator,
    request_log: RequestLog,
) -> None:
    monkeypatch.setenv("PIXAZO_API_KEY", THIRD_SUBMIT_LIMITED)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)

    code, out, err = run(capsys, *generate(frame, "--prompt", "a", *QUICK, "--variations", "4"))

    assert code == 3
    assert "4 clips, 12 seconds of video: 4 × $0.135 = $0.540" in err
    assert out.split() == ["1", "2"]
    assert (
        "2 of 4 clips did not go: clip 3 (job 3, not accepted), clip 4 (job 4, not accepted)" in err
    )
    assert NOT_SENT_WORDS in err
    assert request_log.count(SUBMIT_PATH) == 3


def test_a_batch_over_the_spending_limit_exits_4_and_sends_nothing(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    engine_gateway: simulator.RunningSimulator,
    request_log: RequestLog,
) -> None:
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    monkeypatch.setenv("WAN_STUDIO_DAILY_LIMIT_USD", "0.50")

    code, out, err = run(capsys, *generate(frame, "--prompt", "a", *QUICK, "--variations", "4"))

    assert code == cli.EXIT_LIMIT
    assert out == ""
    assert "4 clips, 12 seconds of video: 4 × $0.135 = $0.540" in err
    assert "error: This costs $0.540, more than the $0.50 left today" in err
    assert "Nothing was sent or billed." in err
    assert request_log.count(SUBMIT_PATH) == 0
    assert run_json(capsys, "jobs", "--json") == []
