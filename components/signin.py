"""Sign-in: who is using this browser session, and the page everyone signed out sees.

Sign-in is on when ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's own
``st.login``, OpenID Connect). Without it there is nobody: jobs have no owner, every page is
open, and everything works as for one person.
"""

from __future__ import annotations

import os

import streamlit as st

from components import state
from components.services import secrets_mapping
from studio.people import Person, admins_from

_AUTH_SECTION = "auth"
# The addresses of the app's pages (see app.py), each of which shows the sign-in page signed out.
_APP_ADDRESSES = ("history", "compare", "models", "settings")


def sign_in_required() -> bool:
    """True when the deployment asks people to sign in (an ``[auth]`` section in secrets)."""
    return state.once_per_run("sign_in_required", _auth_configured)


def _auth_configured() -> bool:
    secrets = secrets_mapping()
    return bool(secrets) and _AUTH_SECTION in secrets


def current_person() -> Person | None:
    """The signed-in person; None when sign-in is off or nobody (with an e-mail) is signed in."""
    return state.once_per_run("current_person", _read_person)


def _read_person() -> Person | None:
    if not sign_in_required() or not _logged_in():
        return None
    admins = admins_from(os.environ, secrets_mapping())
    return Person.from_claims(st.user.to_dict(), admins=admins)


def _logged_in() -> bool:
    # ``st.user`` as a mapping: without a sign-in it may have no ``is_logged_in`` at all.
    return st.user.get("is_logged_in") is True


def current_owner() -> str | None:
    """The e-mail new jobs are recorded under, and whose history and totals come first."""
    person = current_person()
    return person.email if person else None


def may_set_limits() -> bool:
    """Without sign-in anyone may set the spending limits; with it, administrators only."""
    if not sign_in_required():
        return True
    person = current_person()
    return person is not None and person.is_admin


def let_in() -> bool:
    """True when this session may see the app; otherwise draw the sign-in page and say False."""
    if not sign_in_required():
        return True
    from components.media_guard import guard_media

    guard_media()
    if current_person() is not None:
        return True
    # The sign-in page at every page's address, so that a bookmark leads to it, not to
    # "page not found"; no navigation is shown.
    pages = [st.Page(render_sign_in_page, title="Sign in", default=True)] + [
        st.Page(render_sign_in_page, title="Sign in", url_path=address)
        for address in _APP_ADDRESSES
    ]
    st.navigation(pages, position="hidden").run()
    return False


def render_sign_in_page() -> None:
    """The one page a signed-out visitor can reach."""
    st.title("Wan Studio")
    if _logged_in():
        # Signed in with the provider, but it gave no (verified) e-mail to record jobs under.
        st.warning(
            "Your sign-in did not tell us a verified e-mail address, and Wan Studio needs one "
            "to keep your videos apart from everyone else's. Ask whoever runs Wan Studio to "
            "have the sign-in service share it, then sign in again.",
            icon=":material/mail:",
        )
        if st.button("Sign out", key=state.SIGN_OUT):
            st.logout()
        return
    st.write("Sign in to make videos and to see your history.")
    if st.button("Sign in", key=state.SIGN_IN, type="primary", icon=":material/login:"):
        st.login()


def render_signed_in_line() -> None:
    """In the sidebar: who is signed in, and a button to sign out."""
    person = current_person()
    if person is None:
        return
    with st.container(key="sidebar-person"):
        role = " · administrator" if person.is_admin else ""
        st.text(f"Signed in as {person.name}{role}")
        if person.name != person.email:
            st.text(person.email)
        if st.button("Sign out", key=state.SIGN_OUT, icon=":material/logout:"):
            st.logout()
