"""The Settings page's spending limits: a daily and a monthly cap on billed spend, or none."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import streamlit as st

from components import state
from components.formatting import money_text
from components.signin import may_set_limits
from studio.humane import zone_name
from studio.limits import SpendingLimit, limit_money, local_zone
from studio.service import Studio
from studio.settings import LIMIT_MAX_USD

_CENT = Decimal("0.01")
# Each cap: its widget, the name the page gives it, and its field on SpendingLimit.
_CAPS = (
    (state.SETTINGS_DAILY_LIMIT, "Daily limit", "daily_usd"),
    (state.SETTINGS_MONTHLY_LIMIT, "Monthly limit", "monthly_usd"),
)


def render_spending_limits(*, studio: Studio) -> None:
    """Set or clear the caps; a cap the deployment fixes is shown, not offered."""
    fixed = studio.deployment_spending_limit
    kept = studio.kept_spending_limit()
    with st.container(border=True, key="settings-limits"):
        st.subheader("Spending limits")
        st.caption(
            "Cap what billed videos may cost, for everyone using this app, per day and per "
            "month. A video that would go over is not sent, and the Generate page says how much "
            f"is left. Days and months follow this server's clock ({_zone_name()}). Demo videos "
            "never count. Leave a field empty for no limit."
        )
        if not may_set_limits():
            # With sign-in, only administrators change the team's caps; others see them.
            in_force = studio.spending_limit()
            st.markdown(
                money_text(
                    f"{_limits_words(in_force)} Only an administrator can change the limits."
                )
            )
            return
        for key, label, field in _CAPS:
            cap = getattr(fixed, field)
            if cap is not None:
                st.markdown(
                    money_text(f"**{label}:** {limit_money(cap)} — fixed for this installation")
                )
                continue
            if key not in st.session_state:
                kept_cap = getattr(kept, field)
                st.session_state[key] = float(kept_cap) if kept_cap is not None else None
            st.number_input(
                f"{label} (US dollars)",
                # None: the field may be emptied (no limit); its value comes from the state.
                value=None,
                key=key,
                min_value=0.0,
                step=1.0,
                format="%.2f",
                placeholder="No limit",
            )
        if fixed.daily_usd is None or fixed.monthly_usd is None:
            st.button(
                "Save limits",
                key=state.SETTINGS_SAVE_LIMITS,
                icon=":material/savings:",
                on_click=_save_limits,
                kwargs={"studio": studio},
            )
        if said := state.pop_limits_message():
            tone, words = said
            {"success": st.success, "info": st.info, "error": st.error}[tone](money_text(words))


def _zone_name() -> str:
    return zone_name(local_zone(), at=datetime.now(UTC))


def cap_amount(key: str, label: str) -> Decimal | None:
    """The typed cap as dollars; raises ValueError with the words to show."""
    value = st.session_state.get(key)
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"The {label.lower()} must be an amount in dollars.") from None
    if amount < 0:
        raise ValueError(f"The {label.lower()} can't be below zero: leave it empty for no limit.")
    if amount > LIMIT_MAX_USD:
        raise ValueError(f"The {label.lower()} can be at most {limit_money(LIMIT_MAX_USD)}.")
    if amount != amount.quantize(_CENT):
        raise ValueError(
            f"The {label.lower()} can have at most two decimals (whole cents), such as 12.50."
        )
    return amount.quantize(_CENT)


def _save_limits(*, studio: Studio) -> None:
    if not may_set_limits():  # the button is only drawn for those who may
        state.set_limits_message("error", "Only an administrator can change the limits.")
        return
    fixed = studio.deployment_spending_limit
    kept = studio.kept_spending_limit()
    caps: dict[str, Decimal | None] = {}
    for key, label, field in _CAPS:
        if getattr(fixed, field) is not None:
            caps[field] = getattr(kept, field)  # not shown: kept as it was
            continue
        try:
            caps[field] = cap_amount(key, label)
        except ValueError as problem:
            state.set_limits_message("error", f"{problem} Nothing was saved.")
            return
    studio.set_spending_limit(SpendingLimit(**caps))
    in_force = studio.spending_limit()
    said = f"Saved. {_limits_words(in_force)}"
    daily, monthly = in_force.daily_usd, in_force.monthly_usd
    if daily is not None and monthly is not None and monthly < daily:
        state.set_limits_message(
            "info",
            f"{said} The monthly limit is below the daily one, so the monthly limit is what "
            "stops spending: no day can use all of its daily limit.",
        )
        return
    state.set_limits_message("success", said)


def _limits_words(limit: SpendingLimit) -> str:
    daily = f"{limit_money(limit.daily_usd)} a day" if limit.daily_usd is not None else None
    monthly = f"{limit_money(limit.monthly_usd)} a month" if limit.monthly_usd is not None else None
    caps = [cap for cap in (daily, monthly) if cap]
    return f"Billed spend is capped at {' and '.join(caps)}." if caps else "No spending limit."
