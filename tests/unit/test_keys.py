"""The key ring: which key a new job uses, which jobs can be sent again or watched, who waits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from studio.gateway import GatewayClient
from studio.keys import KEY_FROM_SESSION, KeyRequired, KeyRing
from studio.records import BILLED, DEMO, JobStatus
from studio.settings import KEY_FROM_ENVIRONMENT, KEY_FROM_NOWHERE
from tests.plugins.engine import a_job, settings_for

CONFIGURED = "configured-key-0123456789"
TYPED = "typed-key-abcdefghijkl"
DEMO_KEY = "demo-key-000000000000"


def _client(base_url: str, key: str, for_watcher: bool) -> GatewayClient:
    return GatewayClient(base_url=base_url, api_key=key)


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    """A ring with a configured key and the demo gateway's key."""
    keys = KeyRing(settings=settings_for(tmp_path, api_key=CONFIGURED), make_client=_client)
    keys.hold_demo_key(DEMO_KEY, "http://127.0.0.1:9")
    return keys


@pytest.fixture
def demo_ring(tmp_path: Path) -> KeyRing:
    """A ring with no configured key: the demo gateway's key only."""
    keys = KeyRing(settings=settings_for(tmp_path), make_client=_client)
    keys.hold_demo_key(DEMO_KEY, "http://127.0.0.1:9")
    return keys


def test_a_key_typed_in_the_session_comes_first_then_the_configured_one(ring: KeyRing):
    typed = ring.for_new_job(f"  {TYPED}\n")
    assert (typed.mode, typed.key, typed.source) == (BILLED, TYPED, KEY_FROM_SESSION)
    for blank in (None, "", "   "):
        configured = ring.for_new_job(blank)
        assert (configured.mode, configured.key) == (BILLED, CONFIGURED)
        assert configured.source == KEY_FROM_ENVIRONMENT
    assert CONFIGURED not in repr(configured)


def test_without_any_key_new_jobs_are_demo_and_show_no_key(demo_ring: KeyRing):
    choice = demo_ring.for_new_job(None)
    assert (choice.mode, choice.key, choice.source) == (DEMO, None, KEY_FROM_NOWHERE)
    assert not choice.billed
    assert demo_ring.sender(None, holder="browser-a") == (demo_ring.demo_fingerprint, DEMO)


def test_the_sender_holds_a_typed_key_for_its_session(demo_ring: KeyRing):
    fingerprint, mode = demo_ring.sender(TYPED, holder="browser-a")
    assert mode == BILLED
    assert fingerprint in demo_ring.held_fingerprints()
    demo_ring.forget_session_key(TYPED, holder="browser-a")
    assert fingerprint not in demo_ring.held_fingerprints()


def test_no_key_and_no_demo_gateway_needs_a_key(tmp_path: Path):
    keys = KeyRing(settings=settings_for(tmp_path), make_client=_client)
    with pytest.raises(KeyRequired, match="Enter an API key"):
        keys.sender(None, holder="browser-a")


def test_a_billed_job_is_sent_again_only_with_a_key_the_session_has(ring: KeyRing):
    typed_fingerprint = ring.use_session_key(TYPED, holder="browser-a")
    made_with_typed = replace(a_job(), key_fingerprint=typed_fingerprint)
    configured_fingerprint, _ = ring.sender(None, holder="browser-b")
    made_with_configured = replace(made_with_typed, key_fingerprint=configured_fingerprint)
    # Another browser session holds the typed key, this one has none: refused.
    with pytest.raises(KeyRequired, match="not entered in this browser session"):
        ring.check_can_send_again(made_with_typed, None)
    ring.check_can_send_again(made_with_typed, TYPED)
    ring.check_can_send_again(made_with_configured, None)
    ring.check_can_send_again(replace(made_with_typed, mode=DEMO), None)


def test_jobs_wait_for_a_key_the_process_does_not_hold(ring: KeyRing):
    typed_fingerprint = ring.use_session_key(TYPED, holder="browser-a")
    typed_job = replace(a_job(status=JobStatus.QUEUED), key_fingerprint=typed_fingerprint)
    demo_job = replace(typed_job, id=2, mode=DEMO, key_fingerprint=ring.demo_fingerprint)
    assert ring.can_watch(typed_job)
    assert ring.watchable([typed_job, demo_job]) == [typed_job, demo_job]
    assert ring.waiting_for_key([typed_job, demo_job]) == []
    ring.forget_session_key(TYPED, holder="browser-a")
    assert not ring.can_watch(typed_job)
    assert ring.watchable([typed_job, demo_job]) == [demo_job]
    assert ring.waiting_for_key([typed_job, demo_job]) == [typed_job]


def test_each_held_key_has_one_client_per_use_and_a_forgotten_key_none(demo_ring: KeyRing):
    fingerprint = demo_ring.use_session_key(TYPED, holder="browser-a")
    submit = demo_ring.client(fingerprint, for_watcher=False)
    watch = demo_ring.watch_client(fingerprint)
    assert isinstance(submit, GatewayClient)
    assert isinstance(watch, GatewayClient)
    assert submit is not watch
    assert demo_ring.client(fingerprint, for_watcher=False) is submit
    demo_ring.forget_session_key(TYPED, holder="browser-a")
    assert demo_ring.client(fingerprint, for_watcher=False) is None
    assert demo_ring.watch_client(None) is None


def test_the_demo_keys_clients_follow_the_demo_gateway_when_it_moves(demo_ring: KeyRing):
    client = demo_ring.watch_client(demo_ring.demo_fingerprint)
    demo_ring.demo_moved("http://127.0.0.1:4321/")
    assert client.base_url == "http://127.0.0.1:4321"
    assert demo_ring.client(demo_ring.demo_fingerprint, for_watcher=False).base_url == (
        "http://127.0.0.1:4321"
    )
