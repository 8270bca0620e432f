"""The command line for a team: jobs made for a person, one person's jobs, spend per person."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

import simulator
from studio import cli
from studio.export import CSV_COLUMNS
from studio.limits import SpendingLimit, person_scope
from studio.store import JobStore, sqlite_url
from tests.plugins.engine import ENGINE_KEY
from tests.unit.test_cli import frame, generate, home, run, run_json  # noqa: F401 - fixtures

ANA = "ana@example.com"
BO = "bo@example.com"


@pytest.fixture
def billed(
    home: Path,  # noqa: F811
    engine_gateway: simulator.RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """The data folder, with the key and the test's gateway in the environment."""
    monkeypatch.setenv("PIXAZO_API_KEY", ENGINE_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    return home


def test_a_job_made_for_a_person_is_theirs_and_under_their_own_limit(
    billed: Path,
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    request_log,
) -> None:
    # Ana's own cap, as an administrator sets it on Settings: one $0.135 clip a day.
    with JobStore.open(sqlite_url(billed / "studio.db")) as store:
        store.set_spending_limit(person_scope(ANA), SpendingLimit(daily_usd=Decimal("0.20")))

    code, out, err = run(capsys, *generate(frame, "--owner", " Ana@Example.COM "))
    assert code == cli.EXIT_OK, err
    assert f"Spending limit for {ANA}: $0.20 left today." in err
    anas_job = int(out)

    code, out, err = run(capsys, *generate(frame, "--owner", ANA))
    assert code == cli.EXIT_LIMIT
    assert out == ""
    assert "Nothing was sent or billed." in err
    # Bo has no cap of his own, and the terminal without --owner is nobody's.
    code, _, err = run(capsys, *generate(frame, "--owner", BO))
    assert code == cli.EXIT_OK, err
    code, _, err = run(capsys, *generate(frame))
    assert code == cli.EXIT_OK, err
    assert "Spending limit" not in err
    assert request_log.count("/generateImageToVideo") == 3

    anas = run_json(capsys, "jobs", "--json", "--owner", "ANA@example.com")
    assert [(job["id"], job["owner"]) for job in anas] == [(anas_job, ANA)]
    assert sorted(str(job["owner"]) for job in run_json(capsys, "jobs", "--json")) == [
        "None",
        ANA,
        BO,
    ]
    code, out, _ = run(capsys, "jobs", "--csv", "--owner", BO)
    header, *rows = csv.reader(io.StringIO(out))
    assert tuple(header) == CSV_COLUMNS
    assert [row[CSV_COLUMNS.index("made by (e-mail)")] for row in rows] == [BO]
    assert ENGINE_KEY not in out

    # Spend per person, as Settings shows administrators; the rows add up to the team's.
    people = run_json(capsys, "totals", "--by-person", "--json")
    assert sorted(
        (str(row["email"]), row["today"]["billed"]["jobs"], row["all_time"]["billed"]["pending"])
        for row in people
    ) == [("None", 1, 1), (ANA, 1, 1), (BO, 1, 1)]
    team = run_json(capsys, "totals", "--json")
    assert team["all_time"]["billed"]["pending"] == 3
    anas_totals = run_json(capsys, "totals", "--json", "--owner", ANA)
    assert anas_totals["all_time"]["billed"]["pending"] == 1
    code, out, _ = run(capsys, "totals", "--by-person")
    assert code == cli.EXIT_OK
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["PERSON", "TODAY"]
    assert {line.split()[0] for line in lines[1:]} == {ANA, BO, "(without"}


def test_a_batch_made_for_a_person_is_all_theirs(
    home: Path,  # noqa: F811
    frame: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, *generate(frame, "--variations", "2", "--owner", BO))
    assert code == cli.EXIT_OK, err
    made = sorted(int(line) for line in out.split())
    assert sorted(job["id"] for job in run_json(capsys, "jobs", "--json", "--owner", BO)) == made
    assert run_json(capsys, "jobs", "--json", "--owner", ANA) == []
    code, _, err = run(capsys, "jobs", "--owner", ANA)
    assert (code, err.strip()) == (cli.EXIT_OK, "No job matches.")


@pytest.mark.parametrize(
    ("owner", "said"),
    [
        ("ana", "'ana' is not an e-mail address like ana@example.com"),
        ("ana@", "'ana@' is not an e-mail address like ana@example.com"),
        ("ana @example.com", "'ana @example.com' has a space or a control character in it"),
        ("ana@example..com", "'ana@example..com' has an empty part in its domain"),
        ("  ", "the e-mail address is empty"),
    ],
)
@pytest.mark.parametrize(
    "command", [["jobs"], ["totals"], ["generate", "--image", "x.jpg", "--prompt", "p"]]
)
def test_a_malformed_owner_is_invalid_input_and_nothing_is_written(
    home: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    owner: str,
    said: str,
    command: list[str],
) -> None:
    code, out, err = run(capsys, *command, "--owner", owner)

    assert code == cli.EXIT_INVALID == 2
    assert out == ""
    assert f"error: argument --owner: {said}" in err
    assert "Give the person's e-mail address." in err
    assert not home.exists()  # nothing was opened, let alone written
