"""A missing tool skips a test on a workstation and fails it under CI, however CI is spelled."""

from __future__ import annotations

import pytest

from tests.plugins.ci import running_in_ci, skip_unless_ci


@pytest.mark.parametrize("value", ["true", "1", "TRUE", " True "])
def test_under_ci_a_missing_tool_fails(monkeypatch: pytest.MonkeyPatch, value: str):
    monkeypatch.setenv("CI", value)
    assert running_in_ci()
    with pytest.raises(pytest.fail.Exception, match="needs openssl"):
        skip_unless_ci("needs openssl")


@pytest.mark.parametrize("value", [None, "", "0", "false"])
def test_elsewhere_a_missing_tool_skips(monkeypatch: pytest.MonkeyPatch, value: str | None):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not running_in_ci()
    with pytest.raises(pytest.skip.Exception, match="needs openssl"):
        skip_unless_ci("needs openssl")


def test_the_certificate_fixture_goes_through_the_ci_rule(monkeypatch: pytest.MonkeyPatch):
    # Without openssl on the PATH and CI set, the https tests fail instead of skipping.
    from tests.unit import test_linkfetch

    monkeypatch.setattr(test_linkfetch.shutil, "which", lambda _name: None)
    monkeypatch.setenv("CI", "1")
    make_files = test_linkfetch.tls_files.__wrapped__  # the fixture's own function
    # Caught as either outcome, so that a skip shows up here as a failure of this test.
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        make_files(None)
    assert outcome.type is pytest.fail.Exception
    assert "openssl" in str(outcome.value)


def test_ci_runs_the_test_command_that_readme_gives():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    readme = (repo / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.endswith("-m pytest")]
    assert len(commands) == 1, "README gives one test command"
    ci_lines = (repo / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_lines[-1] == commands[0]
