"""Every page runs inside the app: its layout, its sidebar, its checks.

A page's address opened first thing on a freshly started server (a bookmark, a shared Compare
link) reaches Streamlit before the app has ever declared its pages, and Streamlit then runs the
page's file alone, in its older pages-folder mode: no sidebar, no totals, no wide layout. A page
that finds itself run that way runs the app instead, which declares its pages (leaving that mode
for good) and runs this page again inside it.
"""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import streamlit as st

APP_SCRIPT = Path(__file__).resolve().parents[1] / "app.py"

_inside_app: ContextVar[bool] = ContextVar("wan_studio_inside_app", default=False)


@contextmanager
def app_run() -> Iterator[None]:
    """Marks the page run by the app's navigation as run inside the app."""
    token = _inside_app.set(True)
    try:
        yield
    finally:
        _inside_app.reset(token)


def run_inside_the_app() -> None:
    """Called first by every page: run alone, it runs the app (and this page in it), then stops.

    In this same run, so that what the visitor just did (a click) reaches the page.
    """
    if _inside_app.get():
        return
    runpy.run_path(str(APP_SCRIPT), run_name="__main__")
    st.stop()
