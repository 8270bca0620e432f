"""Spending limits: how much billed work a day and a month may take, and what is left of it.

A limit is checked where a job is written: the store sums what is already spent or reserved in
the same transaction that writes the new jobs (see ``JobStore``), so two submits racing for the
last dollars cannot both pass. A job in flight reserves its estimate until it ends; a job that
ends without a cost (refused, failed, lost) releases it. Demo jobs never count.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from studio.humane import money

# The whole deployment's limit. Per-person limits use their own scopes (``person_scope``).
TEAM_SCOPE = "team"
_PERSON_SCOPE_PREFIX = "person:"


def person_scope(email: str) -> str:
    """The scope of one signed-in person's limit: ``person:ana@example.com``."""
    return f"{_PERSON_SCOPE_PREFIX}{email.strip().lower()}"


def scope_person(scope: str) -> str | None:
    """The e-mail a person's scope is for; None for the team's."""
    return (
        scope.removeprefix(_PERSON_SCOPE_PREFIX) if scope.startswith(_PERSON_SCOPE_PREFIX) else None
    )


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
    # the next midnight all the same (23 or 25 hours later). fold=0: a midnight that the clock
    # skips is read with the offset before the change, which is the moment the day starts.
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
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

    @property
    def owner(self) -> str | None:
        """Whose jobs count against this guard: a person's own only; everyone's for the team."""
        return scope_person(self.scope)

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
        self.spend = PeriodSpend(period=period, cap=cap, committed=committed)
        super().__init__(self.words())

    def words(self, now: datetime | None = None) -> str:
        """``This costs $0.450, more than the $0.40 left today; the daily limit resets … (in 5 h).``

        A whole sentence, full stop included, so that it reads right in a toast, on the page
        and before the CLI's "Nothing was sent or billed."
        """
        return f"{self.spend.refusal_words(self.asked, now)}."


# -- where limits apply, and what is left of them ------------------------------------------

_CENT = Decimal("0.01")
NEAR_LIMIT_PERCENT = 80


def limit_money(amount: Decimal) -> str:
    """Money for limits: ``$5.00``, ``$0.40``; three decimals only for a tenth of a cent."""
    if amount == amount.quantize(_CENT):
        sign = "-" if amount < 0 else ""
        return f"{sign}${abs(amount.quantize(_CENT, rounding=ROUND_HALF_UP)):,}"
    return money(amount)


@functools.lru_cache(maxsize=8)
def _zone_named(tz_variable: str) -> tzinfo | None:
    name = tz_variable.removeprefix(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            # A rule written out (``CET-1CEST,M3.5.0,M10.5.0/3``) rather than a zone's name.
            return None
    # The system's zone: by its name where /etc/localtime links into the zone database.
    linked = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in linked:
        try:
            return ZoneInfo(linked.split("/zoneinfo/", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as zone_file:
            return ZoneInfo.from_file(zone_file, key="localtime")
    except (OSError, ValueError):
        return None


def _offset_now() -> tzinfo:
    # Only when the zone's rules cannot be read: today's offset, right until the clocks change.
    offset = datetime.now().astimezone().tzinfo
    return offset if offset is not None else UTC


def local_zone() -> tzinfo:
    """The server's time zone with its clock changes: ``TZ``, else the system's zone."""
    # Not cached when the rules cannot be read: the offset in force changes with the clocks.
    return _zone_named(os.environ.get("TZ", "")) or _offset_now()


@dataclass(frozen=True)
class PeriodSpend:
    """One capped period: its cap and what is spent or reserved in it."""

    period: Period
    cap: Decimal
    committed: Decimal

    @property
    def left(self) -> Decimal:
        return max(Decimal(0), self.cap - self.committed)

    @property
    def percent(self) -> int:
        """How much of the cap is taken, in whole percent (100 for a cap of nothing)."""
        if self.cap <= 0:
            return 100
        return int(self.committed * 100 / self.cap)

    @property
    def near_limit(self) -> bool:
        """True from 80 % of the cap on: the form warns."""
        return self.cap <= 0 or self.committed * 100 >= self.cap * NEAR_LIMIT_PERCENT

    @property
    def resets_at(self) -> datetime:
        return self.period.end

    @property
    def limit_name(self) -> str:
        return "daily" if self.period.name == "today" else "monthly"

    def fits(self, asked: Decimal) -> bool:
        return self.committed + asked <= self.cap

    def reset_words(self, now: datetime | None = None) -> str:
        """``at midnight (in 5 h)``, ``on 1 December (in 4 days)``."""
        end = self.period.end
        when = "at midnight" if self.period.name == "today" else f"on {end.day} {end:%B}"
        return f"{when} ({until_words(end, now)})"

    def refusal_words(self, asked: Decimal, now: datetime | None = None) -> str:
        """``This costs $0.450, more than the $0.40 left today; the daily limit resets …``."""
        # The price as the form and the CLI show it; the cap and what is left in cents.
        return f"This costs {money(asked)}, more than the {self.left_and_reset_words(now)}"

    def left_and_reset_words(self, now: datetime | None = None) -> str:
        """``$0.40 left today; the daily limit resets at midnight (in 5 h)``."""
        return (
            f"{limit_money(self.left)} left {self.period.name}; the {self.limit_name} limit "
            f"resets {self.reset_words(now)}"
        )


def until_words(moment: datetime, now: datetime | None = None) -> str:
    """``in 38 min``, ``in 5 h``, ``in 5 h 20 min``, ``in 4 days``: from ``now`` to ``moment``."""
    # Real time between two instants: subtracting aware datetimes of one zone would count wall
    # clock hours and be an hour off across a clock change.
    now = now or datetime.now(UTC)
    minutes = max(1, int((moment.astimezone(UTC) - now.astimezone(UTC)).total_seconds() // 60))
    if minutes < 60:
        return f"in {minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"in {hours} h" if rest == 0 else f"in {hours} h {rest:02d} min"
    days = round(minutes / (24 * 60))
    return "in 1 day" if days == 1 else f"in {days} days"


@dataclass(frozen=True)
class SpendingStatus:
    """What the Generate form and the CLI show: each capped period, and what blocks a price."""

    periods: tuple[PeriodSpend, ...]

    def blocking(self, asked: Decimal) -> PeriodSpend | None:
        """The first period that cannot take ``asked`` more, or None when it fits everywhere."""
        return next((spend for spend in self.periods if not spend.fits(asked)), None)

    def warning(self) -> PeriodSpend | None:
        """The period nearest its cap once one is at 80 % or more, else None."""
        near = [spend for spend in self.periods if spend.near_limit]
        return max(near, key=lambda spend: spend.percent) if near else None

    def left_words(self) -> str:
        """``$4.20 left today · $48.00 left this month``."""
        return " · ".join(
            f"{limit_money(spend.left)} left {spend.period.name}" for spend in self.periods
        )
