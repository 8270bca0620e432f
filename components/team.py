"""With sign-in: whose videos History shows, the team's total, and each person's spend and limits.

Without sign-in none of this is drawn: the app is one person's.
"""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from components import state
from components.formatting import money_text
from components.limits_settings import cap_amount
from components.signin import current_owner, current_person, sign_in_required
from studio.humane import money, plural
from studio.limits import SpendingLimit, limit_money
from studio.people import PersonSpend
from studio.service import Studio

_NOBODY = "Before sign-in"  # jobs made without sign-in have no owner


def made_by(owner: str | None) -> str:
    """Who made a job, as History names them: their e-mail, or that it predates sign-in."""
    return owner or _NOBODY


def render_yours_heading() -> None:
    """With sign-in, the totals under it are the person's own, whatever the list shows."""
    if current_owner() is not None:
        st.markdown("**Your videos**")


def render_whose_videos() -> str | None:
    """The "everyone's videos" switch; returns whose jobs to show (None: everyone's)."""
    owner = current_owner()
    if owner is None:
        return None
    with st.container(key="history-whose"):
        everyone = st.toggle(
            "Show everyone's videos",
            key=state.HIST_EVERYONE,
            help="Off: only the videos you made. On: the videos everyone on the team made.",
        )
    return None if everyone else owner


def render_team_total(*, studio: Studio) -> None:
    """The whole team's billed spend, today and all time, under the person's own totals."""
    if current_owner() is None:
        return
    team = studio.totals(None)
    with st.container(key="history-team-total"):
        st.markdown(
            money_text(
                f"**Team total:** {money(team.today.billed.cost_usd)} today · "
                f"{money(team.all_time.billed.cost_usd)} all time, "
                f"{plural(team.all_time.billed.videos, 'billed video')} and "
                f"{plural(team.all_time.demo.videos, 'demo video')}"
            )
        )


def render_people_and_limits(*, studio: Studio) -> None:
    """Administrators, with sign-in: every person's spend, and each one's own limits."""
    person = current_person()
    if not sign_in_required() or person is None or not person.is_admin:
        return
    import pandas as pd  # only administrators' Settings page needs it

    people = studio.spend_by_person()
    with st.container(border=True, key="settings-people"):
        st.subheader("For administrators: people and their limits")
        st.caption(
            "What each person's billed videos cost, and their own daily and monthly limits. "
            "A person's video must fit under their own limit and under the team's limits above."
        )
        limits = {row.email: studio.person_spending_limit(row.email) for row in people if row.email}
        st.dataframe(
            pd.DataFrame([_spend_row(row, limits.get(row.email)) for row in people]),
            hide_index=True,
            width="stretch",
            key=state.SETTINGS_PEOPLE_TABLE,
        )
        emails = [row.email for row in people if row.email]
        if not emails:
            return
        chosen = st.selectbox("Person", emails, key=state.SETTINGS_PERSON)
        kept = limits[chosen]
        daily_column, monthly_column = st.columns(2)
        for column, key, label, cap in (
            (daily_column, state.SETTINGS_PERSON_DAILY, "Their daily limit", kept.daily_usd),
            (
                monthly_column,
                state.SETTINGS_PERSON_MONTHLY,
                "Their monthly limit",
                kept.monthly_usd,
            ),
        ):
            with column:
                st.number_input(
                    f"{label} (US dollars)",
                    # Keyed by person, so that choosing another shows their own caps.
                    value=float(cap) if cap is not None else None,
                    key=state.person_limit_key(key, chosen),
                    min_value=0.0,
                    step=1.0,
                    format="%.2f",
                    placeholder="No limit",
                )
        st.button(
            "Save their limits",
            key=state.SETTINGS_SAVE_PERSON_LIMITS,
            icon=":material/savings:",
            on_click=_save_person_limits,
            kwargs={"studio": studio, "email": chosen},
        )
        if said := state.pop_person_limits_message():
            tone, words = said
            {"success": st.success, "error": st.error}[tone](money_text(words))


def _caps_words(limit: SpendingLimit | None) -> str:
    """``$5.00 a day, $50.00 a month``, or ``none``."""
    if limit is None or not limit.is_set:
        return "none"
    named = [
        f"{limit_money(cap)} a {period}"
        for cap, period in ((limit.daily_usd, "day"), (limit.monthly_usd, "month"))
        if cap is not None
    ]
    return ", ".join(named)


def _spend_row(row: PersonSpend, limit: SpendingLimit | None) -> dict[str, str]:
    def spent(part: Decimal, pending: Decimal) -> str:
        return money(part) if not pending else f"{money(part)} (+{money(pending)} running)"

    return {
        "Person": made_by(row.email),
        "Today": spent(row.today.billed.cost_usd, row.today.billed.pending_usd),
        "This month": spent(row.this_month.billed.cost_usd, row.this_month.billed.pending_usd),
        "All time": money(row.all_time.billed.cost_usd),
        "Billed videos": str(row.all_time.billed.videos),
        "Own limits": _caps_words(limit),
    }


def _save_person_limits(*, studio: Studio, email: str) -> None:
    person = current_person()
    if person is None or not person.is_admin:  # the button is only drawn for them
        state.set_person_limits_message("error", "Only an administrator can change the limits.")
        return
    caps: dict[str, Decimal | None] = {}
    for key, label, field in (
        (state.SETTINGS_PERSON_DAILY, "Daily limit", "daily_usd"),
        (state.SETTINGS_PERSON_MONTHLY, "Monthly limit", "monthly_usd"),
    ):
        try:
            caps[field] = cap_amount(state.person_limit_key(key, email), label)
        except ValueError as problem:
            state.set_person_limits_message("error", f"{problem} Nothing was saved.")
            return
    limit = SpendingLimit(**caps)
    studio.set_person_spending_limit(email, limit)
    state.set_person_limits_message("success", f"Saved. Their own limits: {_caps_words(limit)}.")
