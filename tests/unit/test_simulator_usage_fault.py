"""The report_usage fault: a task that succeeds but reports other seconds than it was asked for."""

from __future__ import annotations

import pytest

from simulator import FaultConfigError, FaultPlan, FaultRule
from tests.plugins.simulator import (
    data_uri,
    image_bytes,
    submit_body,
    submit_task,
    wait_for_task,
)


@pytest.fixture(scope="module")
def body() -> dict:
    return submit_body(data_uri(image_bytes(640, 480)), duration=3, seed=5)


def test_a_key_can_make_a_task_report_fewer_seconds(start_simulator, body: dict) -> None:
    sim = start_simulator()
    key = "k+report_usage:video_duration=2.5"
    answer, seen = wait_for_task(sim.url, submit_task(sim.url, body, key=key), key=key)
    assert seen[-1] == "SUCCEEDED"
    assert answer["usage"]["video_duration"] == 2.5
    assert answer["usage"]["video_count"] == 1
    assert answer["output"]["video_url"]
    # Other keys are not touched: their tasks report the length they asked for.
    plain, _ = wait_for_task(sim.url, submit_task(sim.url, body, key="k"), key="k")
    assert plain["usage"]["video_duration"] == 3


def test_a_plan_rule_reports_usage_for_every_task(start_simulator, body: dict) -> None:
    plan = FaultPlan(rules=(FaultRule(kind="report_usage", video_duration=4),))
    sim = start_simulator(faults=plan)
    answer, _ = wait_for_task(sim.url, submit_task(sim.url, body))
    assert answer["usage"]["video_duration"] == 4


@pytest.mark.parametrize("seconds", [None, -1.0])
def test_report_usage_needs_a_duration_of_zero_or_more(seconds: float | None) -> None:
    with pytest.raises(FaultConfigError, match="video_duration"):
        FaultRule(kind="report_usage", video_duration=seconds)
