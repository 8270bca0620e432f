"""Favourites in the store: marked and unmarked, kept apart from every other change, filtered."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from studio.records import JobFilter, JobStatus
from studio.service import Studio
from studio.store import JobNotFound, JobStore
from tests.plugins.engine import ENGINE_KEY, finished, quick_draft, wait_until
from tests.unit.test_store import create, database_url, store  # noqa: F401 - fixtures


def test_a_job_is_marked_and_unmarked_as_a_favourite(store: JobStore) -> None:  # noqa: F811
    job = create(store)
    assert job.favourite is False

    marked = store.set_favourite(job.id, True)
    assert marked.favourite is True
    assert store.get(job.id).favourite is True

    unmarked = store.set_favourite(job.id, False)
    assert unmarked.favourite is False
    assert store.get(job.id).favourite is False


def test_marking_changes_nothing_else_and_survives_the_job_finishing(
    store: JobStore,  # noqa: F811
) -> None:
    job = create(store)
    store.set_favourite(job.id, True)
    finished = store.update(job.id, status=JobStatus.SUCCEEDED, cost_usd=Decimal("0.085"))

    assert finished.favourite is True
    again = store.set_favourite(job.id, True)
    assert again == finished


def test_a_missing_job_cannot_be_marked(store: JobStore) -> None:  # noqa: F811
    with pytest.raises(JobNotFound):
        store.set_favourite(404, True)


def test_favourites_only_narrows_lists_and_counts(store: JobStore) -> None:  # noqa: F811
    kept = create(store, prompt="the one to keep")
    other = create(store, prompt="an ordinary clip")
    create(store, prompt="another ordinary clip")
    store.set_favourite(kept.id, True)
    store.set_favourite(other.id, True)
    store.set_favourite(other.id, False)

    favourites = JobFilter(favourites_only=True)
    assert [job.id for job in store.list_jobs(favourites)] == [kept.id]
    assert store.count_jobs(favourites) == 1
    assert store.count_jobs(JobFilter(favourites_only=False)) == 3
    # With the other filters, as History combines them.
    assert store.count_jobs(JobFilter(favourites_only=True, text="ordinary")) == 0
    assert store.count_jobs(JobFilter(favourites_only=True, text="keep")) == 1


def test_a_billed_favourites_settings_file_never_holds_the_key(billed_studio: Studio) -> None:
    job = billed_studio.submit(quick_draft(), submission_id="fav-1", session_id="s")
    done = wait_until(finished(billed_studio, job), what="the job to finish")
    assert done.status is JobStatus.SUCCEEDED

    marked = billed_studio.set_favourite(done.id, True)
    settings = billed_studio.settings_json(marked)

    assert billed_studio.history(JobFilter(favourites_only=True)) == [marked]
    assert json.loads(settings)["model_label"] == "Wan 2.1 Turbo"
    assert ENGINE_KEY.encode() not in settings
    assert (marked.key_fingerprint or "").encode() not in settings
