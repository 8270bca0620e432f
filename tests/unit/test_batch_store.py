"""Batches in the store: one transaction for the batch, its clips and their reservation."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from studio.limits import SpendGuard, SpendingLimit, SpendingLimitReached, day_and_month
from studio.records import DEMO, JobFilter, JobStatus
from studio.store import JobStore, clip_submission_id
from studio.variations import VariationKind
from tests.plugins.engine import a_job
from tests.unit.test_store import database_url, new_job_fields, store  # noqa: F401 - fixtures


def clip(**overrides: Any) -> dict[str, Any]:
    """One clip's job fields, as ``create_batch`` takes them (no submission id)."""
    fields = new_job_fields(**overrides)
    del fields["submission_id"]
    return fields


def guard(daily_usd: str = "1.00") -> SpendGuard:
    day, month = day_and_month(datetime.now(UTC), ZoneInfo("Europe/Berlin"))
    return SpendGuard(
        scope="team", limit=SpendingLimit(daily_usd=Decimal(daily_usd)), day=day, month=month
    )


def test_a_batch_is_written_with_every_clip_in_order(store: JobStore) -> None:  # noqa: F811
    clips = [clip(seed=seed) for seed in (11, 12, 13)]

    batch, created = store.create_batch(
        submission_id="click-1", session_id="session-a", kind=VariationKind.SEEDS, clips=clips
    )

    assert created
    assert (batch.submission_id, batch.session_id, batch.size) == ("click-1", "session-a", 3)
    assert batch.kind is VariationKind.SEEDS
    assert [job.seed for job in batch.jobs] == [11, 12, 13]
    assert [job.submission_id for job in batch.jobs] == ["click-1/1", "click-1/2", "click-1/3"]
    assert {job.batch_id for job in batch.jobs} == {batch.id}
    assert all(job.status is JobStatus.SUBMITTING for job in batch.jobs)
    assert store.get_batch(batch.id) == batch
    assert store.get_batch_by_submission("click-1") == batch
    assert store.get_batch(batch.id + 1) is None
    # History's "this batch only".
    store.create_job(**new_job_fields())
    assert [job.id for job in store.list_jobs(JobFilter(batch_id=batch.id))] == [
        job.id for job in reversed(batch.jobs)
    ]
    assert store.count_jobs(JobFilter(batch_id=batch.id)) == 3
    assert store.count_jobs() == 4


def test_the_same_submission_id_again_returns_the_batch_and_writes_nothing(
    store: JobStore,  # noqa: F811
) -> None:
    first, _ = store.create_batch(
        submission_id="click-1", session_id="s", kind="seeds", clips=[clip(), clip()]
    )

    again, created = store.create_batch(
        submission_id="click-1", session_id="s", kind="prompts", clips=[clip()] * 5
    )

    assert not created
    assert again == first
    assert store.count_jobs() == 2


def test_a_batch_is_all_or_nothing(store: JobStore) -> None:  # noqa: F811
    # The third clip's job cannot be written (its submission id is taken): nothing of the batch
    # may stay behind, not the batch and not the first two clips.
    store.create_job(**new_job_fields(submission_id=clip_submission_id("click-1", 3)))

    with pytest.raises(sa.exc.IntegrityError):
        store.create_batch(
            submission_id="click-1", session_id="s", kind="seeds", clips=[clip()] * 4
        )

    assert store.get_batch_by_submission("click-1") is None
    assert store.count_jobs() == 1
    assert store.list_batches() == []


