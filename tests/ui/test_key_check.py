"""A typed key is checked before billed mode, and Settings says truly how long it is kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from components.services import get_studio
from components.settings_view import SESSION_KEY_LIFETIME
from tests.ui.conftest import APP, texts

GOOD_KEY = "pz-good-key-0123456789-abcd"
WRONG_KEY = "pz-wrong-key-0123456789-zzzz"


@pytest.fixture
def gateway(gateway_taking):
    """A local gateway that takes only ``GOOD_KEY``."""
    return gateway_taking(GOOD_KEY)


def _type_key(at: AppTest, key: str) -> AppTest:
    at.switch_page("pages/settings.py").run()
    at.text_input(key="settings.key_input").input(key)
    at.button(key="settings.save_key").click().run()
    return at


def test_a_wrong_key_is_said_to_be_wrong_at_once_and_nothing_switches(
    gateway, studio_home: Path
) -> None:
    at = _type_key(AppTest.from_file(str(APP), default_timeout=30).run(), WRONG_KEY)
    assert [error.value for error in at.error] == [
        "Pixazo did not accept this key: check that you copied all of it, and that your "
        "subscription is active. Nothing was charged, and the app stays in demo mode."
    ]
    assert "Demo mode — nothing is billed." in texts(at)
    assert get_studio().held_key_fingerprints() == [get_studio().demo_fingerprint]
    # The check was a status request, never a submit: nothing was made.
    assert gateway.tasks() == []
    assert not at.exception


def test_a_good_key_switches_to_billed_and_a_reload_forgets_it_as_the_page_says(
    gateway, studio_home: Path
) -> None:
    at = _type_key(AppTest.from_file(str(APP), default_timeout=30).run(), GOOD_KEY)
    said = texts(at)
    assert not at.error
    assert "Billed." in said
    assert "Using key ••••••••abcd in this browser session." in said
    assert SESSION_KEY_LIFETIME in said
    assert "Reloading the page, closing the tab or restarting the app forgets it" in said

    # A reload is a new browser session on the same address: the key is gone, as promised.
    reloaded = AppTest.from_file(str(APP), default_timeout=30)
    reloaded.query_params["session"] = at.query_params["session"]
    reloaded.run()
    reloaded.switch_page("pages/settings.py").run()
    assert "Demo mode — nothing is billed." in texts(reloaded)
    assert reloaded.text_input(key="settings.key_input").value == ""
    assert not reloaded.exception


def test_a_gateway_that_cannot_be_reached_keeps_demo_mode(
    monkeypatch: pytest.MonkeyPatch, studio_home: Path
) -> None:
    monkeypatch.setenv("PIXAZO_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    at = _type_key(AppTest.from_file(str(APP), default_timeout=60).run(), GOOD_KEY)
    assert len(at.error) == 1
    assert at.error[0].value.startswith("The key could not be checked:")
    assert "The app stays in demo mode until it can be." in at.error[0].value
    assert "Demo mode — nothing is billed." in texts(at)
    assert not at.exception


def test_settings_keep_setting_names_to_the_administrators_section(
    gateway, studio_home: Path
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.switch_page("pages/settings.py").run()
    admin = at.main.get_by_key("settings-paths")
    admin_text = "\n".join(
        str(node.value) for node in admin if node.type in ("markdown", "caption")
    )
    assert "WAN_STUDIO_TRUSTED_IMAGE_HOSTS" in admin_text
    assert str(studio_home) in admin_text
    assert [expander.label for expander in at.expander] == ["For administrators"]
    rest = texts(at)
    for line in admin_text.splitlines():
        rest = rest.replace(line, "")
    assert not re.search(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", rest), rest
    assert str(studio_home) not in rest
    assert "Demo mode — nothing is billed." in rest
    assert not at.exception
