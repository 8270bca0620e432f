"""Variations through the whole engine: a batch of clips against the simulator, each its own job."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest

import simulator
from studio import watcher as watcher_module
from studio.generation import InvalidRequest, JobDraft
from studio.imagehost import DataUriHost
from studio.images import PreparedImage
from studio.jobs import Submitter
from studio.limits import SpendingLimit, SpendingLimitReached
from studio.records import BILLED, DEMO, JobFilter, JobStatus
from studio.service import Studio
from studio.store import JobStore
from studio.variations import VariationKind, Variations
from tests.plugins.engine import ENGINE_KEY, RequestLog, first_frame, quick_draft, wait_until
from tests.plugins.simulator import SUBMIT_PATH
from tests.unit.test_store import new_job_fields

NOT_SENT_WORDS = (
    "Not sent: the video service asked Wan Studio to slow down. Nothing was billed for this "
    "clip; send the clips that did not go again in a minute."
)
# The third submit sent with this key is refused as too many; the others go through.
THIRD_SUBMIT_LIMITED = f"{ENGINE_KEY}+rate_limit:endpoint=submit:every=3:count=3:retry_after=0"


def seeds(count: int) -> Variations:
    return Variations(VariationKind.SEEDS, count=count)


def submit_batch(studio: Studio, variations: Variations, draft: JobDraft | None = None, **options):
    options.setdefault("submission_id", str(uuid.uuid4()))
    options.setdefault("session_id", "s")
    return studio.submit_batch(draft or quick_draft(), variations, **options)


def all_finished(studio: Studio, batch_id: int) -> Callable[[], object]:
    def check():
        batch = studio.batch(batch_id)
        return batch if batch is not None and batch.done else None

    return check


def count_hosted_images(monkeypatch: pytest.MonkeyPatch) -> list[PreparedImage]:
    hosted: list[PreparedImage] = []
    url_for = DataUriHost.url_for

    def noting(host: DataUriHost, image: PreparedImage) -> str:
        hosted.append(image)
        return url_for(host, image)

    monkeypatch.setattr(DataUriHost, "url_for", noting)
    return hosted


def test_each_clip_is_its_own_job_sent_once(
    billed_studio: Studio,
    engine_gateway: simulator.RunningSimulator,
    request_log: RequestLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hosted = count_hosted_images(monkeypatch)

    batch = submit_batch(billed_studio, seeds(4), submission_id="click-1")

    assert batch.kind is VariationKind.SEEDS
    assert batch.size == 4
    assert all(job.task_id is not None for job in batch.jobs)  # each was accepted
    assert len(batch.went) == 4
    assert {job.mode for job in batch.jobs} == {BILLED}
    assert len({job.seed for job in batch.jobs}) == 4  # each clip drew its own seed
    assert len({job.task_id for job in batch.jobs}) == 4
    assert request_log.count(SUBMIT_PATH) == 4
    assert len(engine_gateway.tasks()) == 4
    assert len(hosted) == 1  # the clips share the frame: it is hosted once
    # A double click, or a second tab: the same batch, nothing sent.
    assert submit_batch(billed_studio, seeds(4), submission_id="click-1").id == batch.id
    assert request_log.count(SUBMIT_PATH) == 4

    done = wait_until(all_finished(billed_studio, batch.id), what="the batch")
    assert [job.status for job in done.jobs] == [JobStatus.SUCCEEDED] * 4
    assert done.cost_usd == sum(job.cost_usd for job in done.jobs) > 0
    assert done.pending_usd == 0
    assert billed_studio.batches() == [done]
    assert billed_studio.count_history(JobFilter(batch_id=batch.id)) == 4


def test_a_rate_limit_on_clip_3_holds_back_clip_4_and_the_rest_is_sent_once(
    open_studio: Callable[..., Studio],
    engine_gateway: simulator.RunningSimulator,
    request_log: RequestLog,
) -> None:
    studio = open_studio(api_key=THIRD_SUBMIT_LIMITED, base_url=engine_gateway.url)

    batch = submit_batch(studio, seeds(4))

    first, second, third, fourth = batch.jobs
    assert [first.task_id is not None, second.task_id is not None] == [True, True]
    assert [third.status, fourth.status] == [JobStatus.REJECTED] * 2
    assert "Nothing was billed" in (third.explanation or "")
    assert fourth.explanation == NOT_SENT_WORDS
    assert fourth.submitted_at is None
    assert request_log.count(SUBMIT_PATH) == 3  # clip 4 was never sent
    assert [job.id for job in batch.went] == [first.id, second.id]
    assert [job.id for job in batch.not_sent] == [third.id, fourth.id]

    again = studio.send_unsent(batch.id, submission_id="rest-1", session_id="s")

    resent = again.jobs[4:]
    assert all(job.task_id is not None for job in resent)
    assert [job.seed for job in resent] == [third.seed, fourth.seed]
    assert [again.clip_number(job) for job in resent] == [3, 4]
    assert [job.id for job in again.clips] == [first.id, second.id, *(job.id for job in resent)]
    assert again.not_sent == ()
    assert request_log.count(SUBMIT_PATH) == 5
    # The same click again, and another click: nothing more is sent.
    same_click = studio.send_unsent(batch.id, submission_id="rest-1", session_id="s")
    assert [job.id for job in same_click.jobs] == [job.id for job in again.jobs]
    studio.send_unsent(batch.id, submission_id="rest-2", session_id="s")
    assert request_log.count(SUBMIT_PATH) == 5
    assert len(engine_gateway.tasks()) == 4

    done = wait_until(all_finished(studio, batch.id), what="the batch")
    assert [job.status for job in done.clips] == [JobStatus.SUCCEEDED] * 4
    # The clips that were not sent were never billed.
    assert [studio.job(job.id).cost_usd for job in (third, fourth)] == [None, None]
    assert done.cost_usd == sum(job.cost_usd for job in done.clips)


def test_a_batch_with_problems_names_the_clip_and_writes_nothing(
    billed_studio: Studio, request_log: RequestLog
) -> None:
    too_long = "x" * (billed_studio.catalog.limits.prompt_max_chars + 1)

    with pytest.raises(InvalidRequest) as one_clip:
        submit_batch(billed_studio, Variations(VariationKind.PROMPTS, prompts=("waves", too_long)))
    with pytest.raises(InvalidRequest) as every_clip:
        submit_batch(billed_studio, seeds(3), quick_draft(image=None))
    with pytest.raises(InvalidRequest) as too_many:
        submit_batch(billed_studio, seeds(9))

    [problem] = one_clip.value.problems
    assert problem.message.startswith("Clip 2: ")
    [problem] = every_clip.value.problems  # said once, not once per clip
    assert problem.field == "image"
    assert not problem.message.startswith("Clip")
    assert [problem.field for problem in too_many.value.problems] == ["variations"]
    assert billed_studio.count_history() == 0
    assert billed_studio.batches() == []
    assert request_log.count(SUBMIT_PATH) == 0


def test_a_demo_batch_across_models(demo_studio: Studio) -> None:
    models = ("wan2.1-i2v-turbo", "wan2.2-i2v-flash")

    batch = submit_batch(demo_studio, Variations(VariationKind.MODELS, models=models))

    assert [job.model for job in batch.jobs] == list(models)
    assert {job.mode for job in batch.jobs} == {DEMO}
    assert len({job.image_sha256 for job in batch.jobs}) == 1
    done = wait_until(all_finished(demo_studio, batch.id), what="the demo batch")
    assert [job.status for job in done.jobs] == [JobStatus.SUCCEEDED] * 2
    assert demo_studio.batches(JobFilter(session_id="s")) == [done]
    assert demo_studio.batches(JobFilter(session_id="another")) == []


def test_a_batch_over_the_spending_limit_is_refused_whole_before_anything_is_sent(
    billed_studio: Studio, request_log: RequestLog, tmp_path
) -> None:
    billed_studio.set_spending_limit(SpendingLimit(daily_usd=Decimal("0.50")))
    images = sorted(tmp_path.rglob("images/**/*"))

    # 4 × $0.135 = $0.540 does not fit under $0.50, though three clips would.
    with pytest.raises(SpendingLimitReached) as refused:
        submit_batch(billed_studio, seeds(4), quick_draft(image=first_frame(shade=99)))

    assert refused.value.asked == Decimal("0.540")
    assert billed_studio.count_history() == 0
    assert billed_studio.batches() == []
    assert request_log.count(SUBMIT_PATH) == 0
    assert sorted(tmp_path.rglob("images/**/*")) == images  # not even its frame was kept
    batch = submit_batch(billed_studio, seeds(3))
    assert len(batch.went) == 3


class _ProcessStopped(BaseException):
    """Stands for the app process stopping mid-batch: nothing after it runs."""


def test_clips_whose_sender_stopped_before_their_turn_are_said_not_sent_and_sent_once_later(
    billed_studio: Studio,
    request_log: RequestLog,
    store_of: Callable[[Studio], JobStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deliver = Submitter._deliver
    delivered: list[int] = []

    def stopping_after_the_first(submitter: Submitter, job, payload, *, client):
        if delivered:
            raise _ProcessStopped
        delivered.append(job.id)
        return deliver(submitter, job, payload, client=client)

    monkeypatch.setattr(Submitter, "_deliver", stopping_after_the_first)
    with pytest.raises(_ProcessStopped):
        submit_batch(billed_studio, seeds(4), submission_id="click-stopped")
    monkeypatch.setattr(Submitter, "_deliver", deliver)
    store = store_of(billed_studio)
    batch = store.get_batch_by_submission("click-stopped")
    assert batch is not None
    waiting = [job for job in batch.jobs if job.id not in delivered]
    assert [job.status for job in waiting] == [JobStatus.SUBMITTING] * 3
    assert all(job.next_poll_at is not None for job in waiting)  # the watcher will come to them

    # The grace for a clip's turn has passed.
    for job in waiting:
        store.update(job.id, next_poll_at=job.created_at)
    billed_studio._watcher.wake()

    def all_said_not_sent():
        jobs = [billed_studio.job(job.id) for job in waiting]
        return jobs if all(job.status is JobStatus.REJECTED for job in jobs) else None

    said = wait_until(all_said_not_sent, what="the clips never sent")
    assert {job.explanation for job in said} == {
        "Not sent: Wan Studio stopped (it was closed or restarted) before it sent this clip. "
        "Nothing was billed for it; send it again."
    }
    assert all(job.cost_usd is None for job in said)
    assert request_log.count(SUBMIT_PATH) == 1

    billed_studio.send_unsent(batch.id, submission_id="rest", session_id="s")

    assert request_log.count(SUBMIT_PATH) == 4  # the three that never went, once each


def test_after_the_key_is_refused_the_other_clips_are_not_sent(
    open_studio: Callable[..., Studio],
    engine_gateway: simulator.RunningSimulator,
    request_log: RequestLog,
) -> None:
    studio = open_studio(api_key="not-the-account-key", base_url=engine_gateway.url)

    batch = submit_batch(studio, seeds(3))

    first, *rest = batch.jobs
    assert first.status is JobStatus.REJECTED
    assert "API key" in (first.explanation or "")
    assert [job.status for job in rest] == [JobStatus.REJECTED] * 2
    assert {job.explanation for job in rest} == {
        "Not sent: Pixazo did not accept the API key. Nothing was billed for this clip. "
        "Check the API key in Settings: it may be mistyped, expired or missing. "
        "Then send the clips that did not go."
    }
    assert request_log.count(SUBMIT_PATH) == 1


def test_a_clip_never_sent_with_a_key_nobody_holds_any_more_stops_holding_spend(
    billed_studio: Studio,
    store_of: Callable[[Studio], JobStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Written with a key typed in another browser session, whose process stopped before
    # sending it: after a restart no watcher holds that key, so none would ever claim the job.
    store = store_of(billed_studio)
    orphan, _ = store.create_job(**new_job_fields(key_fingerprint="typed-in-a-closed-tab"))
    sending, _ = store.create_job(**new_job_fields(key_fingerprint="typed-in-a-closed-tab"))
    store.transition(
        sending.id,
        expected=[JobStatus.SUBMITTING],
        status=JobStatus.SUBMITTING,
        unsent_only=True,
        submitted_at=sending.created_at,
    )
    monkeypatch.setattr(watcher_module, "UNSENT_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(watcher_module, "_NEVER_SENT_SWEEP", timedelta(0))

    billed_studio._watcher.wake()

    said = wait_until(
        lambda: (job := billed_studio.job(orphan.id)).status is JobStatus.REJECTED and job,
        what="the orphan clip said not sent",
    )
    assert said.explanation.startswith("Not sent: Wan Studio stopped")
    assert billed_studio.job(sending.id).status is JobStatus.SUBMITTING  # it may have gone


def test_a_batch_s_plan_says_everything_missing_at_once_and_holds_no_clip_while_blocked(
    demo_studio: Studio,
) -> None:
    no_model = Variations(VariationKind.MODELS, models=())
    planned = demo_studio.plan_batch(quick_draft(image=None), no_model)
    # No clip to check, yet the missing first frame is said with the missing models.
    assert [problem.field for problem in planned.problems] == ["variations", "image"]
    assert planned.drafts == []
    assert demo_studio.check_batch(quick_draft(image=None), no_model) == planned.problems

    ready = demo_studio.plan_batch(quick_draft(), seeds(3))
    assert ready.problems == []
    assert [draft.seed for draft in ready.drafts] == [
        draft.seed for draft in seeds(3).expand(quick_draft(), demo_studio.catalog)
    ]
