"""The History page: totals kept apart by mode, filters, an opened job, reuse and export."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from studio.records import BILLED, DEMO, JobStatus
from tests.ui.conftest import JobMaker, texts


def _history(app: AppTest) -> AppTest:
    return app.switch_page("pages/history.py").run()


def _table_prompts(app: AppTest) -> list[str]:
    return list(app.dataframe[-1].value["Prompt"])  # the jobs table comes last


def test_totals_keep_billed_and_demo_apart(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-plus", resolution="1080P", cost="0.75")
    jobs.make(mode=BILLED, model="wan2.2-i2v-flash", resolution="720P", cost="0.225")
    jobs.make(mode=DEMO, prompt="a demo clip")
    jobs.make(mode=BILLED, status=JobStatus.FAILED, prompt="refused by the filter")
    _history(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["All time"] == "$0.975"
    assert metrics["Today"] == "$0.975"
    assert metrics["This session"] == "$0.00"
    said = texts(app)
    assert "2 videos billed, 10 s · 1 video in demo (free)" in said
    by_model = app.dataframe[0].value  # the by-model table comes first, above the jobs
    assert set(by_model["Model"]) == {"Wan 2.2 Plus", "Wan 2.2 Flash"}
    assert app.download_button(key="hist.export").label == "Export CSV"
    assert not app.exception


def test_filters_narrow_the_table(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(
        mode=BILLED,
        model="wan2.2-i2v-plus",
        resolution="1080P",
        cost="0.75",
        prompt="sunrise over the lake",
    )
    jobs.make(mode=DEMO, model="wan2.2-i2v-flash", prompt="a cat stretching")
    jobs.make(mode=DEMO, model="wan2.2-i2v-flash", status=JobStatus.FAILED, prompt="a dog running")
    _history(app)
    assert sorted(_table_prompts(app)) == [
        "a cat stretching",
        "a dog running",
        "sunrise over the lake",
    ]

    app.multiselect(key="hist.models").set_value(["wan2.2-i2v-flash"]).run()
    assert sorted(_table_prompts(app)) == ["a cat stretching", "a dog running"]

    app.multiselect(key="hist.statuses").set_value([JobStatus.FAILED]).run()
    assert _table_prompts(app) == ["a dog running"]

    app.multiselect(key="hist.statuses").set_value([]).run()
    app.multiselect(key="hist.models").set_value([]).run()
    app.text_input(key="hist.text").set_value("SUNRISE").run()
    assert _table_prompts(app) == ["sunrise over the lake"]

    app.text_input(key="hist.text").set_value("").run()
    app.segmented_control(key="hist.mode").set_value("Demo only").run()
    assert sorted(_table_prompts(app)) == ["a cat stretching", "a dog running"]

    app.selectbox(key="hist.when").set_value("Today").run()
    assert len(_table_prompts(app)) == 2

    app.text_input(key="hist.text").set_value("nothing like this").run()
    assert "No jobs match" in texts(app)
    assert not app.exception


def test_an_opened_job_plays_and_its_settings_fill_the_form(app: AppTest, jobs: JobMaker) -> None:
    job = jobs.make(
        mode=DEMO, model="wan2.2-i2v-flash", resolution="480P", prompt="waves at dusk", seed=4242
    )
    _history(app)
    assert not app.get("video")
    app.selectbox(key="hist.open").set_value(job.id).run()
    videos = app.get("video")
    assert len(videos) == 1
    assert videos[0].proto.url
    assert app.download_button(key="hist.download").label == "Download video"

    app.button(key="hist.reuse").click().run()
    assert app.selectbox(key="gen.model").value == "wan2.2-i2v-flash"
    assert app.segmented_control(key="gen.resolution").value == "480P"
    assert app.text_area(key="gen.prompt").value == "waves at dusk"
    assert app.text_area(key="gen.negative_prompt").value == "blurry"
    assert app.toggle(key="gen.prompt_extend").value is False
    assert app.toggle(key="gen.watermark").value is True
    assert app.toggle(key="gen.random_seed").value is False
    assert app.number_input(key="gen.seed").value == 4242
    said = texts(app)
    assert f"The settings of job #{job.id} are in the form" in said
    assert "shore.jpg" in said
    assert not app.button(key="gen.submit").disabled
    assert not app.exception


def test_no_jobs_at_all_points_to_generate(app: AppTest) -> None:
    _history(app)
    said = texts(app)
    assert "No videos yet." in said
    assert not app.dataframe
    assert not app.metric
    assert not app.exception


def test_the_table_says_the_day_and_a_short_cost(app: AppTest, jobs: JobMaker) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-plus", resolution="1080P", cost="0.75")
    jobs.make(mode=DEMO, prompt="a demo clip")
    jobs.make(mode=BILLED, status=JobStatus.FAILED, prompt="refused by the filter")
    # A submit whose answer was lost may still be charged.
    jobs.make(mode=BILLED, status=JobStatus.UNCERTAIN, prompt="maybe sent", cost="0.2")
    _history(app)
    table = app.dataframe[-1].value
    assert all(re.fullmatch(r"Today \d\d:\d\d", when) for when in table["Time"])
    assert list(table["Cost"]) == ["≈ $0.20", "not billed", "free (demo)", "$0.75"]  # newest first
    assert list(table["Video"]) == ["480P · 5 s", "480P · 5 s", "480P · 5 s", "1080P · 5 s"]
    assert "4 jobs, newest first" in texts(app)
    assert not app.exception
