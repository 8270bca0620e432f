"""Sign-in's domain: who made each job, each person's history, totals and limits, administrators.

The store's tests run on SQLite and PostgreSQL; the Studio's send billed jobs to the simulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from studio.limits import (
    TEAM_SCOPE,
    SpendGuard,
    SpendingLimit,
    SpendingLimitReached,
    day_and_month,
    person_scope,
)
from studio.people import Person, admins_from
from studio.records import BILLED, DEMO, JobFilter, JobStatus
from studio.service import Studio
from studio.store import JobStore
from tests.plugins.engine import quick_draft
from tests.unit.test_spending_limit import QUICK_PRICE, open_capped  # noqa: F401 - fixture
from tests.unit.test_store import database_url, new_job_fields, store  # noqa: F401 - fixtures

ANA = "ana@example.com"
BO = "bo@example.com"
NOW = datetime.now(UTC)


def guard(scope: str, limit: SpendingLimit) -> SpendGuard:
    day, month = day_and_month(NOW, ZoneInfo("Europe/Berlin"))
    return SpendGuard(scope=scope, limit=limit, day=day, month=month)


# -- the store -------------------------------------------------------------------------------


def test_each_job_and_batch_records_its_owner_and_history_filters_by_it(
    store: JobStore,  # noqa: F811
) -> None:
    anas, _ = store.create_job(**new_job_fields(), owner=ANA)
    store.create_job(**new_job_fields(), owner=BO)
    nobodys, _ = store.create_job(**new_job_fields())
    clip = {key: value for key, value in new_job_fields().items() if key != "submission_id"}
    batch, _ = store.create_batch(
        submission_id="batch-1", session_id="s", kind="seeds", clips=[clip, clip], owner=BO
    )

    assert (anas.owner, nobodys.owner, batch.owner) == (ANA, None, BO)
    assert {job.owner for job in batch.jobs} == {BO}
    # An e-mail in the filter is read as owners are kept: lower case.
    assert [job.id for job in store.list_jobs(JobFilter(owner=" Ana@Example.COM "))] == [anas.id]
    assert store.count_jobs(JobFilter(owner=BO)) == 3
    assert store.count_jobs() == 5
    assert [found.id for found in store.list_batches(JobFilter(owner=ANA))] == []
    assert [found.id for found in store.list_batches(JobFilter(owner=BO))] == [batch.id]


def test_each_persons_totals_add_up_to_the_teams(store: JobStore) -> None:  # noqa: F811
    for owner, cost in ((ANA, "0.30"), (ANA, "0.20"), (BO, "0.45"), (None, "0.05")):
        job, _ = store.create_job(**new_job_fields(), owner=owner)
        store.update(job.id, status=JobStatus.SUCCEEDED, cost_usd=Decimal(cost))
    store.create_job(**new_job_fields(estimate_usd=Decimal("0.70")), owner=BO)  # in flight
    store.create_job(**new_job_fields(mode=DEMO), owner=ANA)
    day, month = day_and_month(NOW, ZoneInfo("UTC"))

    team = store.totals(session_id=None, today_start=day.start)
    anas = store.totals(session_id=None, today_start=day.start, owner=ANA)
    by_owner = store.spend_by_owner(today_start=day.start, month_start=month.start)

    assert anas.all_time.billed.cost_usd == Decimal("0.50")
    assert anas.all_time.demo.jobs == 1
    assert set(by_owner) == {ANA, BO, None}
    assert by_owner[ANA]["all time"] == anas.all_time
    assert by_owner[BO]["today"].billed.pending_usd == Decimal("0.70")
    assert sum(spend["all time"].billed.cost_usd for spend in by_owner.values()) == Decimal("1.00")
    assert team.all_time.billed.cost_usd == Decimal("1.00")
    for part in ("jobs", "videos", "cost_usd", "pending", "pending_usd"):
        for mode in ("billed", "demo"):
            total = sum(
                getattr(getattr(spend["this month"], mode), part) for spend in by_owner.values()
            )
            assert total == getattr(getattr(team.all_time, mode), part), (part, mode)


def test_a_persons_clip_must_fit_under_their_own_cap_and_the_teams(
    store: JobStore,  # noqa: F811
) -> None:
    team = guard(TEAM_SCOPE, SpendingLimit(daily_usd=Decimal("1.00")))
    anas_cap = guard(person_scope(ANA), SpendingLimit(daily_usd=Decimal("0.50")))
    bos_cap = guard(person_scope(BO), SpendingLimit(daily_usd=Decimal("0.80")))
    store.create_job(
        **new_job_fields(estimate_usd=Decimal("0.40")), owner=ANA, guard=(team, anas_cap)
    )

    # Ana's own cap stops her; Bo's jobs do not count against Ana's, nor hers against his.
    with pytest.raises(SpendingLimitReached) as refused:
        store.create_job(
            **new_job_fields(estimate_usd=Decimal("0.20")), owner=ANA, guard=(team, anas_cap)
        )
    assert (refused.value.cap, refused.value.left) == (Decimal("0.50"), Decimal("0.10"))
    store.create_job(
        **new_job_fields(estimate_usd=Decimal("0.50")), owner=BO, guard=[bos_cap, team]
    )
    # Now the team's cap stops Bo, under his own.
    with pytest.raises(SpendingLimitReached) as refused:
        store.create_job(
            **new_job_fields(estimate_usd=Decimal("0.20")), owner=BO, guard=[team, bos_cap]
        )
    assert (refused.value.cap, refused.value.left) == (Decimal("1.00"), Decimal("0.10"))
    assert store.committed_spend(anas_cap)["today"] == Decimal("0.40")
    assert store.committed_spend(bos_cap)["today"] == Decimal("0.50")
    assert store.committed_spend(team)["today"] == Decimal("0.90")
    assert store.count_jobs() == 2


# -- the Studio ------------------------------------------------------------------------------


def send(engine: Studio, owner: str | None) -> object:
    return engine.submit(
        quick_draft(), submission_id=str(uuid.uuid4()), session_id="s", owner=owner
    )


def test_the_studio_sends_as_a_person_under_their_cap_and_the_teams(
    open_capped: Callable[..., Studio],  # noqa: F811
) -> None:
    engine = open_capped()
    engine.set_spending_limit(SpendingLimit(daily_usd=QUICK_PRICE * 3))
    engine.set_person_spending_limit("Ana@Example.com", SpendingLimit(daily_usd=QUICK_PRICE))

    first = send(engine, "Ana@Example.com")
    assert first.status is JobStatus.QUEUED
    assert first.owner == ANA
    assert engine.person_spending_limit(ANA) == SpendingLimit(daily_usd=QUICK_PRICE)
    (anas_today,) = engine.spending_status(BILLED, owner=ANA).periods
    assert (anas_today.cap, anas_today.left) == (QUICK_PRICE, Decimal(0))
    with pytest.raises(SpendingLimitReached):
        send(engine, ANA)
    # Bo has no cap of his own: the team's applies, with Ana's job counted in it.
    send(engine, BO)
    (bos_today,) = engine.spending_status(BILLED, owner=BO).periods
    assert (bos_today.cap, bos_today.left) == (QUICK_PRICE * 3, QUICK_PRICE)
    send(engine, BO)
    with pytest.raises(SpendingLimitReached):
        send(engine, BO)

    assert [job.owner for job in engine.history(JobFilter(owner=BO))] == [BO, BO]
    assert engine.totals("s", owner=ANA).all_time.billed.jobs == 1
    assert engine.totals("s").all_time.billed.jobs == 3
    people = engine.spend_by_person()
    assert [(row.email, row.today.billed.jobs) for row in people] == [(BO, 2), (ANA, 1)]


# -- who is who ------------------------------------------------------------------------------


def test_admins_come_from_the_environment_before_secrets() -> None:
    secrets = {"people": {"admins": ["Root@Example.com", " "]}}
    assert admins_from({}, secrets) == {"root@example.com"}
    assert admins_from({"WAN_STUDIO_ADMINS": " Ana@Example.com, bo@example.com,"}, secrets) == {
        ANA,
        BO,
    }
    assert admins_from({"WAN_STUDIO_ADMINS": "  "}, None) == frozenset()
    assert admins_from({}, {"people": "not a table"}) == frozenset()


def test_a_person_is_their_verified_email_lower_cased() -> None:
    admins = frozenset({ANA})
    ana = Person.from_claims({"email": "ANA@example.com", "name": "Ana"}, admins=admins)
    assert ana == Person(email=ANA, name="Ana", is_admin=True)
    bo = Person.from_claims({"email": BO, "email_verified": True}, admins=admins)
    assert bo == Person(email=BO, name=BO, is_admin=False)
    assert Person.from_claims({"email": BO, "email_verified": False}, admins=admins) is None
    assert Person.from_claims({"sub": "123"}, admins=admins) is None
