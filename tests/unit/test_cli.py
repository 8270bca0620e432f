"""The command line: generate, jobs, show, totals and watch, in-process and as a real process."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image
from pytest_httpserver import HTTPServer

import simulator
from studio import cli, explain
from studio.export import CSV_COLUMNS
from studio.records import JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.engine import ENGINE_KEY, FAST_POLICY, SIMULATOR_SPEED
from tests.plugins.processes import OUTSIDE_SETTINGS, environment_without_outside_settings

REPO = Path(__file__).resolve().parents[2]
QUICK = ["--model", "wan2.1-i2v-turbo", "--resolution", "480P", "--duration", "3"]


def jpeg(width: int = 640, height: int = 480) -> bytes:
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    picture = Image.merge("RGB", (red, green, Image.new("L", (width, height), 90)))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder in demo mode with a fast embedded gateway."""
    for name in OUTSIDE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("WAN_STUDIO_HOME", str(data))
    monkeypatch.setenv("WAN_STUDIO_DEMO_SPEED", str(SIMULATOR_SPEED))
    return data


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    path = tmp_path / "frame.jpg"
    path.write_bytes(jpeg())
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run one command in this process; return its exit code, stdout and stderr."""
    code = cli.main(list(argv), poll_policy=FAST_POLICY)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


def generate(frame: Path, *extra: str) -> list[str]:
    return ["generate", "--image", str(frame), "--prompt", "a slow pan", *QUICK, *extra]


def is_mp4(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[4:8] == b"ftyp"


def test_generate_waits_and_prints_the_video_path_in_a_real_process(tmp_path: Path, frame: Path):
    environment = environment_without_outside_settings()
    environment.update(
        WAN_STUDIO_HOME=str(tmp_path / "process-data"),
        WAN_STUDIO_DEMO_SPEED=str(SIMULATOR_SPEED),
        PYTHONPATH=str(REPO),
    )
    finished = subprocess.run(
        [sys.executable, "-m", "studio", *generate(frame, "--no-prompt-extend", "--wait")],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "demo, not billed: would cost $0.135 · 3 s × $0.045/s" in finished.stderr
    assert "Demo, not billed: would have cost $0.135 · 3 s × $0.045/s." in finished.stderr
    video = Path(finished.stdout.strip().splitlines()[-1])
    assert video.is_relative_to(tmp_path / "process-data")
    assert is_mp4(video)


def test_a_demo_job_is_listed_shown_and_totalled_as_json(
    home: Path, frame: Path, capsys: pytest.CaptureFixture[str]
):
    code, out, err = run(capsys, *generate(frame, "--seed", "42", "--wait"))
    assert code == 0, err
    assert "Done" in err
    video = Path(out.strip())
    assert is_mp4(video)

    jobs = run_json(capsys, "jobs", "--json")
    assert isinstance(jobs, list)
    assert len(jobs) == 1
    listed = jobs[0]
    assert listed["status"] == "succeeded"
    assert listed["mode"] == "demo"
    assert listed["seed"] == 42
    assert listed["image_source"] == "frame.jpg"
    assert listed["video_file"] == str(video)
    assert listed["cost_usd"] == listed["estimate_usd"] == "0.135"
    assert listed["created_at"].endswith("+00:00")
    assert "key_fingerprint" not in listed

    assert run_json(capsys, "show", str(listed["id"]), "--json") == listed
    assert run_json(capsys, "jobs", "--json", "--status", "failed") == []
    assert run_json(capsys, "jobs", "--json", "--model", "wan2.2-i2v-plus") == []

    # The CSV is History's export: the page's status words, the demo cost in its own column.
    code, out, _ = run(capsys, "jobs", "--csv")
    assert code == 0
    header, row = csv.reader(io.StringIO(out))
    assert tuple(header) == CSV_COLUMNS
    exported = dict(zip(CSV_COLUMNS, row, strict=True))
    assert exported["status"] == "Done"
    assert exported["mode"] == "demo"
    assert (exported["billed cost USD"], exported["demo would-be cost USD"]) == ("", "0.135")
    code, out, _ = run(capsys, "jobs", "--csv", "--status", "failed")
    assert list(csv.reader(io.StringIO(out))) == [list(CSV_COLUMNS)]

    totals = run_json(capsys, "totals", "--json")
    assert isinstance(totals, dict)
    assert totals["all_time"]["demo"] == {
        "jobs": 1,
        "videos": 1,
        "seconds": 3,
        "cost_usd": "0.135",
        "pending": 0,
        "pending_usd": "0",
    }
    assert totals["all_time"]["billed"]["jobs"] == 0
    assert totals["today"]["demo"]["videos"] == 1
    assert set(totals["by_model"]) == {"wan2.1-i2v-turbo"}

    code, out, _ = run(capsys, "totals")
    assert code == 0
    assert "DEMO (not billed: what it would have cost)" in out
    assert "1 video, 3 s, $0.135" in out


def test_a_first_and_last_frame_job_takes_its_last_frame_from_the_flag(
    home: Path, frame: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    last = tmp_path / "end.jpg"
    last.write_bytes(jpeg(480, 640))
    argv = ["generate", "--image", str(frame), "--last-frame", str(last)]
    code, _, err = run(capsys, *argv, "--model", "wan2.1-kf2v-plus", "--prompt", "morph")
    assert code == 0, err

    (listed,) = run_json(capsys, "jobs", "--json")
    assert listed["model"] == "wan2.1-kf2v-plus"
    assert listed["last_frame_sha256"] not in (None, listed["image_sha256"])
    assert (home / "images").is_dir()
    stored = list((home / "images").rglob(f"{listed['last_frame_sha256']}.*"))
    assert [path.read_bytes() for path in stored] == [last.read_bytes()]


def test_the_text_views_show_the_job(home: Path, frame: Path, capsys: pytest.CaptureFixture[str]):
    code, _, err = run(capsys, *generate(frame, "--wait"))
    assert code == 0, err
    code, out, _ = run(capsys, "jobs")
    assert code == 0
    assert "wan2.1-i2v-turbo" in out
    assert "Done" in out
    code, out, _ = run(capsys, "show", "1")
    assert code == 0
    assert "Status:" in out
    assert "videos/1.mp4" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "soon"], "'soon' is not a whole number"),
        (["--resolution", "1080P"], "Wan 2.1 Turbo makes 480P or 720P videos"),
        (["--seed", "-1"], "The seed must be a whole number"),
        (["--model", "wan9-video"], "wan9-video"),
    ],
)
def test_invalid_options_exit_2_with_the_message_and_send_nothing(
    home: Path,
    frame: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
):
    code, out, err = run(capsys, *generate(frame), *argv)
    assert code == 2
    assert message in err
    assert out == ""
    assert run_json(capsys, "jobs", "--json") == []


def test_every_problem_is_reported_at_once(
    home: Path, frame: Path, capsys: pytest.CaptureFixture[str]
):
    code, _, err = run(
        capsys, *generate(frame), "--resolution", "1080P", "--duration", "7", "--seed", "-5"
    )
    assert code == 2
    for field in ("resolution:", "duration:", "seed:"):
        assert field in err


def test_a_missing_file_and_an_unknown_job_are_invalid_input(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    code, _, err = run(capsys, *generate(tmp_path / "missing.jpg"))
    assert code == 2
    assert f"cannot read {tmp_path / 'missing.jpg'}" in err
    code, _, err = run(capsys, "show", "99")
    assert code == 2
    assert "There is no job 99" in err


def test_image_fixes_are_applied_only_when_asked(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg(300, 200))
    code, out, err = run(capsys, *generate(small))
    assert code == 2
    assert "at least 360 px" in err
    assert "--fix-image" in err
    assert out == ""

    code, out, err = run(capsys, *generate(small, "--fix-image"))
    assert code == 0, err
    assert "fixed: Scaled up from 300×200" in err
    job = run_json(capsys, "show", out.strip(), "--json")
    assert isinstance(job, dict)
    assert job["image_source"] == "small.jpg"


def test_an_unusable_file_is_refused_even_with_fixes(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpeg()[:300])
    code, _, err = run(capsys, *generate(broken, "--fix-image"))
    assert code == 2
    assert "--image:" in err
    assert run_json(capsys, "jobs", "--json") == []


def test_links_are_fetched_only_from_trusted_private_hosts(
    home: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    httpserver.expect_request("/pictures/hills.jpg").respond_with_data(
        jpeg(), content_type="image/jpeg"
    )
    link = httpserver.url_for("/pictures/hills.jpg")
    argv = ["generate", "--image", link, "--prompt", "hills", *QUICK]

    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "--image:" in err
    assert run_json(capsys, "jobs", "--json") == []

    monkeypatch.setenv("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", f"{httpserver.host}:{httpserver.port}")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    job = run_json(capsys, "show", out.strip(), "--json")
    assert isinstance(job, dict)
    assert job["image_source"] == link


def test_a_failed_job_exits_3_with_the_explanation_and_never_shows_the_key(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    key = f"{ENGINE_KEY}+fail_task:code=DataInspectionFailed"
    monkeypatch.setenv("PIXAZO_API_KEY", key)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    code, out, err = run(capsys, *generate(frame, "--wait"))
    assert code == 3
    assert out == ""
    assert "Job 1: failed" in err
    assert "DataInspectionFailed" in err
    assert "content filter" in err
    assert "not billed" not in err.split("Job 1")[0]  # billed mode: the estimate is a price
    jobs = run_json(capsys, "jobs", "--json")
    assert isinstance(jobs, list)
    assert jobs[0]["mode"] == "billed"
    assert jobs[0]["cost_usd"] is None
    for text in (err, json.dumps(jobs)):
        assert ENGINE_KEY not in text


def test_a_refused_submit_exits_3(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("PIXAZO_API_KEY", "a-key-the-gateway-does-not-know")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    code, _, err = run(capsys, *generate(frame))
    assert code == 3
    assert "not accepted" in err
    assert "a-key-the-gateway-does-not-know" not in err


def test_watch_until_idle_finishes_jobs_left_in_flight(
    home: Path, frame: Path, capsys: pytest.CaptureFixture[str]
):
    sent = []
    for _ in range(2):
        code, out, err = run(capsys, *generate(frame))
        assert code == 0, err
        sent.append(int(out))
    code, _, err = run(capsys, "watch", "--until-idle")
    assert code == 0, err
    assert "Nothing left in flight" in err
    jobs = run_json(capsys, "jobs", "--json")
    assert isinstance(jobs, list)
    assert sorted(job["id"] for job in jobs) == sent
    for job in jobs:
        assert job["status"] == "succeeded"
        assert is_mp4(Path(job["video_file"]))

    code, _, err = run(capsys, "watch", "--until-idle")
    assert code == 0
    assert "Nothing in flight" in err


def test_settings_errors_are_invalid_input(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("WAN_STUDIO_DEMO_SPEED", "fast")
    code, _, err = run(capsys, "jobs")
    assert code == 2
    assert "WAN_STUDIO_DEMO_SPEED" in err


# ESC [ 31 m colours a terminal red, BEL rings it, U+202E shows what follows reversed, C1 CSI
# (U+009B) starts an escape sequence on some terminals, CR returns to the start of the line.
HOSTILE_PROMPT = "a \x1b[31mred\x1b[0m sea\x07 at \u202edusk\u202c, \x9b2J \rquiet"
_TERMINAL_CONTROLS = ("\x1b", "\x07", "\u202e", "\u202c", "\x9b", "\r")


def test_terminal_controls_in_prompts_are_shown_not_obeyed(
    home: Path, frame: Path, capsys: pytest.CaptureFixture[str]
):
    # New prompts with controls are refused, but a history written before that rule may hold them.
    code, out, err = run(capsys, *generate(frame))
    assert code == 0, err
    store = JobStore.open(sqlite_url(home / "studio.db"))
    try:
        store.update(
            int(out),
            prompt=HOSTILE_PROMPT,
            negative_prompt="\x1b]0;a new window title\x07",
        )
    finally:
        store.close()
    said: list[str] = []
    for argv in (["jobs"], ["show", "1"], ["jobs", "--json"], ["show", "1", "--json"]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        said += [out, err]
    for text in said:
        for control in _TERMINAL_CONTROLS:
            assert control not in text
    shown = run(capsys, "show", "1")[1]
    assert "\\u001b[31mred" in shown  # written out, so the reader sees it is there
    assert "\\u202edusk" in shown
    # JSON keeps the prompt exactly: each control is written as its own escape.
    job = run_json(capsys, "show", "1", "--json")
    assert isinstance(job, dict)
    assert job["prompt"] == HOSTILE_PROMPT
    assert job["negative_prompt"] == "\x1b]0;a new window title\x07"


def test_gateway_messages_are_shown_without_their_terminal_controls(
    home: Path, frame: Path, capsys: pytest.CaptureFixture[str]
):
    code, out, err = run(capsys, *generate(frame))
    assert code == 0, err
    store = JobStore.open(sqlite_url(home / "studio.db"))
    try:
        store.update(
            int(out),
            status=JobStatus.FAILED,
            error_code="Bad\x1b[2JCode",
            error_message="the screen is cleared\x1b[2J\x07",
        )
    finally:
        store.close()
    code, shown, err = run(capsys, "show", out.strip())
    assert code == 0, err
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert "Bad\\u001b[2JCode the screen is cleared\\u001b[2J\\u0007" in shown


def _uncertain_job(frame: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Send a job whose submit answer the gateway loses; return its id and what the CLI said."""
    code, out, err = run(capsys, *generate(frame))
    assert code == 3, err
    assert out == ""
    jobs = run_json(capsys, "jobs", "--json")
    assert isinstance(jobs, list)
    assert jobs[0]["status"] == "uncertain"
    return jobs[0]["id"], err


