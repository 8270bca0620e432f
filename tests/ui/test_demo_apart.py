"""A demo job's would-be cost never reaches billed spend: History, the sidebar and the CSV."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from streamlit.testing.v1 import AppTest

from components.services import get_studio
from studio.records import BILLED, DEMO, JobStatus
from tests.ui.conftest import APP, DEMO_WOULD_BE_COST, JobMaker, as_read, texts

BILLED_COST = "0.2"
MIXED = "$0.285"  # billed plus the demo job's would-be cost


def _demo_and_billed(jobs: JobMaker) -> None:
    jobs.make(mode=BILLED, model="wan2.2-i2v-flash", resolution="720P", cost=BILLED_COST)
    demo = jobs.make(mode=DEMO, prompt="a demo clip")
    assert demo.cost_usd == Decimal(DEMO_WOULD_BE_COST)  # else mixing could never show


def test_history_metrics_count_only_billed_spend(app: AppTest, jobs: JobMaker) -> None:
    _demo_and_billed(jobs)
    app.switch_page("pages/history.py").run()
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["All time"] == "$0.200"
    assert metrics["Today"] == "$0.200"
    said = texts(app)
    # The demo video's would-be cost is said, labelled as such, apart from billed spend.
    assert "1 video billed, 5 s · demo, not billed: 1 video, would have cost $0.085" in said
    assert MIXED not in said
    by_model = app.dataframe[0].value
    spent = dict(zip(by_model["Model"], by_model["Spent"], strict=True))
    assert spent == {"Wan 2.2 Flash": "$0.200"}
    assert not app.exception


def test_the_sidebar_keeps_demo_videos_out_of_billed_spend(app: AppTest, jobs: JobMaker) -> None:
    _demo_and_billed(jobs)
    # AppTest drops sidebar updates on reruns, so a fresh browser session reads the totals.
    fresh = AppTest.from_file(str(APP), default_timeout=30).run()
    sidebar = as_read("\n".join(element.value for element in fresh.sidebar.markdown))
    assert "All time: **$0.200** · 1 video" in sidebar
    assert "Today: **$0.200** · 1 video" in sidebar
    assert MIXED not in sidebar
    assert "**Demo videos** · not billed" in sidebar
    assert "All time: 1 video, would have cost $0.085" in sidebar
    assert not fresh.exception


def test_the_csv_keeps_billed_and_would_be_demo_cost_in_their_own_columns(
    app: AppTest, jobs: JobMaker
) -> None:
    _demo_and_billed(jobs)
    rows = list(csv.DictReader(io.StringIO(get_studio().export_csv().decode("utf-8"))))
    by_mode = {row["mode"]: row for row in rows}
    assert len(rows) == 2
    assert set(by_mode) == {BILLED, DEMO}
    # A sum of the billed column is what was billed; the demo cost is only what it would be.
    assert by_mode[BILLED]["billed cost USD"] == BILLED_COST
    assert by_mode[BILLED]["demo would-be cost USD"] == ""
    assert by_mode[DEMO]["billed cost USD"] == ""
    assert by_mode[DEMO]["demo would-be cost USD"] == DEMO_WOULD_BE_COST
    # The status reads as on the History page.
    assert {row["status"] for row in rows} == {JobStatus.SUCCEEDED.label}
