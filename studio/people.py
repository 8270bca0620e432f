"""Who is using the studio when people sign in, and who of them are its administrators.

With sign-in configured, every job records who made it (their e-mail, lower-cased), each person
sees their own jobs and totals first, and administrators (a list of e-mail addresses in the
environment or secrets) see everyone's spend and set each person's limits. Without sign-in there
is nobody here: jobs have no owner and everything works as for one person.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from studio.records import ModeSpend

ADMINS_VARIABLE = "WAN_STUDIO_ADMINS"
# In .streamlit/secrets.toml: [people] admins = ["ana@example.com", "bo@example.com"]
ADMINS_SECTION = "people"
ADMINS_KEY = "admins"


def normal_email(email: str) -> str:
    """An e-mail as owners are kept: trimmed and lower-cased."""
    return email.strip().lower()


# The owner column's width (an e-mail address is at most 320 characters).
MAX_EMAIL_LENGTH = 320


def owner_email(text: str) -> str:
    """An e-mail typed for a job's owner (the command line's ``--owner``), as owners are kept.

    Raises
    ------
    ValueError
        With what is wrong, in plain words, when ``text`` is not an e-mail address.
    """
    email = normal_email(text)
    local, at, domain = email.rpartition("@")
    if not email:
        raise ValueError("the e-mail address is empty")
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(f"the e-mail address is longer than {MAX_EMAIL_LENGTH} characters")
    if any(character.isspace() or not character.isprintable() for character in email):
        raise ValueError(f"{text.strip()!r} has a space or a control character in it")
    if not at or not local or "@" in local or not domain:
        raise ValueError(f"{text.strip()!r} is not an e-mail address like ana@example.com")
    if "" in domain.split("."):
        raise ValueError(f"{text.strip()!r} has an empty part in its domain ({domain!r})")
    return email


def _addresses(raw: Any) -> frozenset[str]:
    # A comma separated string (the environment) or a list of strings (secrets).
    items = raw.split(",") if isinstance(raw, str) else list(raw or ())
    return frozenset(normal_email(str(item)) for item in items if str(item).strip())


def admins_from(
    env: Mapping[str, str] = os.environ, secrets: Mapping | None = None
) -> frozenset[str]:
    """The administrators' e-mails: ``WAN_STUDIO_ADMINS`` (comma separated), else secrets.

    Parameters
    ----------
    env
        The environment.
    secrets
        A mapping shaped like ``.streamlit/secrets.toml``: ``[people] admins = [...]``.
    """
    if env.get(ADMINS_VARIABLE, "").strip():
        return _addresses(env[ADMINS_VARIABLE])
    try:
        section = secrets[ADMINS_SECTION] if secrets else None
        return _addresses(section[ADMINS_KEY] if section else None)
    except (KeyError, TypeError):
        return frozenset()


@dataclass(frozen=True)
class Person:
    """A signed-in person."""

    email: str  # lower-cased: what their jobs record as their owner
    name: str
    is_admin: bool = False

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], *, admins: frozenset[str]) -> Person | None:
        """The person an identity provider's claims describe; None without an e-mail.

        Only a verified e-mail counts when the provider says whether it is verified.
        """
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            return None
        if claims.get("email_verified") is False:
            return None
        email = normal_email(email)
        name = claims.get("name")
        return cls(
            email=email,
            name=name.strip() if isinstance(name, str) and name.strip() else email,
            is_admin=email in admins,
        )


@dataclass(frozen=True)
class PersonSpend:
    """One person's spend: billed and demo apart, today, this month and all time."""

    email: str | None  # None: jobs made before sign-in, or without it
    today: ModeSpend
    this_month: ModeSpend
    all_time: ModeSpend


def people_spend(by_owner: Mapping[str | None, Mapping[str, ModeSpend]]) -> list[PersonSpend]:
    """The store's spend per owner as rows, most spent or reserved this month first."""
    rows = [
        PersonSpend(
            email=owner,
            today=spend["today"],
            this_month=spend["this month"],
            all_time=spend["all time"],
        )
        for owner, spend in by_owner.items()
    ]

    def spent(row: PersonSpend) -> Decimal:
        billed = row.this_month.billed
        return billed.cost_usd + billed.pending_usd

    return sorted(rows, key=lambda row: (-spent(row), row.email or "~"))
