"""GatewayClient.check_key against the simulator: a good key passes, a wrong one is refused."""

from __future__ import annotations

import pytest

from studio.errors import AuthenticationError, GatewayConnectionError
from studio.gateway import KEY_CHECK_TASK_ID, GatewayClient, RetryPolicy
from tests.plugins.simulator import POLL_PATH, api_post

GOOD_KEY = "pz-good-key-0123456789"


def test_a_good_key_passes_and_a_wrong_one_is_refused(start_simulator) -> None:
    running = start_simulator(key=GOOD_KEY)
    with GatewayClient(base_url=running.url, api_key=GOOD_KEY) as client:
        client.check_key()
    with (
        GatewayClient(base_url=running.url, api_key="pz-wrong-key-0123456789") as client,
        pytest.raises(AuthenticationError),
    ):
        client.check_key()
    assert running.tasks() == []  # nothing was made


def test_the_check_is_a_status_request_for_a_task_that_cannot_exist(start_simulator) -> None:
    # The simulator and the client agree: an unknown task is a 200 UNKNOWN for a good key and a
    # 401 for a wrong one, which is what check_key tells apart.
    running = start_simulator(key=GOOD_KEY)
    good = api_post(running.url, POLL_PATH, {"task_id": KEY_CHECK_TASK_ID}, key=GOOD_KEY)
    assert good.status_code == 200
    assert good.json()["output"]["task_status"] == "UNKNOWN"
    wrong = api_post(running.url, POLL_PATH, {"task_id": KEY_CHECK_TASK_ID}, key="pz-nope-0000")
    assert wrong.status_code == 401


def test_no_answer_is_a_connection_error_not_a_verdict_on_the_key() -> None:
    no_retry = RetryPolicy(max_attempts=1)
    with (
        GatewayClient(base_url="http://127.0.0.1:9", api_key=GOOD_KEY, retry=no_retry) as client,
        pytest.raises(GatewayConnectionError),
    ):
        client.check_key()
