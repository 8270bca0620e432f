"""Sign-in in AppTest: what a signed-out visitor, a person and an administrator each get.

The browser test (tests/e2e/test_sign_in.py) signs in through a real provider; these check the
pages' parts quickly with ``AppTest.user``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from components import state
from studio.export import CSV_COLUMNS
from studio.limits import SpendingLimit, person_scope
from studio.records import JobStatus
from studio.store import JobStore, sqlite_url
from tests.ui.conftest import APP

AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret",
    "client_id": "wan-studio",
    "client_secret": "wan-studio-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ANA = {"is_logged_in": True, "email": "Ana@Example.com", "name": "Ana Lima"}
ROOT = {"is_logged_in": True, "email": "root@example.com", "name": "Root Admin"}
DEPLOYMENT_KEY = "pz-deployment-key-0123456789abcdef"


def signed_in_app(user: dict[str, object] | None, *, page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets["auth"] = AUTH
    at.user = user if user is not None else {"is_logged_in": False}
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


@pytest.fixture
def team_home(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WAN_STUDIO_ADMINS", "root@example.com")
    return studio_home


def texts(at: AppTest) -> str:
    parts = [*at.markdown, *at.text, *at.caption, *at.info, *at.warning, *at.success]
    return "\n".join(str(part.value) for part in parts)


@pytest.mark.parametrize("script", ["app.py", "pages/history.py", "pages/settings.py"])
def test_signed_out_only_the_sign_in_page_is_drawn(team_home: Path, script: str) -> None:
    # A page's file run first (an address opened on a fresh server) runs the app around it.
    at = AppTest.from_file(str(APP.parent / script), default_timeout=30)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()

    assert at.button(key=state.SIGN_IN).label == "Sign in"
    assert [title.value for title in at.title] == ["Wan Studio"]
    assert not at.sidebar.children or not texts(at).count("Demo mode")
    assert not (team_home / "studio.db").exists()  # nothing was even opened
    assert not at.exception


def test_a_person_cannot_change_limits_and_never_sees_the_deployments_key(
    team_home: Path, monkeypatch: pytest.MonkeyPatch, start_simulator
) -> None:
    gateway = start_simulator(key=DEPLOYMENT_KEY)
    monkeypatch.setenv("PIXAZO_API_KEY", DEPLOYMENT_KEY)
    monkeypatch.setenv("PIXAZO_BASE_URL", gateway.url)

    at = signed_in_app(ANA, page="pages/settings.py")

    words = texts(at) + "\n".join(str(badge.proto.label) for badge in at.get("badge"))
    assert "Signed in as Ana Lima" in words
    assert "the team's key" in words
    assert DEPLOYMENT_KEY[-4:] not in words
    assert "Only an administrator can change the limits." in words
    assert state.SETTINGS_SAVE_LIMITS not in [button.key for button in at.button]
    assert "For administrators" not in words
    assert not at.exception


def test_an_administrator_sets_a_persons_own_limits(team_home: Path) -> None:
    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        from tests.unit.test_store import new_job_fields

        store.create_job(**new_job_fields(), owner="ana@example.com")

    at = signed_in_app(ROOT, page="pages/settings.py")
    assert "For administrators: people and their limits" in [
        header.value for header in at.subheader
    ]
    assert at.selectbox(key=state.SETTINGS_PERSON).value == "ana@example.com"
    at.number_input(
        key=state.person_limit_key(state.SETTINGS_PERSON_DAILY, "ana@example.com")
    ).set_value(2.5)
    at.button(key=state.SETTINGS_SAVE_PERSON_LIMITS).click().run()

    assert "Saved. Their own limits: \\$2.50 a day." in texts(at)
    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        assert store.spending_limit(person_scope("ana@example.com")) == SpendingLimit(
            daily_usd=Decimal("2.50")
        )
    assert at.button(key=state.SETTINGS_SAVE_LIMITS)  # the team's limits, too
    assert not at.exception


def deferred_downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], object]]:
    """From now on, what each download button made on click would hand the browser, by file id.

    AppTest draws a button with deferred data but never clicks it: the callable is kept here
    as the server keeps it, to call as a click would.
    """
    kept: dict[str, Callable[[], object]] = {}
    registering = MediaFileManager.add_deferred

    def keeping(self: MediaFileManager, data: Callable[[], object], *args, **kwargs) -> str:
        file_id = registering(self, data, *args, **kwargs)
        kept[file_id] = data
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", keeping)
    return kept


def exported_prompts(at: AppTest, downloads: dict[str, Callable[[], object]]) -> dict[str, str]:
    """The History export as the page offers it now: each row's prompt and who made it."""
    data = downloads[at.download_button(key=state.HIST_EXPORT).proto.deferred_file_id]()
    assert isinstance(data, bytes)
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8")))
    assert tuple(header) == CSV_COLUMNS
    return {
        row[CSV_COLUMNS.index("prompt")]: row[CSV_COLUMNS.index("made by (e-mail)")] for row in rows
    }


