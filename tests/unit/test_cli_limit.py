"""The command line under a spending limit: the same check as the app, and exit code 4."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import simulator
from studio import cli
from tests.plugins.engine import ENGINE_KEY
from tests.unit.test_cli import frame, generate, home, run, run_json  # noqa: F401 - fixtures


def test_a_job_over_the_daily_limit_exits_4_says_why_and_sends_nothing(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request_log,
):
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    monkeypatch.setenv("WAN_STUDIO_DAILY_LIMIT_USD", "0.20")

    code, _, err = run(capsys, *generate(frame))  # $0.135 of $0.20
    assert code == cli.EXIT_OK, err
    assert "Spending limit: $0.20 left today." in err

    code, out, err = run(capsys, *generate(frame))
    assert code == cli.EXIT_LIMIT == 4
    assert out == ""
    assert "Spending limit: $0.065 left today." in err
    assert (
        "error: This costs $0.135, more than the $0.065 left today; the daily limit resets at "
        "midnight (in "
    ) in err
    assert re.search(r"\(in [^)]+\)\. Nothing was sent or billed\.", err), err
    assert request_log.count("/generateImageToVideo") == 1
    assert len(run_json(capsys, "jobs", "--json")) == 1


def test_the_help_names_exit_code_4(capsys: pytest.CaptureFixture[str]):
    assert cli.main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "4 a daily or monthly spending limit blocked it (nothing was sent)" in help_text


def test_a_limit_that_is_not_an_amount_is_invalid_input(
    home: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("WAN_STUDIO_MONTHLY_LIMIT_USD", "12,50")
    code, _, err = run(capsys, "jobs")
    assert code == cli.EXIT_INVALID
    assert "error: WAN_STUDIO_MONTHLY_LIMIT_USD must be an amount in US dollars" in err
    assert "'12,50' is not a number" in err
    assert not home.exists()  # stopped before anything was opened
