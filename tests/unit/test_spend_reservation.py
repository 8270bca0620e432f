"""A spending limit is checked and reserved in the transaction that writes the job."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import types
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from studio.limits import SpendGuard, SpendingLimit, SpendingLimitReached, day_and_month
from studio.records import DEMO, JobStatus
from studio.store import JobStore
from tests.unit.test_store import database_url, new_job_fields, store  # noqa: F401 - fixtures

NOW = datetime.now(UTC)
ONE_DOLLAR_A_DAY = SpendingLimit(daily_usd=Decimal("1.00"))


def guard(limit: SpendingLimit = ONE_DOLLAR_A_DAY) -> SpendGuard:
    day, month = day_and_month(NOW, ZoneInfo("Europe/Berlin"))
    return SpendGuard(scope="team", limit=limit, day=day, month=month)


def test_a_job_that_would_go_over_the_limit_is_refused_and_not_written(
    store: JobStore,  # noqa: F811
) -> None:
    for _ in range(2):
        store.create_job(**new_job_fields(estimate_usd=Decimal("0.40")), guard=guard())

    with pytest.raises(SpendingLimitReached) as refused:
        store.create_job(**new_job_fields(estimate_usd=Decimal("0.25")), guard=guard())

    assert refused.value.left == Decimal("0.20")
    assert store.count_jobs() == 2
    assert store.committed_spend(guard()) == {
        "today": Decimal("0.80"),
        "this month": Decimal("0.80"),
    }


def test_a_refused_job_releases_its_reservation_and_a_billed_cost_replaces_it(
    store: JobStore,  # noqa: F811
) -> None:
    refused, _ = store.create_job(**new_job_fields(estimate_usd=Decimal("0.90")), guard=guard())
    store.transition(refused.id, expected=[JobStatus.SUBMITTING], status=JobStatus.REJECTED)
    billed, _ = store.create_job(**new_job_fields(estimate_usd=Decimal("0.50")), guard=guard())
    store.update(billed.id, status=JobStatus.SUCCEEDED, cost_usd=Decimal("0.30"))

    assert store.committed_spend(guard())["today"] == Decimal("0.30")
    store.create_job(**new_job_fields(estimate_usd=Decimal("0.70")), guard=guard())


def test_demo_jobs_never_count_and_a_second_click_reserves_nothing_more(
    store: JobStore,  # noqa: F811
) -> None:
    store.create_job(**new_job_fields(mode=DEMO, estimate_usd=Decimal("5")), guard=guard())
    fields = new_job_fields(estimate_usd=Decimal("0.60"))
    store.create_job(**fields, guard=guard())

    _, created = store.create_job(**fields, guard=guard())

    assert not created
    assert store.committed_spend(guard())["today"] == Decimal("0.60")


def test_racing_submits_for_the_last_dollar_cannot_both_pass(database_url: str) -> None:  # noqa: F811
    threads_count = 8
    passed: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(threads_count)

    def submit(index: int) -> None:
        with JobStore.open(database_url) as own_store:
            start.wait()
            try:
                own_store.create_job(**new_job_fields(estimate_usd=Decimal("0.30")), guard=guard())
                passed.append(index)
            except SpendingLimitReached:
                refused.append(index)

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(passed) == 3  # 3 × $0.30 fits under $1.00; a fourth would not
    assert len(refused) == threads_count - 3
    with JobStore.open(database_url) as check:
        assert check.committed_spend(guard())["today"] == Decimal("0.90")


def test_a_double_click_racing_itself_at_the_limit_gets_its_one_job(database_url: str):  # noqa: F811
    clicks = 8
    fields = new_job_fields(estimate_usd=Decimal("0.60"))
    answers: list[tuple[int, bool] | str] = []
    start = threading.Barrier(clicks)

    def click() -> None:
        with JobStore.open(database_url) as own_store:
            start.wait()
            try:
                job, created = own_store.create_job(**fields, guard=guard())
                answers.append((job.id, created))
            except SpendingLimitReached as refused:
                answers.append(str(refused))

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # One job, written once; the other clicks are handed that job, not refused for its price.
    assert all(isinstance(answer, tuple) for answer in answers), answers
    assert len({answer[0] for answer in answers}) == 1
    assert sorted(created for _, created in answers) == [False] * (clicks - 1) + [True]


def _submit_in_own_process(url: str, spend_guard: SpendGuard, start: Any, results: Any) -> None:
    # Runs in a child process: its own interpreter, its own JobStore and connections.
    with JobStore.open(url) as own_store:
        fields = new_job_fields(
            submission_id=f"process-{uuid.uuid4()}", estimate_usd=Decimal("0.30")
        )
        start.wait()
        try:
            own_store.create_job(**fields, guard=spend_guard)
            results.put("passed")
        except SpendingLimitReached:
            results.put("refused")


def test_processes_racing_for_the_last_dollars_cannot_all_pass(
    database_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    processes_count = 5
    spawn = multiprocessing.get_context("spawn")  # no inherited connections or threads
    # A spawned child first runs this process's main module. After a page test, Streamlit has
    # left the app's script there, which would run in each child instead of the race.
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    start = spawn.Barrier(processes_count)
    results = spawn.Queue()
    JobStore.open(database_url).close()  # the schema, made once before the race
    processes = [
        spawn.Process(target=_submit_in_own_process, args=(database_url, guard(), start, results))
        for _ in range(processes_count)
    ]
    for process in processes:
        process.start()
    outcomes = sorted(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert outcomes == ["passed"] * 3 + ["refused"] * 2  # 3 × $0.30 fit under $1.00
    with JobStore.open(database_url) as check:
        assert check.committed_spend(guard())["today"] == Decimal("0.90")
        assert check.count_jobs() == 3
