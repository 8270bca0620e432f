"""With sign-in on, the media Streamlit serves (``/media/<id>``: players, downloads) is for
signed-in browsers only.

Streamlit serves a session's media to anyone who has its address, signed in or not, and keeps a
file as long as any session still shows it: a video's address copied while signed in would still
play after signing out, and one another person is watching stays reachable by whoever has its
address. Streamlit offers no hook on that route short of serving the app another way, so the
route the server already built is wrapped, once per process, to ask first for the same signed
identity cookie ``st.login`` sets (and ``st.logout`` deletes). Without a valid one it answers 403.
"""

from __future__ import annotations

import gc
import json
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

logger = logging.getLogger("components.media_guard")

_MEDIA_ENDPOINT = "_media_endpoint"  # the name of Streamlit's handler of /media/<id>
_GUARDED = "_wan_studio_signed_in_only"
_lock = threading.Lock()
_done = False

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


def guard_media() -> None:
    """Make the server's media route answer signed-in browsers only (once per process)."""
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        routes = _media_routes()
        for route in routes:
            if not getattr(route, _GUARDED, False):
                route.app = _signed_in_only(route.app)
                setattr(route, _GUARDED, True)
        if not routes:
            logger.warning("the media route was not found: media stays open signed out")
        _done = True


def _media_routes() -> list[Any]:
    from starlette.routing import Route

    return [
        found
        for found in gc.get_objects()
        if isinstance(found, Route)
        and getattr(found.endpoint, "__name__", "") == _MEDIA_ENDPOINT
        and found.endpoint.__module__.startswith("streamlit.")
    ]


def signed_in(cookies: dict[str, str]) -> bool:
    """True when ``cookies`` hold Streamlit's signed identity cookie, of someone signed in."""
    from streamlit.auth_util import get_cookie_with_chunks
    from streamlit.web.server.server_util import get_cookie_secret
    from streamlit.web.server.starlette.starlette_app_utils import decode_signed_value
    from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

    secret = get_cookie_secret()

    def one_cookie(name: str) -> bytes | None:
        raw = cookies.get(name)
        if raw is None:
            return None
        # HTTP cookies are latin-1: that gives back the bytes that were signed.
        return decode_signed_value(secret, name, raw.encode("latin-1"))

    try:
        decoded = get_cookie_with_chunks(one_cookie, USER_COOKIE_NAME)
        payload = json.loads(decoded) if decoded else {}
    except (ValueError, UnicodeError):
        return False
    return isinstance(payload, dict) and payload.get("is_logged_in") is True


def _signed_in_only(inner: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Any, send: Any) -> None:
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse

        if scope.get("type") == "http" and not signed_in(dict(Request(scope).cookies)):
            refused = PlainTextResponse("Sign in to Wan Studio to see this.", status_code=403)
            await refused(scope, receive, send)
            return
        await inner(scope, receive, send)

    return guarded