def test_a_persons_export_holds_what_history_shows_them_and_who_made_each_job(
    team_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.test_store import new_job_fields

    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        for prompt, owner in (("anas fox", "ana@example.com"), ("bos owl", "bo@example.com")):
            job, _ = store.create_job(**new_job_fields(prompt=prompt), owner=owner)
            store.update(job.id, status=JobStatus.FAILED)
    downloads = deferred_downloads(monkeypatch)

    at = signed_in_app(ANA, page="pages/history.py")
    assert exported_prompts(at, downloads) == {"anas fox": "ana@example.com"}

    at.toggle(key=state.HIST_EVERYONE).set_value(True).run()
    assert exported_prompts(at, downloads) == {
        "anas fox": "ana@example.com",
        "bos owl": "bo@example.com",
    }
    assert not at.exception


BO_USER = {"is_logged_in": True, "email": "bo@example.com", "name": "Bo Berg"}


def opened_from_address(user: dict[str, object], session_id: str) -> AppTest:
    """A signed-in browser opening a page address with ``?session=``, as a reload or a link."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.secrets["auth"] = AUTH
    at.user = user
    at.query_params["session"] = session_id
    return at.run()


def test_a_draft_comes_back_to_the_person_who_made_it_and_to_nobody_else(
    team_home: Path,
) -> None:
    ana = signed_in_app(ANA)
    ana.text_area(key=state.GEN_PROMPT).set_value("anas secret lantern").run()
    anas_session = ana.query_params["session"]

    # Bo is given Ana's address: a fresh form, on a session of his own.
    bo = opened_from_address(BO_USER, anas_session)
    assert bo.text_area(key=state.GEN_PROMPT).value == ""
    assert "anas secret lantern" not in texts(bo)
    bos_session = bo.query_params["session"]
    assert bos_session != anas_session
    bo.text_area(key=state.GEN_PROMPT).set_value("bos own owl").run()
    assert bo.query_params["session"] == bos_session

    # Ana's draft is still hers, and still there when she reloads.
    again = opened_from_address(ANA, anas_session)
    assert again.text_area(key=state.GEN_PROMPT).value == "anas secret lantern"
    assert again.query_params["session"] == anas_session
    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        kept = store.load_draft(anas_session)
        assert kept is not None
        assert kept.owner == "ana@example.com"
        assert "anas secret lantern" in kept.body
        assert store.load_draft(bos_session).owner == "bo@example.com"
    assert not bo.exception
    assert not again.exception


def test_an_address_whose_jobs_are_someone_elses_gives_a_fresh_session(team_home: Path) -> None:
    from tests.unit.test_store import new_job_fields

    anas_session = "0b5e1c2a-3d4f-4a6b-8c7d-9e0f1a2b3c4d"
    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        job, _ = store.create_job(
            **new_job_fields(prompt="anas private harbour", session_id=anas_session),
            owner="ana@example.com",
        )
        store.update(job.id, status=JobStatus.FAILED)

    bo = opened_from_address(BO_USER, anas_session)
    assert bo.query_params["session"] != anas_session
    assert "anas private harbour" not in texts(bo)
    ana = opened_from_address(ANA, anas_session)
    assert ana.query_params["session"] == anas_session
    assert "anas private harbour" in texts(ana)
    assert not bo.exception
    assert not ana.exception


def test_everyones_videos_say_who_made_each_and_the_totals_stay_the_persons_own(
    team_home: Path,
) -> None:
    from tests.unit.test_store import new_job_fields

    with JobStore.open(sqlite_url(team_home / "studio.db")) as store:
        store.create_job(**new_job_fields(), owner="bo@example.com")
        store.create_job(**new_job_fields())  # made before sign-in was turned on

    at = signed_in_app(ANA, page="pages/history.py")
    assert "**Your videos**" in [markdown.value for markdown in at.markdown]
    assert "You haven't made any videos yet." in texts(at)

    at.toggle(key=state.HIST_EVERYONE).set_value(True).run()
    table = at.dataframe(key=state.HIST_TABLE).value
    assert list(table["Made by"]) == ["Before sign-in", "bo@example.com"]
    assert "· bo@example.com" in texts(at)  # the phone's list says it too
    assert not at.exception
