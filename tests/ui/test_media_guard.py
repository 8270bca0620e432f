"""The media guard's question: does this request carry the identity cookie of someone signed in?

The whole route is checked in Chromium (tests/e2e/test_sign_in.py); this reads the cookie the way
``st.login`` signs it.
"""

from __future__ import annotations

import json

from streamlit.web.server.server_util import get_cookie_secret
from streamlit.web.server.starlette.starlette_app_utils import create_signed_value

from components.media_guard import signed_in

COOKIE = "_streamlit_user"


def signed(payload: object, *, secret: str | None = None) -> str:
    value = create_signed_value(secret or get_cookie_secret(), COOKIE, json.dumps(payload))
    return value.decode("latin-1")


def test_only_a_signed_cookie_of_someone_signed_in_lets_media_through() -> None:
    ana = {"is_logged_in": True, "email": "ana@example.com", "origin": "http://127.0.0.1"}

    assert signed_in({COOKIE: signed(ana)})
    assert not signed_in({})
    assert not signed_in({COOKIE: signed({**ana, "is_logged_in": False})})
    assert not signed_in({COOKIE: signed(ana, secret="someone else's secret")})
    assert not signed_in({COOKIE: signed(ana)[:-3] + "abc"})
    assert not signed_in({COOKIE: signed(["not", "a", "table"])})
    assert not signed_in({"other": signed(ana)})
