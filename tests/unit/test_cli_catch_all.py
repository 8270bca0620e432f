"""The command line's last resort: an unexpected error is reported without ever showing the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio import cli
from studio.store import JobStore
from tests.plugins.engine import FAST_POLICY

SECRET_KEY = "sk-catch-all-secret-0123456789"


@pytest.fixture
def keyed_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the environment and a gateway address nothing listens on (nothing is sent)."""
    for name in ("WAN_STUDIO_DATABASE_URL", "WAN_STUDIO_TRUSTED_IMAGE_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIXAZO_API_KEY", SECRET_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WAN_STUDIO_HOME", str(tmp_path / "data"))


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_error_never_prints_the_key(
    keyed_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    verbose: bool,
):
    def broken_totals(*_args: object, **_kwargs: object) -> None:
        # A library error that quotes the header it was given, key and all.
        raise RuntimeError(f"bad header Ocp-Apim-Subscription-Key: {SECRET_KEY}")

    monkeypatch.setattr(JobStore, "totals", broken_totals)
    argv = ["--verbose", "totals"] if verbose else ["totals"]
    code = cli.main(argv, poll_policy=FAST_POLICY)
    out, err = capsys.readouterr()
    assert code == cli.EXIT_UNEXPECTED
    assert SECRET_KEY not in out
    assert SECRET_KEY not in err
    # The error is still reported, with what it was, so that it can be followed up.
    assert "something unexpected went wrong" in err
    assert "RuntimeError" in err
    assert "bad header" in err
    if verbose:
        assert "Traceback" in err
    else:
        assert "--verbose" in err
