"""Sign-in's domain: who made each job, each person's history, totals and limits, administrators.

The store's tests run on SQLite and PostgreSQL; the Studio's send billed jobs to the simulator.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from studio import migrations
from studio.export import CSV_COLUMNS
from studio.limits import (
    TEAM_SCOPE,
    SpendGuard,
    SpendingLimit,
    SpendingLimitReached,
    day_and_month,
    person_scope,
)
from studio.migrations import MIGRATIONS, drafts, schema_version
from studio.people import Person, admins_from
from studio.records import BILLED, DEMO, JobFilter, JobStatus, KeptDraft
from studio.service import Studio
from studio.store import JobStore
from tests.plugins.engine import ENGINE_KEY, quick_draft
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


def test_a_draft_records_who_kept_it_and_opens_to_them_alone(store: JobStore) -> None:  # noqa: F811
    store.save_draft("anas-tab", '{"form": {}}', owner=ANA)
    store.save_draft("plain-tab", '{"form": {}}')

    anas = store.load_draft("anas-tab")
    assert anas == KeptDraft(body='{"form": {}}', owner=ANA)
    assert anas.open_to(" Ana@Example.com ")
    assert not anas.open_to(BO)
    assert anas.open_to(None)  # without sign-in there is one user
    kept_without_sign_in = store.load_draft("plain-tab")
    assert kept_without_sign_in == KeptDraft(body='{"form": {}}', owner=None)
    assert not kept_without_sign_in.open_to(ANA)
    assert store.load_draft("nobodys-tab") is None
    # Keeping it again keeps who kept it last.
    store.save_draft("anas-tab", '{"form": {"gen.prompt": "fox"}}', owner=ANA)
    assert store.load_draft("anas-tab") == KeptDraft(
        body='{"form": {"gen.prompt": "fox"}}', owner=ANA
    )


def test_drafts_kept_before_version_6_stay_and_are_nobodys(
    database_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = next(i for i, migration in enumerate(MIGRATIONS) if migration.version == 6)
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:before])
    monkeypatch.setattr(migrations, "LATEST_VERSION", 5)
    version_5_drafts = migrations._drafts_table(sa.MetaData())
    with JobStore.open(database_url) as old, old.engine.begin() as conn:
        conn.execute(
            sa.insert(version_5_drafts).values(session_id="tab", body="{}", updated_at=NOW)
        )
        assert "owner" not in {column["name"] for column in sa.inspect(conn).get_columns("drafts")}
    monkeypatch.undo()

    with JobStore.open(database_url) as migrated:
        assert migrated.load_draft("tab") == KeptDraft(body="{}", owner=None)
        migrated.save_draft("tab", "{}", owner=ANA)
        assert migrated.load_draft("tab") == KeptDraft(body="{}", owner=ANA)
        with migrated.engine.connect() as conn:
            columns = {column["name"] for column in sa.inspect(conn).get_columns("drafts")}
            versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
    assert columns == set(drafts.c.keys())
    assert sorted(versions) == [migration.version for migration in MIGRATIONS]


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


def exported_rows(engine: Studio, where: JobFilter) -> list[dict[str, str]]:
    exported = engine.export_csv(where).decode("utf-8")
    header, *rows = csv.reader(io.StringIO(exported))
    assert tuple(header) == CSV_COLUMNS
    return [dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows]


def test_the_export_says_who_made_each_job_and_holds_one_persons_jobs_when_asked(
    open_capped: Callable[..., Studio],  # noqa: F811
) -> None:
    engine = open_capped()
    anas = send(engine, "Ana@Example.com")
    bos = send(engine, BO)
    nobodys = send(engine, None)

    everyone = exported_rows(engine, JobFilter())
    made_by = {row["task id"]: row["made by (e-mail)"] for row in everyone}
    assert made_by == {anas.task_id: ANA, bos.task_id: BO, nobodys.task_id: ""}
    assert [row["task id"] for row in exported_rows(engine, JobFilter(owner=ANA))] == [anas.task_id]
    assert ENGINE_KEY not in engine.export_csv(JobFilter()).decode("utf-8")


def test_a_browser_session_is_open_to_the_person_whose_draft_and_jobs_it_holds(
    open_capped: Callable[..., Studio],  # noqa: F811
) -> None:
    engine = open_capped()
    send(engine, ANA)  # a job of Ana's in session "s", and no draft
    engine.save_draft("drafted", '{"form": {}}', owner="Bo@Example.com")

    assert engine.session_open_to("s", " ANA@example.com")
    assert not engine.session_open_to("s", BO)
    assert engine.session_open_to("drafted", BO)
    assert not engine.session_open_to("drafted", ANA)
    assert engine.session_open_to("nobody-was-here", BO)
    # Without sign-in there is one user, and every address is theirs.
    assert engine.session_open_to("s", None)
    assert engine.session_open_to("drafted", None)
    # A session with a job of Bo's beside Ana's draft is no longer Ana's alone.
    engine.save_draft("s", '{"form": {}}', owner=ANA)
    assert engine.session_open_to("s", ANA)
    send_in = engine.submit(
        quick_draft(), submission_id=str(uuid.uuid4()), session_id="s", owner=BO
    )
    assert send_in.owner == BO
    assert not engine.session_open_to("s", ANA)


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
