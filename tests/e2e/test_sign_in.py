"""Sign-in with a real OpenID Connect provider, in Chromium against ``streamlit run``.

One app server and one provider for the module: Ana makes a video and sees only hers, Bo does not
see it until he asks for everyone's, the administrator sees everyone's spend, and signed out
nothing but the sign-in page is reachable, the videos' addresses included.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from oidc_provider_mock import User, run_server_in_thread
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.test_browser import choose, pick, wait_until_idle, widget
from tests.plugins.browser import APP, StreamlitServer, app_environment, app_workdir, free_port

pytestmark = pytest.mark.browser

ANA = "ana@example.com"
BO = "bo@example.com"
ROOT = "root@example.com"
PEOPLE = {
    "ana": {"email": ANA, "email_verified": True, "name": "Ana Lima"},
    "bo": {"email": BO, "email_verified": True, "name": "Bo Berg"},
    "root": {"email": ROOT, "email_verified": True, "name": "Root Admin"},
}
WAIT_MS = 30_000
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class SignInApp:
    url: str
    provider_url: str
    server: StreamlitServer
    video_url: str | None = None  # a video Ana saw while signed in


@pytest.fixture(autouse=True)
def patient_expectations() -> None:
    expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def signin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInApp]:
    """The app in demo mode with sign-in through a local provider; root is its administrator."""
    root = tmp_path_factory.mktemp("signin")
    users = [User(sub=sub, claims=claims) for sub, claims in PEOPLE.items()]
    with run_server_in_thread(user_claims=users) as provider:
        provider_url = f"http://localhost:{provider.server_port}"
        port = free_port()
        workdir = app_workdir(root)
        (workdir / ".streamlit" / "secrets.toml").write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(16)}"\n'
            'client_id = "wan-studio"\n'
            'client_secret = "wan-studio-secret"\n'
            f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"\n'
        )
        env = app_environment(home=root / "studio-home") | {"WAN_STUDIO_ADMINS": ROOT}
        server = StreamlitServer(
            script=APP, workdir=workdir, env=env, log_path=root / "streamlit.log", port=port
        )
        try:
            server.wait_healthy()
            yield SignInApp(url=server.url, provider_url=provider_url, server=server)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("picture") / "hills.png"
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(path)
    return path


def new_context(browser: Browser, viewport: dict[str, int] = LAPTOP) -> BrowserContext:
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(WAIT_MS)
    return context


def sign_in(page: Page, app: SignInApp, who: str) -> None:
    """Through the sign-in page and the provider's form, back to the app signed in."""
    page.goto(app.url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{app.provider_url}/**")
    page.get_by_role("button", name=who, exact=True).click()
    expect(page.locator(".st-key-sidebar-person")).to_contain_text(PEOPLE[who]["name"])


def open_history(page: Page, app: SignInApp) -> None:
    page.goto(f"{app.url}/history")
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()


def status_of(page: Page, url: str) -> int:
    """What the server answers this page's browser (its cookies) for ``url``."""
    return page.request.get(url, fail_on_status_code=False).status


def test_signed_out_only_the_sign_in_page_is_reachable(
    browser: Browser, signin_app: SignInApp, screenshot_dir: Path
) -> None:
    context = new_context(browser)
    page = context.new_page()
    try:
        for address in ("/history", "/settings", "/compare", ""):
            page.goto(f"{signin_app.url}{address}")
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
            expect(page.get_by_text("Sign in to make videos")).to_be_visible()
            for heading in ("Generate a video", "History", "Settings", "Compare clips"):
                expect(page.get_by_role("heading", name=heading, exact=True)).to_have_count(0)
            expect(page.locator('[data-testid="stSidebarNav"]')).to_have_count(0)
            expect(page.get_by_text("Page not found")).to_have_count(0)
        for viewport, name in ((LAPTOP, "1440"), (PHONE, "390")):
            page.set_viewport_size(viewport)
            page.screenshot(path=screenshot_dir / f"sign-in-{name}.png")
            results = Axe().run(page, options={"runOnly": ["wcag2a", "wcag2aa"]}).response
            serious = [
                violation["id"]
                for violation in results["violations"]
                if violation["impact"] in {"serious", "critical"}
            ]
            assert serious == [], name
    finally:
        context.close()


def test_each_person_sees_their_own_videos_and_everyones_on_request(
    browser: Browser, signin_app: SignInApp, picture: Path, screenshot_dir: Path
) -> None:
    ana = new_context(browser)
    page = ana.new_page()
    try:
        sign_in(page, signin_app, "ana")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(picture)
        expect(page.get_by_text("Ready to send.")).to_be_visible()
        # The quickest clip: Wan 2.1 Turbo, 480P, 3 s.
        pick(page, "gen.model", "Wan 2.1 Turbo")
        expect(widget(page, "gen.duration").get_by_role("radio", name="3 s")).to_be_visible()
        wait_until_idle(page)
        choose(page, "gen.resolution", "480P")
        choose(page, "gen.duration", "3 s")
        page.locator(".st-key-gen-submit").get_by_role("button").first.click()
        video = page.locator('[data-testid="stVideo"]').first
        expect(video).to_be_attached(timeout=90_000)
        signin_app.video_url = video.evaluate("element => element.currentSrc || element.src")
        assert "/media/" in signin_app.video_url
        assert status_of(page, signin_app.video_url) == 200
        open_history(page, signin_app)
        expect(page.locator(".st-key-history-team-total")).to_contain_text("Team total")
        expect(page.locator('[data-testid="stDataFrame"] td').first).to_be_attached()
        page.screenshot(path=screenshot_dir / "history-ana-mine-1440.png")
    finally:
        ana.close()

    bo = new_context(browser)
    page = bo.new_page()
    try:
        sign_in(page, signin_app, "bo")
        open_history(page, signin_app)
        expect(page.get_by_text("You haven't made any videos yet.")).to_be_visible()
        for viewport, name in ((LAPTOP, "1440"), (PHONE, "390")):
            page.set_viewport_size(viewport)
            page.screenshot(path=screenshot_dir / f"history-bo-mine-{name}.png")
        page.locator(".st-key-history-whose").get_by_text("Show everyone's videos").click()
        expect(page.get_by_text("1 job", exact=False).first).to_be_visible()
        for viewport, name in ((PHONE, "390"), (LAPTOP, "1440")):
            page.set_viewport_size(viewport)
            page.screenshot(path=screenshot_dir / f"history-bo-everyone-{name}.png")
    finally:
        bo.close()


def test_an_administrator_sees_everyones_spend_and_others_cannot_change_limits(
    browser: Browser, signin_app: SignInApp, screenshot_dir: Path
) -> None:
    context = new_context(browser)
    page = context.new_page()
    try:
        sign_in(page, signin_app, "root")
        expect(page.locator(".st-key-sidebar-person")).to_contain_text("administrator")
        page.goto(f"{signin_app.url}/settings")
        people = page.locator(".st-key-settings-people")
        expect(people).to_contain_text("people and their limits")
        expect(people.locator('[data-testid="stDataFrame"] td', has_text=ANA)).to_be_attached()
        expect(page.get_by_role("button", name="Save limits")).to_be_visible()
        people.screenshot(path=screenshot_dir / "settings-admin-people-1440.png")
    finally:
        context.close()

    context = new_context(browser)
    page = context.new_page()
    try:
        sign_in(page, signin_app, "bo")
        page.goto(f"{signin_app.url}/settings")
        expect(page.get_by_text("Only an administrator can change the limits.")).to_be_visible()
        expect(page.get_by_role("button", name="Save limits")).to_have_count(0)
        expect(page.locator(".st-key-settings-people")).to_have_count(0)
    finally:
        context.close()


def test_videos_are_refused_signed_out_and_after_signing_out(
    browser: Browser, signin_app: SignInApp
) -> None:
    if signin_app.video_url is None:
        pytest.skip("needs the video made in the test before")
    # A browser that never signed in, and a plain client, get nothing.
    assert requests.get(signin_app.video_url, timeout=10).status_code == 403
    context = new_context(browser)
    page = context.new_page()
    try:
        sign_in(page, signin_app, "ana")
        assert status_of(page, signin_app.video_url) == 200
        page.locator(".st-key-sidebar-person").get_by_role("button", name="Sign out").click()
        # Streamlit sends the browser on to the provider to end its session there too.
        page.wait_for_url(f"{signin_app.provider_url}/**")
        assert status_of(page, signin_app.video_url) == 403
        page.goto(signin_app.url)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    finally:
        context.close()
