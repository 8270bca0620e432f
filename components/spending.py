"""What is left of the spending limits, beside the price on the Generate form and in the sidebar.

The form blocks Generate when the price does not fit; the store's check when the job is written
decides for good (another tab may have spent the last dollars in between), and says the same.
"""

from __future__ import annotations

from decimal import Decimal

import streamlit as st

from components import state
from components.formatting import money_text
from components.signin import current_owner
from studio.limits import PeriodSpend, SpendingLimitReached, SpendingStatus, limit_money
from studio.service import Studio


def spending_now(*, studio: Studio, mode: str) -> SpendingStatus | None:
    """What is left of the spending limits, read once per run: the form and the sidebar share it."""
    # With sign-in, the person's own caps count beside the team's.
    owner = current_owner()
    by_owner = {"owner": owner} if owner is not None else {}
    return state.once_per_run(
        ("spending", mode, owner), lambda: studio.spending_status(mode, **by_owner)
    )


def render_spending_left(*, status: SpendingStatus | None, price: Decimal) -> PeriodSpend | None:
    """What is left today and this month; a warning from 80 %; what blocks ``price``, if any.

    Returns the period the price does not fit in (Generate stays blocked), or None.
    """
    if status is None:
        return None
    blocking = status.blocking(price)
    with st.container(key="gen-spending"):
        st.caption(f":material/savings: {money_text(status.left_words())}")
        if blocking is not None:
            render_limit_refusal(f"{blocking.refusal_words(price)}.")
        elif near := status.warning():
            st.warning(money_text(_near_limit_words(near)), icon=":material/warning:")
    return blocking


def render_limit_refusal(words: str) -> None:
    """Why Generate cannot send this job: the price, what is left, and when the limit resets."""
    with st.container(key="gen-over-limit"):
        st.error(money_text(words), icon=":material/block:")


def render_limit_reached(reached: SpendingLimitReached) -> None:
    """The store refused the job at the last moment (spent meanwhile, e.g. in another tab)."""
    render_limit_refusal(f"{reached.words()} Nothing was sent or billed.")


def _near_limit_words(near: PeriodSpend) -> str:
    period = "today's" if near.period.name == "today" else "this month's"
    return (
        f"{near.percent} % of {period} limit of {limit_money(near.cap)} is spent or on its way: "
        f"{near.left_and_reset_words()}."
    )


def sidebar_left_line(status: SpendingStatus | None) -> str | None:
    """``Limit: $4.20 left today · $48.00 left this month`` (Markdown-safe), or None."""
    if status is None:
        return None
    return money_text(f"Limit: {status.left_words()}")