def test_one_submission_id_from_two_threads_makes_one_batch(database_url: str) -> None:  # noqa: F811
    threads_count = 2
    start = threading.Barrier(threads_count)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            with JobStore.open(database_url) as own_store:
                start.wait()
                batch, created = own_store.create_batch(
                    submission_id="double-click",
                    session_id="s",
                    kind="seeds",
                    clips=[clip(), clip(), clip()],
                    guard=guard("10.00"),
                )
                results.append((batch.id, created))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=submit) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len({batch_id for batch_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, True]
    with JobStore.open(database_url) as check:
        assert check.count_jobs() == 3
        assert len(check.list_batches()) == 1


def test_the_limit_refuses_a_whole_batch_that_does_not_fit(store: JobStore) -> None:  # noqa: F811
    store.create_job(**new_job_fields(estimate_usd=Decimal("0.30")), guard=guard())
    clips = [clip(estimate_usd=Decimal("0.25")) for _ in range(3)]  # 0.30 + 0.75 > 1.00

    with pytest.raises(SpendingLimitReached) as refused:
        store.create_batch(
            submission_id="click-1", session_id="s", kind="seeds", clips=clips, guard=guard()
        )

    assert refused.value.asked == Decimal("0.75")
    assert refused.value.left == Decimal("0.70")
    assert store.count_jobs() == 1
    assert store.list_batches() == []
    # Two clips fit, and reserve their estimates until they end.
    store.create_batch(
        submission_id="click-2", session_id="s", kind="seeds", clips=clips[:2], guard=guard()
    )
    assert store.committed_spend(guard())["today"] == Decimal("0.80")


def test_a_demo_batch_never_counts_against_the_limit(store: JobStore) -> None:  # noqa: F811
    clips = [clip(mode=DEMO, estimate_usd=Decimal("5")) for _ in range(3)]

    _, created = store.create_batch(
        submission_id="click-1", session_id="s", kind="seeds", clips=clips, guard=guard()
    )

    assert created
    assert store.committed_spend(guard())["today"] == Decimal(0)


def test_batches_are_listed_newest_first_and_by_session(store: JobStore) -> None:  # noqa: F811
    older, _ = store.create_batch(
        submission_id="a", session_id="one", kind="seeds", clips=[clip(session_id="one")] * 2
    )
    newer, _ = store.create_batch(
        submission_id="b", session_id="two", kind="seeds", clips=[clip(session_id="two")] * 2
    )
    store.create_job(**new_job_fields(session_id="one"))  # a single clip is no batch

    assert [batch.id for batch in store.list_batches()] == [newer.id, older.id]
    assert store.list_batches(JobFilter(session_id="one")) == [older]
    assert store.list_batches(limit=1) == [newer]


def test_sending_again_writes_one_attempt_per_unsent_clip_once(store: JobStore) -> None:  # noqa: F811
    batch, _ = store.create_batch(
        submission_id="click-1", session_id="s", kind="seeds", clips=[clip()] * 4
    )
    first, second, third, fourth = batch.jobs
    store.transition(second.id, expected=[JobStatus.SUBMITTING], status=JobStatus.QUEUED)
    for job in (third, fourth):
        store.transition(job.id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)
    # Clip 1 went too; asking for it again must not write it again.
    store.transition(first.id, expected=[JobStatus.SUBMITTING], status=JobStatus.QUEUED)
    asked = {number: clip(seed=number) for number in (1, 3, 4)}

    now, written = store.add_to_batch(batch.id, submission_id="rest-1", clips=asked)

    assert [job.seed for job in written] == [3, 4]
    assert [job.submission_id for job in written] == ["click-1/3/rest-1", "click-1/4/rest-1"]
    assert [job.id for job in now.clips] == [first.id, second.id, *(job.id for job in written)]
    assert now.not_sent == ()
    # The same click again, or a click from another tab: nothing more.
    assert store.add_to_batch(batch.id, submission_id="rest-1", clips=asked)[1] == []
    assert store.add_to_batch(batch.id, submission_id="rest-2", clips=asked)[1] == []
    assert store.count_jobs(JobFilter(batch_id=batch.id)) == 6
    with pytest.raises(LookupError):
        store.add_to_batch(batch.id + 1, submission_id="rest-3", clips=asked)


def test_a_batch_says_what_went_what_did_not_and_what_it_costs() -> None:
    from studio.records import Batch

    jobs = (
        a_job(id=1, submission_id="b/1", cost_usd=Decimal("0.135")),
        a_job(id=2, submission_id="b/2", status=JobStatus.RUNNING, estimate_usd=Decimal("0.2")),
        a_job(id=3, submission_id="b/3", status=JobStatus.REJECTED),
        a_job(id=4, submission_id="b/4", status=JobStatus.REJECTED),
        a_job(id=5, submission_id="b/5", status=JobStatus.SUBMITTING, submitted_at=None),
        a_job(id=6, submission_id="b/3/again", status=JobStatus.QUEUED, estimate_usd=Decimal("1")),
    )
    batch = Batch(
        id=1, submission_id="b", session_id="s", kind="seeds", size=5,
        created_at=datetime(2026, 1, 5, tzinfo=UTC), jobs=jobs,
    )  # fmt: skip

    assert [job.id for job in batch.clips] == [1, 2, 6, 4, 5]
    assert [job.id for job in batch.went] == [1, 2, 6]
    assert [job.id for job in batch.not_sent] == [4]
    assert batch.cost_usd == Decimal("0.135")
    assert batch.pending_usd == Decimal("1.335")  # a clip waiting its turn holds its estimate too
    assert not batch.done
    finished = replace(batch, jobs=(jobs[0], jobs[2], jobs[3]))
    assert finished.done


def test_a_clip_refused_again_is_sent_again_by_a_new_click_only(store: JobStore) -> None:  # noqa: F811
    batch, _ = store.create_batch(
        submission_id="click-1", session_id="s", kind="seeds", clips=[clip()] * 2
    )
    store.transition(batch.jobs[0].id, expected=[JobStatus.SUBMITTING], status=JobStatus.QUEUED)
    store.transition(batch.jobs[1].id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)
    _, [second] = store.add_to_batch(batch.id, submission_id="rest-1", clips={2: clip()})
    store.transition(second.id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)

    # A double click on the first "send the rest" must not send the clip a third time.
    assert store.add_to_batch(batch.id, submission_id="rest-1", clips={2: clip()})[1] == []
    now, [third] = store.add_to_batch(batch.id, submission_id="rest-2", clips={2: clip()})

    assert third.submission_id == "click-1/2/rest-2"
    assert [job.id for job in now.clips] == [batch.jobs[0].id, third.id]


def test_two_tabs_sending_the_rest_at_once_write_one_attempt(database_url: str) -> None:  # noqa: F811
    with JobStore.open(database_url) as setup:
        batch, _ = setup.create_batch(
            submission_id="click-1", session_id="s", kind="seeds", clips=[clip()] * 3
        )
        for job in batch.jobs[1:]:
            setup.transition(job.id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)
    tabs = 4
    start = threading.Barrier(tabs)
    written: list[int] = []
    errors: list[BaseException] = []

    def send_the_rest(tab: int) -> None:
        try:
            with JobStore.open(database_url) as own_store:
                start.wait()
                _, jobs = own_store.add_to_batch(
                    batch.id, submission_id=f"tab-{tab}", clips={2: clip(), 3: clip()}
                )
                written.extend(job.id for job in jobs)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=send_the_rest, args=(tab,)) for tab in range(tabs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(written) == 2
    with JobStore.open(database_url) as check:
        assert check.count_jobs(JobFilter(batch_id=batch.id)) == 5


def test_the_limit_refuses_sending_the_rest_when_it_does_not_fit(store: JobStore) -> None:  # noqa: F811
    clips = [clip(estimate_usd=Decimal("0.40")) for _ in range(2)]
    batch, _ = store.create_batch(
        submission_id="click-1", session_id="s", kind="seeds", clips=clips, guard=guard()
    )
    store.transition(batch.jobs[1].id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)
    store.create_job(**new_job_fields(estimate_usd=Decimal("0.30")), guard=guard())

    with pytest.raises(SpendingLimitReached):
        store.add_to_batch(batch.id, submission_id="rest-1", clips={2: clips[1]}, guard=guard())

    assert store.count_jobs() == 3
    assert store.get_batch(batch.id).not_sent == (store.get(batch.jobs[1].id),)
