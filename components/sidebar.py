"""The sidebar every page shares: which mode the app is in, and the running totals."""

from __future__ import annotations

import streamlit as st

from components import state
from components.formatting import money_text
from components.signin import current_owner, sign_in_required
from components.spending import sidebar_left_line, spending_now
from studio.humane import money, plural
from studio.keys import KEY_FROM_SESSION, KeyChoice
from studio.records import BILLED, DEMO, ModeSpend, Spend, Totals
from studio.service import Studio
from studio.settings import KEY_FROM_ENVIRONMENT, KEY_FROM_SECRETS, mask_key

_KEY_ORIGINS = {
    KEY_FROM_SESSION: "entered for this browser session",
    KEY_FROM_ENVIRONMENT: "from the environment",
    KEY_FROM_SECRETS: "from secrets.toml",
}

TEAM_KEY_WORDS = "the team's key"

# Markdown line breaks: three short lines, no list bullets, to keep the sidebar compact.
_LINE_BREAK = "  \n"


def render_sidebar(*, studio: Studio, session_id: str) -> None:
    """The mode badge, then the running totals."""
    render_mode_badge(studio=studio)
    billed = key_in_use(studio=studio).billed
    render_totals(totals=session_totals(studio=studio, session_id=session_id), billed_mode=billed)
    if left := sidebar_left_line(spending_now(studio=studio, mode=BILLED if billed else DEMO)):
        with st.container(key="sidebar-limit"):
            st.caption(f":material/savings: {left}")


def session_totals(*, studio: Studio, session_id: str) -> Totals:
    """This session's running totals, read once per run: the page and the sidebar share them."""
    # With sign-in, the signed-in person's own: their jobs only.
    owner = current_owner()
    by_owner = {"owner": owner} if owner is not None else {}
    return state.once_per_run(
        ("totals", session_id, owner), lambda: studio.totals(session_id, **by_owner)
    )


def key_in_use(*, studio: Studio) -> KeyChoice:
    """The key new jobs from this browser session are sent with (``None`` in demo mode)."""
    return studio.key_for_new_job(state.session_api_key())


def key_words(choice: KeyChoice) -> str:
    """``key ••••3f9a``; with sign-in, the deployment's shared key is never shown, even masked."""
    if sign_in_required() and choice.source in {KEY_FROM_ENVIRONMENT, KEY_FROM_SECRETS}:
        return TEAM_KEY_WORDS
    return f"key {mask_key(choice.key)}"


def key_origin(choice: KeyChoice) -> str:
    """Where the key in use comes from, in words: "from the environment"."""
    return _KEY_ORIGINS.get(choice.source, "")


def render_mode_badge(*, studio: Studio) -> None:
    """Say plainly whether new jobs cost money, and which key pays for them."""
    choice = key_in_use(studio=studio)
    with st.container(key="sidebar-mode"):
        if choice.billed:
            st.badge(f"Billed — {key_words(choice)}", icon=":material/payments:", color="orange")
            st.caption(f"Key {key_origin(choice)}. Every finished video is charged to it.")
        else:
            st.badge("Demo mode — nothing is billed", icon=":material/science:", color="green")
            st.caption(
                "Videos are made by a built-in demo on this computer. Add an API key in Settings "
                "to use the real models."
            )


def render_mode_line(*, studio: Studio, session_id: str) -> None:
    """One line under a page's title: demo or billed, and this session's total so far.

    On a phone the sidebar is closed; this line says what it would.
    """
    billed = key_in_use(studio=studio).billed
    session = session_totals(studio=studio, session_id=session_id).session
    with st.container(key="mode-line"):
        if billed:
            said = f"Billed to your key · this session: {money(session.billed.cost_usd)}"
            if session.billed.pending:
                said += f" · {pending_words(session.billed)}"
            st.caption(f":material/payments: {money_text(said)}")
        else:
            said = "Demo mode, nothing is billed"
            if session.demo.jobs:
                said += f" · this session: {demo_words(session.demo)}"
            st.caption(f":material/science: {money_text(said)}")


def render_totals(*, totals: Totals, billed_mode: bool) -> None:
    """Billed spend (in billed mode, or once anything was billed) and demo videos, never mixed.

    A job counts from the moment it is sent, as pending, with what it costs if it succeeds;
    demo videos say what they would have cost.
    """
    show_billed = billed_mode or totals.all_time.billed.jobs > 0
    show_demo = totals.all_time.demo.jobs > 0
    with st.container(key="sidebar-totals"):
        if show_billed:
            st.markdown("**Billed spend**" + _LINE_BREAK + _billed_lines(totals))
        if show_demo:
            st.markdown("**Demo videos** · not billed" + _LINE_BREAK + _demo_lines(totals))
        if not show_billed and not show_demo:
            st.caption("Your videos, and what they cost, are counted here.")


def pending_words(spend: Spend) -> str:
    """``1 pending ($0.225 if it succeeds)``."""
    if_done = "if it succeeds" if spend.pending == 1 else "if they succeed"
    return f"{spend.pending} pending ({money(spend.pending_usd)} {if_done})"


def demo_words(spend: Spend) -> str:
    """``2 videos, would have cost $0.170``, and ``· 1 pending`` while one is in flight."""
    return f"{plural(spend.videos, 'video')}, {would_have_cost(spend)}"


def would_have_cost(spend: Spend) -> str:
    """``would have cost $0.170``, and ``· 1 pending`` while a demo job is in flight."""
    said = f"would have cost {money(spend.cost_usd)}"
    return said + (f" · {spend.pending} pending" if spend.pending else "")


def totals_rows(totals: Totals) -> list[tuple[str, ModeSpend]]:
    """The three slices every totals view shows, with their names."""
    return [
        ("This session", totals.session),
        ("Today", totals.today),
        ("All time", totals.all_time),
    ]


def _billed_lines(totals: Totals) -> str:
    return _LINE_BREAK.join(_billed_line(name, spend.billed) for name, spend in totals_rows(totals))


def _billed_line(name: str, spend: Spend) -> str:
    # Escaped: two dollar amounts on one Markdown line would read as a formula.
    line = f"{name}: **{money(spend.cost_usd)}** · {plural(spend.videos, 'video')}"
    return money_text(line + (f" · {pending_words(spend)}" if spend.pending else ""))


def _demo_lines(totals: Totals) -> str:
    return _LINE_BREAK.join(
        f"{name}: {money_text(demo_words(spend.demo))}" for name, spend in totals_rows(totals)
    )
