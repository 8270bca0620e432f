"""The double-click window and the History "Today" filter, on a clock the test sets."""

from __future__ import annotations

from datetime import UTC, datetime

from streamlit.testing.v1 import AppTest

from components import state

NEW_YORK_MIDNIGHT = datetime(2026, 1, 15, 5, 0, tzinfo=UTC)  # 00:00 on 15 January in New York


def _clicks() -> None:
    """A page with only the Generate click's bookkeeping, on the clock in ``test.clock``."""
    import streamlit as st

    from components import state

    clock = st.session_state["test.clock"]
    action = st.session_state.get("test.action")
    if action == "click":
        state.request_submission(now=lambda: clock)
    elif action == "sent":
        state.request_submission(now=lambda: clock)
        state.submission_done(now=lambda: clock)
    st.session_state["test.action"] = None
    st.text(state.pending_submission() or "nothing pending")


def _click(at: AppTest, *, at_second: float, action: str = "click") -> str:
    at.session_state["test.clock"] = at_second
    at.session_state["test.action"] = action
    at.run()
    assert not at.exception
    return at.text[0].value


def test_a_second_click_inside_the_window_is_ignored_and_one_after_it_counts():
    at = AppTest.from_function(_clicks, default_timeout=30)
    start = 1000.0
    assert _click(at, at_second=start, action="sent") == "nothing pending"
    # Just inside the window, with the same form: a double click, nothing new to send.
    edge = start + state.DOUBLE_CLICK_SECONDS
    assert _click(at, at_second=edge - 0.001) == "nothing pending"
    # At the window's edge: a deliberate second job.
    pending = _click(at, at_second=edge)
    assert pending != "nothing pending"
    # Clicking again while it is still pending keeps the same submission id.
    assert _click(at, at_second=edge + 10) == pending


def test_the_double_click_window_needs_the_same_form():
    sent = (("a prompt",), 1000.0)
    inside = 1000.0 + state.DOUBLE_CLICK_SECONDS / 2
    assert state.is_double_click(sent, ("a prompt",), inside)
    assert not state.is_double_click(sent, ("another prompt",), inside)
    assert not state.is_double_click(None, ("a prompt",), inside)
    assert not state.is_double_click(sent, ("a prompt",), 1000.0 + state.DOUBLE_CLICK_SECONDS)


def _filters() -> None:
    """The History filters alone, on the clock in ``test.now``, in New York."""
    from zoneinfo import ZoneInfo

    import streamlit as st

    from components.history import render_filters
    from studio.catalog import default_catalog

    now = st.session_state["test.now"]
    chosen = render_filters(
        catalog=default_catalog(), zone=ZoneInfo("America/New_York"), now=lambda: now
    )
    st.text(chosen.since.isoformat() if chosen.since else "no start")


def test_the_today_filter_starts_at_the_viewers_midnight_by_the_given_clock():
    at = AppTest.from_function(_filters, default_timeout=30)
    at.session_state["test.now"] = NEW_YORK_MIDNIGHT.replace(second=30)  # 00:00:30 local
    at.run()
    at.selectbox(key=state.HIST_WHEN).set_value("Today").run()
    assert not at.exception
    assert at.text[0].value == "2026-01-15T00:00:00-05:00"
    # Forty seconds earlier it was still the 14th there (and already the 15th in UTC).
    at.session_state["test.now"] = NEW_YORK_MIDNIGHT.replace(hour=4, minute=59, second=50)
    at.run()
    assert at.text[0].value == "2026-01-14T00:00:00-05:00"
    assert not at.exception
