"""Models & prices (the table and the calculator) and Settings (the key, never shown whole)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from components.services import get_studio
from studio.records import BILLED, JobFilter, JobStatus
from studio.store import JobStore, sqlite_url
from tests.plugins.engine import ENGINE_KEY
from tests.ui.conftest import APP, JobMaker, texts

SESSION_KEY = "pz-session-key-0123456789-abcd"
ENVIRONMENT_KEY = "pz-environment-key-9876543210-wxyz"


@pytest.fixture
def key_gateway(gateway_taking):
    """A local gateway that takes only ``SESSION_KEY``: typed keys are checked against it."""
    return gateway_taking(SESSION_KEY)


def _shown_anywhere(at: AppTest, secret: str) -> bool:
    """Whether a string appears in any element the page sent to the browser."""
    protos = (getattr(node, "proto", None) for block in (at.main, at.sidebar) for node in block)
    return any(secret in str(proto) for proto in protos if proto is not None)


def _model_card(app: AppTest, model_id: str) -> str:
    card = app.main.get_by_key(f"prices-model-{model_id}")
    return "\n".join(str(node.value) for node in card if node.type in ("markdown", "caption"))


def test_each_model_card_shows_its_prices_and_the_listed_price_where_it_differs(
    app: AppTest,
) -> None:
    app.switch_page("pages/models.py").run()
    flash = _model_card(app, "wan2.2-i2v-flash")
    assert "720P: $0.045/s · $0.225 for 5\u00a0s (Pixazo's list says $0.200)" in flash
    assert "480P: $0.017/s · $0.085 for 5\u00a0s" in flash
    plus = _model_card(app, "wan2.2-i2v-plus")
    assert "1080P: $0.150/s · $0.750 for 5\u00a0s" in plus
    assert "Pixazo's list" not in plus  # the same price: nothing to add
    assert "Wan 2.2 Plus (recommended)" in plus
    assert not app.exception


def test_model_cards_never_show_model_ids(app: AppTest) -> None:
    app.switch_page("pages/models.py").run()
    said = texts(app)
    for model_id in app.session_state["gen.model"], "wan2.1-i2v-turbo", "wan2.1-kf2v-plus":
        assert model_id not in said
    assert not app.exception


def test_lengths_never_wrap_inside_a_unit(app: AppTest) -> None:
    app.switch_page("pages/models.py").run()
    turbo = _model_card(app, "wan2.1-i2v-turbo")
    assert "Lengths: 3–5\u00a0s" in turbo  # Turbo: 3, 4 or 5 seconds
    assert not re.search(r"\d s\b", turbo)  # every unit sticks to its number
    assert not app.exception


def test_a_higher_resolution_that_costs_less_is_explained(app: AppTest) -> None:
    app.switch_page("pages/models.py").run()
    note = (
        "Wan 2.1 Turbo costs less per second at 720P ($0.040/s) than at 480P ($0.045/s): "
        "that is Pixazo's price, not a mistake."
    )
    assert note in texts(app)
    # Only where it happens: no other model has such a note.
    assert texts(app).count("not a mistake") == 1
    # The calculator says it too, for Turbo only.
    app.selectbox(key="prices.model").set_value("wan2.1-i2v-turbo").run()
    assert texts(app).count(note) == 2
    assert not app.exception


def test_the_calculator_follows_model_resolution_and_length(app: AppTest) -> None:
    app.switch_page("pages/models.py").run()
    assert app.metric[0].value == "$0.750"
    app.selectbox(key="prices.model").set_value("wan2.1-i2v-turbo").run()
    app.selectbox(key="prices.resolution.wan2.1-i2v-turbo").set_value("480P").run()
    app.selectbox(key="prices.duration.wan2.1-i2v-turbo").set_value(3).run()
    assert app.metric[0].value == "$0.135"
    assert "$0.135 · 3 s × $0.045/s at 480P with Wan 2.1 Turbo." in texts(app)
    assert not app.exception


def test_a_session_key_is_only_ever_shown_masked(key_gateway, app: AppTest) -> None:
    app.switch_page("pages/settings.py").run()
    assert "Demo mode — nothing is billed." in texts(app)
    app.text_input(key="settings.key_input").input(SESSION_KEY)
    app.button(key="settings.save_key").click().run()
    said = texts(app)
    assert "Using key ••••••••abcd in this browser session." in said
    assert "Billed." in said
    assert _shown_anywhere(app, "••••••••abcd")
    assert not _shown_anywhere(app, SESSION_KEY)
    assert not _shown_anywhere(app, SESSION_KEY[:-4])

    # New jobs from this session are now billed, and the Generate page says so.
    app.switch_page("pages/generate.py").run()
    assert "Price: **$0.750 · 5 s × $0.150/s**" in texts(app)
    assert "not billed" not in texts(app)

    app.switch_page("pages/settings.py").run()
    app.button(key="settings.forget_key").click().run()
    assert "Demo mode — nothing is billed." in texts(app)
    assert not app.exception


def test_gateway_addresses_are_shown_as_code_not_links(app: AppTest) -> None:
    app.switch_page("pages/settings.py").run()
    paths = app.main.get_by_key("settings-paths")
    said = "\n".join(node.value for node in paths if node.type == "markdown")
    assert "with a key: `https://gateway.pixazo.ai`" in said
    assert re.search(r"\(`http://127\.0\.0\.1:\d+`\)", said)
    assert not app.exception


def test_a_key_from_the_environment_is_masked_everywhere(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXAZO_API_KEY", ENVIRONMENT_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", "http://127.0.0.1:9")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    sidebar = "\n".join(element.value for element in at.sidebar.markdown)
    assert "Billed — key ••••••••wxyz" in sidebar
    assert "Key from the environment." in texts(at)
    at.switch_page("pages/settings.py").run()
    said = texts(at)
    assert "set in the environment (`PIXAZO_API_KEY`)" in said
    assert _shown_anywhere(at, "••••••••wxyz")
    assert not _shown_anywhere(at, ENVIRONMENT_KEY)
    assert not at.exception


def test_settings_show_where_things_are_with_the_database_password_hidden(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAN_STUDIO_TRUSTED_IMAGE_HOSTS", "images.internal:8080")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    at.switch_page("pages/settings.py").run()
    said = texts(at)
    assert str(studio_home) in said
    assert "images.internal:8080" in said
    assert "built-in demo gateway on this computer (`http://127.0.0.1:" in said
    assert not at.exception


def test_a_database_url_password_is_masked() -> None:
    from components.settings_view import masked_database_url

    shown = masked_database_url("postgresql+psycopg://studio:s3cret@db.internal:5432/wan")
    assert "s3cret" not in shown
    assert shown == "postgresql+psycopg://studio:***@db.internal:5432/wan"


@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u00a0"])
def test_a_key_with_an_invisible_character_is_refused_where_it_is_entered(
    key_gateway, app: AppTest, invisible: str
) -> None:
    app.switch_page("pages/settings.py").run()
    app.text_input(key="settings.key_input").input(SESSION_KEY[:10] + invisible + SESSION_KEY[10:])
    app.button(key="settings.save_key").click().run()
    assert [error.value for error in app.error] == [
        "That key contains a character that can't be part of a key (an invisible space?). "
        "Paste it again."
    ]
    assert "Demo mode — nothing is billed." in texts(app)
    assert get_studio().held_key_fingerprints() == [get_studio().demo_fingerprint]
    assert not _shown_anywhere(app, SESSION_KEY[:10])

    # Pasted again with only a stray space and line break around it, it is taken.
    app.text_input(key="settings.key_input").input(f"  {SESSION_KEY}\n")
    app.button(key="settings.save_key").click().run()
    assert not app.error
    assert "Using key ••••••••abcd in this browser session." in texts(app)
    assert not app.exception


def test_a_forgotten_key_cannot_be_spent_from_a_shared_session_link(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch, engine_gateway
) -> None:
    monkeypatch.setenv("PIXAZO_BASE_URL", engine_gateway.url)
    first = AppTest.from_file(str(APP), default_timeout=30).run()
    session_id = first.query_params["session"]
    first.switch_page("pages/settings.py").run()
    first.text_input(key="settings.key_input").input(ENGINE_KEY)
    first.button(key="settings.save_key").click().run()
    studio = get_studio()
    fingerprint = studio.settings.fingerprint(ENGINE_KEY)
    assert fingerprint in studio.held_key_fingerprints()

    store = JobStore.open(sqlite_url(studio_home / "studio.db"))
    try:
        lost = JobMaker(store=store, home=studio_home).make(
            mode=BILLED,
            status=JobStatus.UNCERTAIN,
            session_id=session_id,
            key_fingerprint=fingerprint,
            prompt="answer lost",
        )
        # A second browser opens the first one's link: it sees the job, but holds no key.
        second = AppTest.from_file(str(APP), default_timeout=30)
        second.query_params["session"] = session_id
        second.run()
        second.button(key=f"job.{lost.id}.resend").click().run()
        assert any("not entered in this browser session" in toast.value for toast in second.toast)
        assert store.get(lost.id).status is JobStatus.UNCERTAIN

        # The first browser forgets the key: the process lets go of it too.
        first.button(key="settings.forget_key").click().run()
        assert "Demo mode — nothing is billed." in texts(first)
        assert fingerprint not in studio.held_key_fingerprints()
        for browser in (second, first):
            browser.switch_page("pages/generate.py").run()
            browser.button(key=f"job.{lost.id}.resend").click().run()
            assert store.get(lost.id).status is JobStatus.UNCERTAIN
        assert store.count_jobs(JobFilter(session_id=session_id)) == 1
        assert engine_gateway.tasks() == []
        assert not first.exception
        assert not second.exception
    finally:
        store.close()


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("WAN_STUDIO_REQUEST_BUDGET", "nan", "from 0.1 to 20 (requests per second)"),
        ("WAN_STUDIO_JOB_DEADLINE_MINUTES", "inf", "from 1 to 1440 (minutes)"),
        ("WAN_STUDIO_DEMO_SPEED", "1e-300", "from 0.1 to 100 (times the normal demo speed)"),
    ],
)
def test_an_absurd_setting_is_named_on_the_page(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert [error.value for error in at.error] == [
        f"Wan Studio could not start. {name} must be a number {accepted}, not {value!r}."
    ]
    assert not at.exception


def test_a_configured_key_with_an_invisible_character_is_named_on_the_page(
    studio_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIXAZO_API_KEY", ENVIRONMENT_KEY + "\u200b")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    said = texts(at)
    assert "PIXAZO_API_KEY contains a character that can't be part of a key" in said
    assert not _shown_anywhere(at, ENVIRONMENT_KEY[:-4])
    assert not at.exception


def test_an_empty_history_database_is_refused_on_the_page(studio_home: Path) -> None:
    studio_home.mkdir(parents=True)
    (studio_home / "studio.db").touch()
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    said = [error.value for error in at.error]
    assert len(said) == 1
    assert said[0].startswith(
        f"Wan Studio could not start. The history database at {studio_home / 'studio.db'} "
        "is empty (0 bytes), so Wan Studio won't start over it"
    )
    assert (studio_home / "studio.db").stat().st_size == 0
    assert not at.exception
