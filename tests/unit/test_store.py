"""The job store, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import itertools
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from studio import migrations
from studio.migrations import LATEST_VERSION, MIGRATIONS, SchemaTooNew, jobs, schema_version
from studio.records import BILLED, DEMO, JobFilter, JobStatus, ModeSpend, Spend
from studio.store import (
    IN_FLIGHT_STATUSES,
    EmptyDatabase,
    JobNotFound,
    JobStore,
    sqlite_url,
)
from tests.plugins import postgres as postgres_plugin

MODELS = ("wan2.2-i2v-plus", "wan2.2-i2v-flash", "wan2.1-i2v-plus", "wan2.1-i2v-turbo")
PRICES = {  # per 5-second clip, with three decimals to catch float drift
    "wan2.2-i2v-plus": Decimal("0.750"),
    "wan2.2-i2v-flash": Decimal("0.085"),
    "wan2.1-i2v-plus": Decimal("0.750"),
    "wan2.1-i2v-turbo": Decimal("0.175"),
}
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_submissions = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data" / "studio.db")
    return request.getfixturevalue("postgres_database_url")


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    with JobStore.open(database_url) as opened:
        yield opened


def new_job_fields(**overrides: Any) -> dict[str, Any]:
    """The arguments of ``create_job`` for a plausible job, with a fresh submission id."""
    fields: dict[str, Any] = {
        "submission_id": f"sub-{next(_submissions)}",
        "mode": BILLED,
        "session_id": "session-a",
        "model": "wan2.2-i2v-flash",
        "resolution": "480P",
        "duration": 5,
        "prompt": "a red fox runs through fresh snow",
        "negative_prompt": "blur",
        "prompt_extend": True,
        "watermark": False,
        "seed": 2147483647,
        "image_sha256": "a" * 64,
        "image_source": "fox.png",
        "last_frame_sha256": None,
        "estimate_usd": Decimal("0.085"),
        "output_width": 832,
        "output_height": 480,
        "key_fingerprint": "fp-a",
        "request_json": '{"model": "wan2.2-i2v-flash", "image_url": "image:' + "a" * 64 + '"}',
    }
    fields.update(overrides)
    return fields


def create(store: JobStore, **overrides: Any):
    job, created = store.create_job(**new_job_fields(**overrides))
    assert created
    return job


def make_due(store: JobStore, job_id: int, *, at: datetime = NOW - timedelta(seconds=1)):
    return store.transition(
        job_id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.QUEUED,
        task_id=f"task-{job_id}",
        submitted_at=at,
        next_poll_at=at,
    )


def bulk_row(index: int, **overrides: Any) -> dict[str, Any]:
    """One jobs-table row for bulk inserts, straight through SQLAlchemy Core."""
    row: dict[str, Any] = {
        "submission_id": f"bulk-{index}",
        "mode": BILLED,
        "session_id": None,
        "model": MODELS[0],
        "resolution": "480P",
        "duration": 5,
        "prompt": f"prompt {index}",
        "negative_prompt": "",
        "prompt_extend": True,
        "watermark": False,
        "seed": index,
        "image_sha256": f"{index:064x}",
        "image_source": None,
        "last_frame_sha256": None,
        "status": JobStatus.QUEUED,
        "created_at": NOW,
        "estimate_usd": Decimal("0.1"),
        "output_width": None,
        "output_height": None,
        "task_id": None,
        "polling_url": None,
        "submitted_at": None,
        "queued_at": None,
        "started_at": None,
        "finished_at": None,
        "error_code": None,
        "error_message": None,
        "explanation": None,
        "actual_prompt": None,
        "video_url": None,
        "video_path": None,
        "billed_seconds": None,
        "cost_usd": None,
        "key_fingerprint": None,
        "poll_count": 0,
        "next_poll_at": None,
        "lease_owner": None,
        "lease_until": None,
        "unknown_since": None,
        "deadline_at": None,
        "request_json": None,
    }
    row.update(overrides)
    return row


def bulk_insert(store: JobStore, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.insert(jobs), rows)


# -- creating -------------------------------------------------------------------------------


def test_create_job_writes_every_field_and_starts_submitting(store: JobStore) -> None:
    fields = new_job_fields()
    before = datetime.now(UTC)

    job, created = store.create_job(**fields)

    assert created
    assert job.status is JobStatus.SUBMITTING
    assert job.in_flight
    for name, value in fields.items():
        if name != "request_json":
            assert getattr(job, name) == value, name
    assert before - timedelta(seconds=1) <= job.created_at <= datetime.now(UTC)
    assert job.poll_count == 0
    assert job.lease_owner is None
    assert store.get(job.id) == job
    assert store.get_by_submission(fields["submission_id"]) == job
    assert store.get_request_json(job.id) == fields["request_json"]
    assert store.get(job.id + 1000) is None
    assert store.get_by_submission("nobody") is None


def test_same_submission_id_returns_the_first_job(store: JobStore) -> None:
    first, created = store.create_job(**new_job_fields(submission_id="click-1"))
    again, created_again = store.create_job(
        **new_job_fields(submission_id="click-1", prompt="a different prompt")
    )

    assert created
    assert not created_again
    assert again == first
    assert again.prompt == "a red fox runs through fresh snow"
    assert store.count_jobs() == 1


def test_concurrent_creates_with_one_submission_id_make_one_job(store: JobStore) -> None:
    threads = 6
    barrier = threading.Barrier(threads)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            barrier.wait()
            job, created = store.create_job(**new_job_fields(submission_id="double-click"))
            results.append((job.id, created))
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=submit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * (threads - 1) + [True]
    assert store.count_jobs() == 1


def test_create_job_refuses_an_unknown_mode(store: JobStore) -> None:
    with pytest.raises(ValueError, match="mode"):
        store.create_job(**new_job_fields(mode="free"))


# -- values round trip ----------------------------------------------------------------------


def test_money_round_trips_exactly_as_decimal(store: JobStore) -> None:
    job = create(store, estimate_usd=Decimal("0.085"))
    cost = Decimal("1234567.123456")

    updated = store.update(job.id, cost_usd=cost)

    assert isinstance(updated.estimate_usd, Decimal)
    assert updated.estimate_usd == Decimal("0.085")
    assert updated.cost_usd == cost
    assert store.get(job.id).cost_usd == cost
    with pytest.raises(TypeError, match="Decimal"):
        store.update(job.id, cost_usd=0.1)


def test_times_go_in_aware_and_come_out_utc(store: JobStore) -> None:
    job = create(store)
    beijing = timezone(timedelta(hours=8))
    submitted = datetime(2025, 3, 9, 1, 30, 15, 123456, tzinfo=beijing)

    updated = store.update(job.id, submitted_at=submitted)

    assert updated.submitted_at == submitted
    assert updated.submitted_at.utcoffset() == timedelta(0)
    assert updated.submitted_at.hour == 17
    assert updated.submitted_at.microsecond == 123456
    assert job.created_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        store.update(job.id, submitted_at=datetime(2025, 3, 9, 1, 30))
    with pytest.raises(ValueError, match="naive"):
        store.list_jobs(JobFilter(since=datetime(2025, 3, 9)))


# -- state changes --------------------------------------------------------------------------


def test_transition_applies_only_from_an_expected_status(store: JobStore) -> None:
    job = create(store)

    queued = store.transition(
        job.id, expected=[JobStatus.SUBMITTING], status=JobStatus.QUEUED, task_id="t-1"
    )
    stale = store.transition(
        job.id, expected=[JobStatus.SUBMITTING], status=JobStatus.UNCERTAIN, error_code="lost"
    )

    assert queued is not None
    assert queued.status is JobStatus.QUEUED
    assert queued.task_id == "t-1"
    assert stale is None
    current = store.get(job.id)
    assert current.status is JobStatus.QUEUED
    assert current.error_code is None
    assert store.transition(job.id + 99, expected=list(JobStatus), status=JobStatus.FAILED) is None


def test_update_refuses_unknown_and_read_only_fields(store: JobStore) -> None:
    job = create(store)

    assert store.update(job.id, poll_count=3, explanation="still running").poll_count == 3
    with pytest.raises(TypeError, match="colour"):
        store.update(job.id, colour="red")
    with pytest.raises(TypeError, match="submission_id"):
        store.update(job.id, submission_id="other")
    with pytest.raises(JobNotFound):
        store.update(job.id + 99, poll_count=1)


# -- leases ---------------------------------------------------------------------------------


def test_claim_due_leases_only_due_unleased_in_flight_jobs(store: JobStore) -> None:
    due = make_due(store, create(store).id)
    make_due(store, create(store).id, at=NOW + timedelta(minutes=5))  # not yet due
    create(store)  # submitting, no poll time: the submitter owns it
    finished = make_due(store, create(store).id)
    store.transition(finished.id, expected=[JobStatus.QUEUED], status=JobStatus.FAILED)

    claimed = store.claim_due("watcher-1", now=NOW, lease_seconds=30, limit=10)

    assert [job.id for job in claimed] == [due.id]
    assert claimed[0].lease_owner == "watcher-1"
    assert claimed[0].lease_until == NOW + timedelta(seconds=30)
    assert store.claim_due("watcher-2", now=NOW + timedelta(seconds=29)) == []
    assert store.next_due_at() == NOW + timedelta(seconds=30)


def test_expired_lease_is_claimable_by_another_watcher(store: JobStore) -> None:
    job = make_due(store, create(store).id)
    store.claim_due("watcher-1", now=NOW, lease_seconds=30)

    later = NOW + timedelta(seconds=31)
    reclaimed = store.claim_due("watcher-2", now=later, lease_seconds=30)

    assert [claimed.id for claimed in reclaimed] == [job.id]
    assert reclaimed[0].lease_owner == "watcher-2"
    # The first watcher lost it: it can neither release nor finish it any more.
    assert store.release(job.id, "watcher-1", next_poll_at=later) is None
    assert store.finish_with_lease(job.id, "watcher-1", status=JobStatus.FAILED) is None
    assert store.get(job.id).lease_owner == "watcher-2"


def test_release_by_the_owner_clears_the_lease_and_reschedules(store: JobStore) -> None:
    job = make_due(store, create(store).id)
    store.claim_due("watcher-1", now=NOW)
    next_poll = NOW + timedelta(seconds=7)

    released = store.release(
        job.id, "watcher-1", next_poll_at=next_poll, poll_count=1, status=JobStatus.RUNNING
    )

    assert released is not None
    assert released.lease_owner is None
    assert released.lease_until is None
    assert released.next_poll_at == next_poll
    assert released.status is JobStatus.RUNNING
    assert released.poll_count == 1
    assert store.claim_due("watcher-2", now=NOW + timedelta(seconds=6)) == []
    assert [j.id for j in store.claim_due("watcher-2", now=next_poll)] == [job.id]
    with pytest.raises(TypeError, match="lease_owner"):
        store.release(job.id, "watcher-2", next_poll_at=None, lease_owner="someone")


def test_claim_due_honours_limit_and_most_overdue_first(store: JobStore) -> None:
    ids = [
        make_due(store, create(store).id, at=NOW - timedelta(seconds=age)).id for age in (5, 50, 20)
    ]

    claimed = store.claim_due("watcher-1", now=NOW, limit=2)

    assert [job.id for job in claimed] == [ids[1], ids[2]]


def test_claim_due_filters_by_key_fingerprint(store: JobStore) -> None:
    with_a = make_due(store, create(store, key_fingerprint="fp-a").id)
    with_b = make_due(store, create(store, key_fingerprint="fp-b").id)
    keyless = make_due(store, create(store, key_fingerprint=None).id)

    assert store.claim_due("w", now=NOW, key_fingerprints=[]) == []
    assert store.next_due_at(key_fingerprints=["fp-b"]) == with_b.next_poll_at
    assert [j.id for j in store.claim_due("w", now=NOW, key_fingerprints=["fp-a"])] == [with_a.id]
    assert [j.id for j in store.claim_due("w", now=NOW, key_fingerprints=[None])] == [keyless.id]
    assert [j.id for j in store.claim_due("w", now=NOW, key_fingerprints=None)] == [with_b.id]


def test_two_stores_in_many_threads_never_claim_the_same_job(database_url: str) -> None:
    job_count = 60
    with JobStore.open(database_url) as setup:
        expected = {make_due(setup, create(setup).id).id for _ in range(job_count)}
    stores = [JobStore.open(database_url), JobStore.open(database_url)]
    claims: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def watch(owner: str, store: JobStore) -> None:
        won: list[int] = []
        try:
            barrier.wait()
            while batch := store.claim_due(owner, now=NOW, lease_seconds=600, limit=3):
                won += [job.id for job in batch]
        except BaseException as error:
            errors.append(error)
        claims[owner] = won

    workers = [
        threading.Thread(target=watch, args=(f"watcher-{n}", stores[n % 2])) for n in range(4)
    ]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        for opened in stores:
            opened.close()

    assert errors == []
    every_claim = [job_id for won in claims.values() for job_id in won]
    assert len(every_claim) == len(set(every_claim)), "a job was leased twice"
    assert set(every_claim) == expected


def test_finish_with_lease_records_the_cost_exactly_once(store: JobStore) -> None:
    job = make_due(store, create(store).id)
    assert store.finish_with_lease(job.id, "watcher-1", status=JobStatus.SUCCEEDED) is None
    store.claim_due("watcher-1", now=NOW)

    done = store.finish_with_lease(
        job.id,
        "watcher-1",
        status=JobStatus.SUCCEEDED,
        finished_at=NOW,
        billed_seconds=5,
        cost_usd=Decimal("0.085"),
        video_path="videos/1.mp4",
    )
    again = store.finish_with_lease(
        job.id, "watcher-1", status=JobStatus.SUCCEEDED, cost_usd=Decimal("0.085")
    )
    # A restarted watcher finds nothing to claim: the job is no longer in flight.
    after_restart = store.claim_due("watcher-2", now=NOW + timedelta(hours=1))

    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert done.has_video
    assert done.lease_owner is None
    assert done.next_poll_at is None
    assert again is None
    assert after_restart == []
    totals = store.totals(session_id="session-a", today_start=NOW - timedelta(days=1))
    assert totals.all_time.billed == Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085"))


def test_finish_with_lease_never_changes_a_final_job_even_for_its_lease_holder(
    store: JobStore,
) -> None:
    job = make_due(store, create(store).id)
    store.claim_due("watcher-1", now=NOW)
    # It ended by another path while watcher-1 still held the lease.
    store.transition(
        job.id,
        expected=[JobStatus.QUEUED],
        status=JobStatus.EXPIRED,
        billed_seconds=5,
        cost_usd=Decimal("0.085"),
    )
    assert store.get(job.id).lease_owner == "watcher-1"

    again = store.finish_with_lease(
        job.id, "watcher-1", status=JobStatus.SUCCEEDED, cost_usd=Decimal("0.170")
    )

    assert again is None
    after = store.get(job.id)
    assert (after.status, after.cost_usd) == (JobStatus.EXPIRED, Decimal("0.085"))
    totals = store.totals(session_id=None, today_start=NOW - timedelta(days=1))
    assert totals.all_time.billed == Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085"))


def test_renew_lease_extends_only_the_holders_lease_on_a_job_in_flight(store: JobStore) -> None:
    job = make_due(store, create(store).id)
    store.claim_due("watcher-1", now=NOW, lease_seconds=30)

    later = NOW + timedelta(seconds=20)
    assert store.renew_lease(job.id, "watcher-1", now=later, lease_seconds=30) == later + timedelta(
        seconds=30
    )
    assert store.get(job.id).lease_until == later + timedelta(seconds=30)
    # Past the first lease's end, nobody else can claim it.
    assert store.claim_due("watcher-2", now=NOW + timedelta(seconds=40)) == []
    # Someone who does not hold it cannot renew it.
    assert store.renew_lease(job.id, "watcher-2", now=later, lease_seconds=600) is None
    # Once the lease ran out and another watcher claimed the job, the first has lost it.
    reclaimed = store.claim_due("watcher-2", now=NOW + timedelta(seconds=51), lease_seconds=30)
    assert [claimed.id for claimed in reclaimed] == [job.id]
    assert (
        store.renew_lease(job.id, "watcher-1", now=NOW + timedelta(seconds=52), lease_seconds=30)
        is None
    )
    assert store.get(job.id).lease_owner == "watcher-2"
    # A final job's lease is not renewed.
    store.finish_with_lease(job.id, "watcher-2", status=JobStatus.FAILED)
    assert store.renew_lease(job.id, "watcher-2", now=NOW, lease_seconds=30) is None


def test_totals_count_a_billed_video_that_could_not_be_saved(store: JobStore) -> None:
    rows = [
        bulk_row(1, status=JobStatus.SUCCEEDED, billed_seconds=5, cost_usd=Decimal("0.085")),
        # Made and billed, but its link expired before it was saved.
        bulk_row(2, status=JobStatus.EXPIRED, billed_seconds=5, cost_usd=Decimal("0.085")),
        # Made and billed, still being saved (a full disk, a retried download).
        bulk_row(3, status=JobStatus.DOWNLOADING, billed_seconds=3, cost_usd=Decimal("0.051")),
        bulk_row(4, status=JobStatus.EXPIRED),  # recorded before costs were: nothing known
        bulk_row(5, status=JobStatus.FAILED),
    ]
    bulk_insert(store, rows)

    totals = store.totals(session_id=None, today_start=NOW - timedelta(days=1))

    assert totals.all_time.billed == Spend(jobs=5, videos=3, seconds=13, cost_usd=Decimal("0.221"))


def test_in_flight_jobs_and_next_due_at(store: JobStore) -> None:
    assert store.in_flight_jobs() == []
    assert store.next_due_at() is None
    submitting = create(store)
    later = make_due(store, create(store).id, at=NOW + timedelta(seconds=40))
    sooner = make_due(store, create(store).id, at=NOW + timedelta(seconds=10))
    store.transition(create(store).id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)

    in_flight = store.in_flight_jobs()

    assert [job.id for job in in_flight] == [submitting.id, later.id, sooner.id]
    assert all(job.status in IN_FLIGHT_STATUSES for job in in_flight)
    assert store.next_due_at() == sooner.next_poll_at


# -- history --------------------------------------------------------------------------------


def test_list_jobs_filters(store: JobStore) -> None:
    fox = create(store, prompt="A Red FOX in snow", session_id="s1", mode=DEMO)
    city = create(store, prompt="city at night", model="wan2.2-i2v-plus", image_source="Tokyo.jpg")
    extended = create(store, prompt="waves", session_id="s1")
    store.update(extended.id, actual_prompt="Slow waves under a red sky", status=JobStatus.RUNNING)
    percent = create(store, prompt="100% chance of rain_drops")

    def ids(**filters: Any) -> list[int]:
        listed = [job.id for job in store.list_jobs(JobFilter(**filters))]
        assert store.count_jobs(JobFilter(**filters)) == len(listed)
        return listed

    assert ids() == [percent.id, extended.id, city.id, fox.id]
    assert ids(text="red") == [extended.id, fox.id]
    assert ids(text="  tokyo ") == [city.id]
    assert ids(text="%") == [percent.id]
    assert ids(text="n_s") == []  # "_" is a character here, not a wildcard
    assert ids(text="rain_d") == [percent.id]
    assert ids(session_id="s1") == [extended.id, fox.id]
    assert ids(mode=DEMO) == [fox.id]
    assert ids(models=["wan2.2-i2v-plus"]) == [city.id]
    assert ids(statuses=[JobStatus.RUNNING]) == [extended.id]
    assert ids(statuses=[]) == []
    assert ids(session_id="s1", text="fox", mode=DEMO) == [fox.id]
    assert [job.id for job in store.list_jobs(limit=2)] == [percent.id, extended.id]
    assert [job.id for job in store.list_jobs(limit=2, offset=2)] == [city.id, fox.id]
    assert [job.id for job in store.list_jobs(newest_first=False, limit=1)] == [fox.id]


def test_list_jobs_by_creation_time(store: JobStore) -> None:
    bulk_insert(
        store, [bulk_row(hour, created_at=NOW - timedelta(hours=hour)) for hour in range(6)]
    )
    since, until = NOW - timedelta(hours=4), NOW - timedelta(hours=1)

    listed = store.list_jobs(JobFilter(since=since, until=until))

    assert [job.created_at for job in listed] == [NOW - timedelta(hours=h) for h in (2, 3, 4)]
    assert store.count_jobs(JobFilter(since=since)) == 5


def test_totals_split_by_session_day_model_and_mode(store: JobStore) -> None:
    yesterday = NOW - timedelta(days=1)
    cost = {"plus": Decimal("0.750"), "flash": Decimal("0.085")}
    rows = [
        # this session, today: a billed success, a billed failure, a demo success
        bulk_row(1, session_id="me", model="plus", status=JobStatus.SUCCEEDED,
                 billed_seconds=5, cost_usd=cost["plus"]),
        bulk_row(2, session_id="me", model="plus", status=JobStatus.FAILED),
        bulk_row(3, session_id="me", model="flash", mode=DEMO, status=JobStatus.SUCCEEDED,
                 billed_seconds=5, cost_usd=cost["flash"]),
        # another session, today: a billed success and one still running
        bulk_row(4, session_id="you", model="flash", status=JobStatus.SUCCEEDED,
                 billed_seconds=5, cost_usd=cost["flash"]),
        bulk_row(5, session_id="you", model="flash", status=JobStatus.RUNNING),
        # this session, yesterday
        bulk_row(6, session_id="me", model="plus", status=JobStatus.SUCCEEDED,
                 billed_seconds=5, cost_usd=cost["plus"], created_at=yesterday),
    ]  # fmt: skip
    bulk_insert(store, rows)

    totals = store.totals(session_id="me", today_start=NOW - timedelta(hours=12))

    assert totals.session == ModeSpend(
        billed=Spend(jobs=3, videos=2, seconds=10, cost_usd=Decimal("1.5")),
        demo=Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085")),
    )
    # The running job counts from the moment it was sent, as pending, at its estimate.
    running = {"pending": 1, "pending_usd": Decimal("0.1")}
    assert totals.today == ModeSpend(
        billed=Spend(jobs=4, videos=2, seconds=10, cost_usd=Decimal("0.835"), **running),
        demo=Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085")),
    )
    assert totals.all_time == ModeSpend(
        billed=Spend(jobs=5, videos=3, seconds=15, cost_usd=Decimal("1.585"), **running),
        demo=Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085")),
    )
    assert totals.by_model == {
        "flash": ModeSpend(
            billed=Spend(jobs=2, videos=1, seconds=5, cost_usd=Decimal("0.085"), **running),
            demo=Spend(jobs=1, videos=1, seconds=5, cost_usd=Decimal("0.085")),
        ),
        "plus": ModeSpend(billed=Spend(jobs=3, videos=2, seconds=10, cost_usd=Decimal("1.5"))),
    }
    assert isinstance(totals.all_time.billed.cost_usd, Decimal)
    nobody = store.totals(session_id=None, today_start=NOW + timedelta(seconds=1))
    assert nobody.session == ModeSpend()
    assert nobody.today == ModeSpend()


def test_totals_and_filters_over_ten_thousand_jobs(store: JobStore) -> None:
    statuses = (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RUNNING)
    rows = []
    for i in range(10_000):
        status = statuses[i % len(statuses)]
        model = MODELS[i % len(MODELS)]
        succeeded = status is JobStatus.SUCCEEDED
        rows.append(
            bulk_row(
                i,
                mode=DEMO if i % 3 == 0 else BILLED,
                session_id=f"session-{i % 7}",
                model=model,
                status=status,
                created_at=NOW - timedelta(minutes=i),
                prompt=f"clip {i}: " + ("a Sunset over hills" if i % 11 == 0 else "a city"),
                billed_seconds=5 if succeeded else None,
                cost_usd=PRICES[model] if succeeded else None,
            )
        )
    bulk_insert(store, rows)
    today_start = NOW - timedelta(hours=20)

    def expected_spend(selected: list[dict[str, Any]]) -> ModeSpend:
        def spend(mode: str) -> Spend:
            part = [row for row in selected if row["mode"] == mode]
            done = [row for row in part if row["status"] is JobStatus.SUCCEEDED]
            pending = [row for row in part if row["status"].in_flight]
            return Spend(
                jobs=len(part),
                videos=len(done),
                seconds=sum(row["billed_seconds"] for row in done),
                cost_usd=sum((row["cost_usd"] for row in done), Decimal(0)),
                pending=len(pending),
                pending_usd=sum((row["estimate_usd"] for row in pending), Decimal(0)),
            )

        return ModeSpend(billed=spend(BILLED), demo=spend(DEMO))

    totals = store.totals(session_id="session-3", today_start=today_start)

    assert totals.all_time == expected_spend(rows)
    assert totals.session == expected_spend([r for r in rows if r["session_id"] == "session-3"])
    assert totals.today == expected_spend([r for r in rows if r["created_at"] >= today_start])
    assert totals.by_model == {
        model: expected_spend([r for r in rows if r["model"] == model]) for model in sorted(MODELS)
    }
    assert totals.all_time.billed.cost_usd > 0

    since, until = NOW - timedelta(days=5), NOW - timedelta(days=1)
    filters = {
        "models": [MODELS[1], MODELS[3]],
        "statuses": [JobStatus.SUCCEEDED],
        "mode": BILLED,
        "since": since,
        "until": until,
        "text": "sunset",
    }
    expected = [
        row["submission_id"]
        for row in rows  # already newest first
        if row["model"] in filters["models"]
        and row["status"] is JobStatus.SUCCEEDED
        and row["mode"] == BILLED
        and since <= row["created_at"] < until
        and "sunset" in row["prompt"].lower()
    ]
    listed = store.list_jobs(JobFilter(**filters), limit=None)
    assert [job.submission_id for job in listed] == expected
    assert store.count_jobs(JobFilter(**filters)) == len(expected) > 0
    assert len(store.list_jobs(JobFilter(session_id="session-0"))) == 200


def test_recent_run_times_of_similar_successes_newest_first(store: JobStore) -> None:
    submitted = NOW - timedelta(hours=2)
    similar = [
        bulk_row(
            i,
            model="flash",
            status=JobStatus.SUCCEEDED,
            submitted_at=submitted,
            finished_at=submitted + timedelta(seconds=10 * (i + 1)),
        )
        for i in range(10)
    ]  # 10, 20, ..., 100 seconds
    others = [
        bulk_row(20, model="flash", resolution="720P", status=JobStatus.SUCCEEDED,
                 submitted_at=submitted, finished_at=submitted + timedelta(hours=1)),
        bulk_row(21, model="flash", status=JobStatus.FAILED,
                 submitted_at=submitted, finished_at=submitted + timedelta(hours=1)),
    ]  # fmt: skip
    bulk_insert(store, similar + others)

    def times(**options: Any) -> list[float]:
        return store.recent_run_times("flash", "480P", 5, mode=BILLED, from_start=False, **options)

    assert times() == [100.0 - 10 * i for i in range(10)]
    assert times(limit=3) == [100.0, 90.0, 80.0]
    assert store.recent_run_times("plus", "480P", 5, mode=BILLED, from_start=False) == []


def test_running_times_leave_the_queue_out(store: JobStore) -> None:
    submitted = NOW - timedelta(hours=2)
    rows = [
        bulk_row(
            i,
            model="flash",
            status=JobStatus.SUCCEEDED,
            submitted_at=submitted,
            # Queued for 0, 100, ..., 900 s; then always 60 + i seconds running.
            started_at=submitted + timedelta(seconds=100 * i),
            finished_at=submitted + timedelta(seconds=100 * i + 60 + i),
        )
        for i in range(10)
    ]
    never_seen_running = bulk_row(
        10, model="flash", status=JobStatus.SUCCEEDED, submitted_at=submitted,
        finished_at=submitted + timedelta(seconds=30),
    )  # fmt: skip
    bulk_insert(store, [*rows, never_seen_running])

    running = store.recent_run_times("flash", "480P", 5, mode=BILLED, from_start=True)

    assert running == [60.0 + i for i in reversed(range(10))]
    # Submit to finish mixes the queue in, and counts the job with no known start.
    total = store.recent_run_times("flash", "480P", 5, mode=BILLED, from_start=False)
    assert len(total) == 11
    assert max(total) > 900
    assert store.recent_run_times("flash", "720P", 5, mode=BILLED, from_start=True) == []
    assert store.latest_running_times(mode=BILLED, limit=2) == [
        ("flash", "480P", 5, 69.0),
        ("flash", "480P", 5, 68.0),
    ]


def test_run_times_of_the_two_gateways_never_mix(store: JobStore) -> None:
    started = NOW - timedelta(hours=1)
    rows = [
        bulk_row(
            i,
            mode=mode,
            model="plus",
            status=JobStatus.SUCCEEDED,
            submitted_at=started,
            started_at=started,
            finished_at=started + timedelta(seconds=seconds),
        )
        for i, (mode, seconds) in enumerate([(BILLED, 300), (BILLED, 310), (DEMO, 20)])
    ]
    bulk_insert(store, rows)

    def running(mode: str) -> list[float]:
        return store.recent_run_times("plus", "480P", 5, mode=mode, from_start=True)

    assert sorted(running(BILLED)) == [300.0, 310.0]
    assert running(DEMO) == [20.0]
    assert store.latest_running_times(mode=DEMO, limit=5) == [("plus", "480P", 5, 20.0)]


def test_a_job_whose_times_fell_on_one_moment_measures_nothing(store: JobStore) -> None:
    # Start and end clamped to one moment: a running time of 0 s would make a median of zero.
    started = NOW - timedelta(hours=1)
    rows = [
        bulk_row(
            i,
            model="plus",
            status=JobStatus.SUCCEEDED,
            submitted_at=started,
            started_at=started,
            finished_at=started + timedelta(seconds=seconds),
        )
        for i, seconds in enumerate([0, 40])
    ]
    bulk_insert(store, rows)

    assert store.recent_run_times("plus", "480P", 5, mode=BILLED, from_start=True) == [40.0]
    assert store.recent_run_times("plus", "480P", 5, mode=BILLED, from_start=False) == [40.0]
    assert store.latest_running_times(mode=BILLED, limit=5) == [("plus", "480P", 5, 40.0)]


# -- schema ---------------------------------------------------------------------------------


def test_opening_twice_keeps_data_and_migrates_once(database_url: str) -> None:
    with JobStore.open(database_url) as first:
        job = create(first)
    with JobStore.open(database_url) as second:
        assert second.get(job.id) == job
        with second.engine.connect() as conn:
            versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
            inspector = sa.inspect(conn)
            columns = {column["name"] for column in inspector.get_columns("jobs")}
            indexes = {index["name"] for index in inspector.get_indexes("jobs")}

    assert versions == [migration.version for migration in MIGRATIONS]
    assert columns == set(jobs.c.keys())
    assert indexes >= {index.name for index in jobs.indexes}


def test_concurrent_opens_of_a_new_database_migrate_once(database_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            barrier.wait()
            JobStore.open(database_url).close()
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=open_and_close) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    with JobStore.open(database_url) as opened, opened.engine.connect() as conn:
        applied = conn.execute(sa.select(sa.func.count()).select_from(schema_version)).scalar()
    assert applied == len(MIGRATIONS)


def test_a_version_1_database_keeps_each_jobs_last_frame_when_migrated(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A database as version 1 left it: the second image's column was called last_image_sha256.
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:1])
    monkeypatch.setattr(migrations, "LATEST_VERSION", 1)
    version_1_jobs = migrations._jobs_table(sa.MetaData(), last_frame_column="last_image_sha256")
    row = bulk_row(1)
    row["last_image_sha256"] = row.pop("last_frame_sha256") or "b" * 64
    with JobStore.open(database_url) as old, old.engine.begin() as conn:
        conn.execute(sa.insert(version_1_jobs).values(row))
    monkeypatch.undo()

    with JobStore.open(database_url) as migrated:
        (job,) = migrated.list_jobs()
        with migrated.engine.connect() as conn:
            columns = {column["name"] for column in sa.inspect(conn).get_columns("jobs")}
            versions = conn.execute(sa.select(schema_version.c.version)).scalars().all()
    assert job.last_frame_sha256 == "b" * 64
    assert job.image_sha256 == row["image_sha256"]
    assert "last_image_sha256" not in columns
    assert columns == set(jobs.c.keys())
    assert sorted(versions) == [migration.version for migration in MIGRATIONS]


def test_a_schema_newer_than_the_code_is_refused(database_url: str) -> None:
    with JobStore.open(database_url) as opened, opened.engine.begin() as conn:
        conn.execute(
            sa.insert(schema_version).values(
                version=LATEST_VERSION + 1, description="from the future", applied_at=NOW
            )
        )

    with pytest.raises(SchemaTooNew, match="upgrade"):
        JobStore.open(database_url)


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    with JobStore.open(sqlite_url(tmp_path / "studio.db")) as opened:
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert opened.dialect_name == "sqlite"


def test_in_memory_sqlite_and_unknown_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        JobStore.open("sqlite://")
    with pytest.raises(ValueError, match="unsupported"):
        JobStore.open("mysql://localhost/db")


@pytest.mark.postgres
def test_plain_postgresql_urls_use_psycopg(postgres_database_url: str) -> None:
    plain = sa.make_url(postgres_database_url).set(drivername="postgresql")

    with JobStore.open(plain.render_as_string(hide_password=False)) as opened:
        assert opened.engine.url.drivername == "postgresql+psycopg"
        assert "psycopg" in repr(opened)


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_postgresql_skips_locally_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)

    with pytest.raises(outcome, match="not found"):
        postgres_plugin._missing_postgres("PostgreSQL server binaries not found")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files (the common 022), restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(folder: Path) -> dict[str, int]:
    return {path.name: stat.S_IMODE(path.stat().st_mode) for path in folder.iterdir()}


def test_a_new_sqlite_database_and_its_wal_files_are_private(
    tmp_path: Path, open_umask: None
) -> None:
    folder = tmp_path / "data"
    with JobStore.open(sqlite_url(folder / "studio.db")) as opened:
        opened.create_job(**new_job_fields())
        modes = _modes(folder)
    assert {"studio.db", "studio.db-wal", "studio.db-shm"} <= set(modes)
    assert set(modes.values()) == {0o600}, modes


def test_an_existing_readable_sqlite_database_is_made_private(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "data" / "studio.db"
    with JobStore.open(sqlite_url(path)) as opened:
        made = opened.create_job(**new_job_fields())
    path.chmod(0o644)
    with JobStore.open(sqlite_url(path)) as opened:
        assert opened.get(made[0].id) is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_zero_byte_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "data" / "studio.db"
    path.parent.mkdir()
    path.touch()
    with pytest.raises(EmptyDatabase) as caught:
        JobStore.open(sqlite_url(path))
    assert str(caught.value).startswith(
        f"The history database at {path} is empty (0 bytes), so Wan Studio won't start over it"
    )
    assert path.stat().st_size == 0
    assert sorted(item.name for item in path.parent.iterdir()) == ["studio.db"]


def test_stores_racing_to_create_one_sqlite_database_all_open_it(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "data" / "studio.db")
    outcomes: list[object] = []
    start = threading.Barrier(8)

    def open_one() -> None:
        start.wait()
        try:
            with JobStore.open(url) as opened:
                outcomes.append(opened.dialect_name)
        except Exception as problem:  # the outcome is what the test checks
            outcomes.append(problem)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == ["sqlite"] * 8
    # Nothing but the database (and its WAL files) is left in the folder.
    assert {path.name for path in (tmp_path / "data").iterdir()} <= {
        "studio.db",
        "studio.db-wal",
        "studio.db-shm",
    }


def test_a_job_filter_is_one_value_however_its_lists_are_given() -> None:
    given = JobFilter(models=["wan2.2-i2v-flash"], statuses=["running"], text="  fox ")
    same = JobFilter(models=("wan2.2-i2v-flash",), statuses={JobStatus.RUNNING}, text="fox")
    assert given == same
    assert hash(given) == hash(same)
    assert given.statuses == (JobStatus.RUNNING,)
    assert JobFilter(text="   ").text is None
    assert JobFilter(models=[]).models == ()  # an empty list matches no job, unlike None


def test_starting_to_send_and_giving_up_on_an_unsent_job_cannot_both_win(store: JobStore) -> None:
    written = create(store)
    assert written.next_poll_at is not None  # due for the watcher if its sender never starts

    given_up = store.transition(
        written.id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.REJECTED,
        unsent_only=True,
    )
    started_late = store.transition(
        written.id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.SUBMITTING,
        unsent_only=True,
        submitted_at=NOW,
    )
    sending = create(store)
    store.transition(
        sending.id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.SUBMITTING,
        unsent_only=True,
        submitted_at=NOW,
    )
    given_up_while_sending = store.transition(
        sending.id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.REJECTED,
        unsent_only=True,
    )

    assert given_up is not None
    assert given_up.status is JobStatus.REJECTED
    assert started_late is None
    assert given_up_while_sending is None
    assert store.get(sending.id).status is JobStatus.SUBMITTING
