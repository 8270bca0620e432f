"""Spending limits: how much billed work a day and a month may take, and what is left of it.

A limit is checked where a job is written: the store sums what is already spent or reserved in
the same transaction that writes the new jobs (see ``JobStore``), so two submits racing for the
last dollars cannot both pass. A job in flight reserves its estimate until it ends; a job that
ends without a cost (refused, failed, lost) releases it. Demo jobs never count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal

from studio.humane import money

# The whole deployment's limit. Per-person limits use their own scopes.
TEAM_SCOPE = "team"


@dataclass(frozen=True)
class SpendingLimit:
    """At most this much billed spend per calendar day and per calendar month (None: no cap)."""

    daily_usd: Decimal | None = None
    monthly_usd: Decimal | None = None

    @property
    def is_set(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None


@dataclass(frozen=True)
class Period:
    """One calendar day or month in the deployment's time zone, as aware datetimes."""

    name: str  # "today" or "this month"
    start: datetime
    end: datetime


def day_and_month(now: datetime, zone: tzinfo) -> tuple[Period, Period]:
    """Today and this month around ``now`` (aware), in ``zone``."""
    local = now.astimezone(zone)
    # Arithmetic on aware datetimes is on the wall clock, so a day around a clock change ends at
    # the next midnight all the same.
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    return (
        Period("today", day_start, day_start + timedelta(days=1)),
        Period("this month", month_start, (month_start + timedelta(days=32)).replace(day=1)),
    )


@dataclass(frozen=True)
class SpendGuard:
    """What a billed submit checks in the transaction that writes its jobs."""

    scope: str
    limit: SpendingLimit
    day: Period
    month: Period

    def capped_periods(self) -> list[tuple[Period, Decimal]]:
        """Each period that has a cap, with its cap."""
        capped = [(self.day, self.limit.daily_usd), (self.month, self.limit.monthly_usd)]
        return [(period, cap) for period, cap in capped if cap is not None]


class SpendingLimitReached(Exception):
    """A job or a batch would take billed spend over a limit; nothing was written or sent."""

    def __init__(self, *, period: Period, cap: Decimal, committed: Decimal, asked: Decimal) -> None:
        self.period = period
        self.cap = cap
        self.committed = committed
        self.asked = asked
        self.left = max(Decimal(0), cap - committed)
        limit_name = "daily" if period.name == "today" else "monthly"
        super().__init__(
            f"This would go over the {limit_name} spending limit of {money(cap)}: "
            f"{money(self.left)} is left {period.name} and this costs {money(asked)}."
        )
