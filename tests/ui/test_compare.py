"""Favourites on the card, in History and in Compare; History's filter; picking clips to compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from components import compare
from studio.records import JobStatus
from studio.store import JobStore
from tests.ui.conftest import APP, JobMaker, as_read, note_video_reads, texts
from tests.ui.test_plain_text import HOSTILE, assert_plain

SESSION_ID = "0b7e9c1a-2d3f-4e5a-8b6c-7d8e9f0a1b2c"


def _session_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params["session"] = SESSION_ID
    return at.run()


def _history(app: AppTest) -> AppTest:
    return app.switch_page("pages/history.py").run()


def _compare(app: AppTest) -> AppTest:
    return app.switch_page("pages/compare.py").run()


def _table_prompts(app: AppTest) -> list[str]:
    return list(app.dataframe[-1].value["Prompt"])


def test_a_card_marks_its_clip_as_a_favourite_and_takes_the_mark_away(
    jobs: JobMaker, store: JobStore
) -> None:
    job = jobs.make(session_id=SESSION_ID)
    at = _session_app()
    toggle = at.button(key=f"job.{job.id}.favourite")
    assert toggle.label == "Keep as favourite"
    assert at.download_button(key=f"job.{job.id}.settings").label == "Download settings"

    toggle.click().run()
    assert store.get(job.id).favourite is True
    assert at.button(key=f"job.{job.id}.favourite").label == "Remove from favourites"

    at.button(key=f"job.{job.id}.favourite").click().run()
    assert store.get(job.id).favourite is False
    assert at.button(key=f"job.{job.id}.favourite").label == "Keep as favourite"
    assert not at.exception


def test_history_shows_favourites_only_and_marks_the_opened_job(
    app: AppTest, jobs: JobMaker, store: JobStore
) -> None:
    kept = jobs.make(prompt="the take to keep")
    jobs.make(prompt="an ordinary take")
    other = jobs.make(prompt="another ordinary take")
    store.set_favourite(kept.id, True)
    _history(app)
    assert len(_table_prompts(app)) == 3

    app.toggle(key="hist.favourites").set_value(True).run()
    assert _table_prompts(app) == ["the take to keep"]

    app.toggle(key="hist.favourites").set_value(False).run()
    app.selectbox(key="hist.open").set_value(other.id).run()
    assert app.download_button(key=f"job.{other.id}.settings").label == "Download settings"
    app.button(key=f"job.{other.id}.favourite").click().run()
    assert store.get(other.id).favourite is True

    app.toggle(key="hist.favourites").set_value(True).run()
    assert sorted(_table_prompts(app)) == ["another ordinary take", "the take to keep"]
    assert not app.exception


def test_history_sends_the_opened_clip_to_compare(app: AppTest, jobs: JobMaker) -> None:
    job = jobs.make(prompt="a clip to compare")
    _history(app)
    app.selectbox(key="hist.open").set_value(job.id).run()

    app.button(key="hist.compare").click().run()

    assert app.multiselect(key="compare.pick").value == [job.id]
    assert "Pick one more clip" in texts(app)
    assert not app.get("video")
    assert not app.exception


def test_compare_plays_the_picked_clips_and_lists_only_what_differs(
    app: AppTest, jobs: JobMaker
) -> None:
    first = jobs.make(prompt="waves", seed=11, model="wan2.2-i2v-flash")
    second = jobs.make(prompt="waves", seed=22, model="wan2.2-i2v-plus", cost="0.75")
    jobs.make(prompt="a failed one", status=JobStatus.FAILED)
    _compare(app)
    picker = app.multiselect(key="compare.pick")
    # Only finished clips with a saved video are offered.
    assert len(picker.options) == 2
    label = next(option for option in picker.options if option.startswith(f"#{first.id} "))
    assert label.startswith(f"#{first.id} · Wan 2.2 Flash · 480P · 5 s · ")
    assert label.endswith(" · “waves”")
    assert "Pick two to four clips" in texts(app)

    picker.set_value([first.id, second.id]).run()

    videos = app.get("video")
    assert len(videos) == 2
    assert all(video.proto.url.startswith("/") for video in videos)
    table = app.table[0].value
    assert list(table.columns) == ["Setting", f"#{first.id}", f"#{second.id}"]
    assert list(table["Setting"]) == ["Model", "Seed", "Cost"]
    # Cells are escaped for Markdown; read as a person sees them.
    assert [as_read(cell) for cell in table[f"#{first.id}"]] == [
        "Wan 2.2 Flash",
        "11",
        "$0.085 (demo, not billed)",
    ]
    assert app.query_params["compare"] == f"{first.id},{second.id}"
    assert not app.exception


def test_an_address_picks_clips_and_says_which_it_left_out(app: AppTest, jobs: JobMaker) -> None:
    first = jobs.make(prompt="one")
    second = jobs.make(prompt="two")
    failed = jobs.make(prompt="failed", status=JobStatus.FAILED)
    app.query_params["compare"] = f"{first.id},{failed.id},nonsense,{second.id}"
    _compare(app)

    assert app.multiselect(key="compare.pick").value == [first.id, second.id]
    warnings = [as_read(warning.value) for warning in app.warning]
    assert f"Clip #{failed.id} has no saved video to play, so it was left out." in warnings
    assert "“nonsense” is not a clip number, so it was left out." in warnings
    assert len(app.get("video")) == 2
    assert not app.exception


def test_compare_marks_a_clip_as_a_favourite(app: AppTest, jobs: JobMaker, store: JobStore) -> None:
    first = jobs.make(prompt="one")
    second = jobs.make(prompt="two")
    app.query_params["compare"] = f"{first.id},{second.id}"
    _compare(app)

    app.button(key=f"compare.{second.id}.favourite").click().run()

    assert store.get(second.id).favourite is True
    assert store.get(first.id).favourite is False
    assert app.button(key=f"compare.{second.id}.favourite").label == "Remove from favourites"
    assert "★" in app.multiselect(key="compare.pick").format_func(second.id)
    assert not app.exception


def test_a_rerun_reads_no_video_file_again(
    app: AppTest, jobs: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = [jobs.make(prompt=f"clip {index}", seed=index) for index in range(4)]
    app.query_params["compare"] = ",".join(str(job.id) for job in clips)
    opened = note_video_reads(monkeypatch)
    _compare(app)
    assert len(app.get("video")) == 4
    first_run = len(opened)

    for _ in range(3):
        app.run()

    assert len(app.get("video")) == 4
    assert first_run <= 4
    assert len(opened) == first_run
    assert not app.exception


def test_the_settings_file_of_a_clip_is_offered_beside_its_video(
    app: AppTest, jobs: JobMaker
) -> None:
    job = jobs.make(prompt="kept with its settings")
    _history(app)
    app.selectbox(key="hist.open").set_value(job.id).run()

    button = app.download_button(key=f"job.{job.id}.settings")

    assert button.label == "Download settings"
    assert not app.exception


def test_prompts_in_the_table_of_differences_read_as_typed(app: AppTest, jobs: JobMaker) -> None:
    first = jobs.make(prompt=HOSTILE)
    second = jobs.make(prompt="a calm sea", negative_prompt="**never** [this](https://example.com)")
    app.query_params["compare"] = f"{first.id},{second.id}"
    _compare(app)

    table = app.table[0].value
    cells = [str(cell) for column in table.columns[1:] for cell in table[column]]
    assert HOSTILE in [as_read(cell) for cell in cells]
    for cell in cells:
        assert_plain(cell)
    assert not app.exception


def test_the_pick_stays_while_the_user_visits_another_page(app: AppTest, jobs: JobMaker) -> None:
    first = jobs.make(prompt="one")
    second = jobs.make(prompt="two")
    _compare(app)
    app.multiselect(key="compare.pick").set_value([second.id, first.id]).run()

    _history(app)
    # A browser drops the page's own query parameters when it goes to another page.
    app.query_params.pop("compare", None)
    _compare(app)

    assert app.multiselect(key="compare.pick").value == [second.id, first.id]
    assert len(app.get("video")) == 2
    assert not app.exception


def test_an_older_clip_asked_for_stays_picked_across_reruns(
    app: AppTest, jobs: JobMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The picker offers only the newest clip, so the two asked for are older than any on offer.
    monkeypatch.setattr(compare, "RECENT_CLIPS", 1)
    first = jobs.make(prompt="one")
    second = jobs.make(prompt="two")
    jobs.make(prompt="the newest")
    app.query_params["compare"] = f"{first.id},{second.id},²,99999999999999999999999"
    _compare(app)
    assert app.multiselect(key="compare.pick").value == [first.id, second.id]

    app.button(key=f"compare.{first.id}.favourite").click().run()

    assert app.multiselect(key="compare.pick").value == [first.id, second.id]
    assert len(app.get("video")) == 2
    assert not app.exception


def _player_clips(app: AppTest) -> list[str]:
    """The clips the one play button and slider were told to move together."""
    player = app.main.get_by_key("compare.in_step")
    return json.loads(player.proto.json)["clips"]


def test_a_clip_whose_file_is_gone_is_said_and_left_out_of_the_player(
    app: AppTest, jobs: JobMaker, studio_home: Path
) -> None:
    clips = [jobs.make(prompt=f"clip {index}") for index in range(3)]
    (studio_home / clips[1].video_path).unlink()
    app.query_params["compare"] = ",".join(str(job.id) for job in clips)
    _compare(app)

    assert len(app.get("video")) == 2
    assert "The video file is no longer in the data folder." in texts(app)
    assert _player_clips(app) == [f"compare-clip-{clips[0].id}", f"compare-clip-{clips[2].id}"]
    assert not app.exception