def _status(capsys: pytest.CaptureFixture[str], job_id: int) -> str:
    job = run_json(capsys, "show", str(job_id), "--json")
    assert isinstance(job, dict)
    return job["status"]


def test_an_uncertain_job_is_sent_again_from_the_command_line(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    # Only the first submit's answer is lost.
    monkeypatch.setenv("PIXAZO_API_KEY", f"{ENGINE_KEY}+lost_submit:count=1")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    job_id, said = _uncertain_job(frame, capsys)
    # The hint names commands that exist, and they settle the job.
    assert f"python -m studio resend {job_id}" in said
    assert f"python -m studio dismiss {job_id}" in said

    code, out, err = run(capsys, "resend", str(job_id), "--wait")
    assert code == 0, err
    assert f"sent again as job {job_id + 1}" in err
    assert is_mp4(Path(out.strip()))
    assert _status(capsys, job_id) == "canceled"
    assert _status(capsys, job_id + 1) == "succeeded"
    # Sending it again twice would bill twice: the second time is refused.
    code, _, err = run(capsys, "resend", str(job_id))
    assert code == 2
    assert "only a job whose sending is uncertain can be sent again" in err
    assert f"Sent again as job {job_id + 1}" in err
    assert len(run_json(capsys, "jobs", "--json")) == 2  # type: ignore[arg-type]


def test_resend_needs_the_key_the_job_was_made_with(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("PIXAZO_API_KEY", f"{ENGINE_KEY}+lost_submit")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    job_id, _ = _uncertain_job(frame, capsys)
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)  # another key than the job's
    code, out, err = run(capsys, "resend", str(job_id))
    assert code == 2
    assert out == ""
    assert "API key this process does not hold" in err
    assert "PIXAZO_API_KEY" in err
    assert ENGINE_KEY not in err
    assert _status(capsys, job_id) == "uncertain"
    assert len(run_json(capsys, "jobs", "--json")) == 1  # type: ignore[arg-type]


def test_an_uncertain_job_is_dismissed_from_the_command_line(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("PIXAZO_API_KEY", f"{ENGINE_KEY}+lost_submit")
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    job_id, _ = _uncertain_job(frame, capsys)
    code, _, err = run(capsys, "dismiss", str(job_id))
    assert code == 0, err
    assert "Dismissed without sending it again" in err
    assert _status(capsys, job_id) == "canceled"
    code, _, err = run(capsys, "dismiss", str(job_id))
    assert code == 2
    assert "only a job whose sending is uncertain can be dismissed" in err
    assert run(capsys, "dismiss", "99")[0] == 2


def test_a_job_that_took_too_long_is_checked_again_from_the_command_line(
    home: Path,
    frame: Path,
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    code, out, err = run(capsys, *generate(frame))
    assert code == 0, err
    job_id = int(out)
    # Nothing watched it: it ran past its deadline, as a watcher would have recorded.
    store = JobStore.open(sqlite_url(home / "studio.db"))
    try:
        timed_out = store.transition(
            job_id,
            expected=(JobStatus.QUEUED, JobStatus.RUNNING),
            status=JobStatus.TIMED_OUT,
            explanation=explain.explain_timed_out(30),
            finished_at=datetime.now(UTC),
        )
    finally:
        store.close()
    assert timed_out is not None
    code, shown, _ = run(capsys, "show", str(job_id))
    assert f"python -m studio check {job_id}" in shown

    code, out, err = run(capsys, "check", str(job_id), "--wait")
    assert code == 0, err
    assert is_mp4(Path(out.strip()))
    assert _status(capsys, job_id) == "succeeded"
    code, _, err = run(capsys, "check", str(job_id))
    assert code == 2
    assert "can be checked again" in err
