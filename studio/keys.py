"""Which API key a job is sent and watched with, and the keys this process holds.

Three kinds of key: the one configured for the app (held for the process's lifetime), keys typed
in Settings (held in memory while at least one browser session that entered one holds it), and
the demo gateway's own key. A job records only its key's salted fingerprint; it can be watched,
or sent again, only while this process holds that key. Every question about keys is answered
here, so that the pages, the command line and the engine can never disagree.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from studio.records import BILLED, DEMO, Job
from studio.settings import KEY_FROM_NOWHERE, Settings, key_problem

if TYPE_CHECKING:
    from studio.gateway import GatewayClient

# Where the key of a new job comes from, beside the settings' KEY_FROM_* sources.
KEY_FROM_SESSION = "session"

# Makes the gateway client of a key: (base URL, key, for the watcher?) -> client.
ClientMaker = Callable[[str, str, bool], "GatewayClient"]


class KeyRequired(LookupError):
    """The job was made with an API key this server does not hold; its text says what to do."""


@dataclass(frozen=True)
class KeyChoice:
    """The key new jobs from one browser session are sent with, and where it comes from.

    ``key`` is None in demo mode: the demo gateway's key is nobody's to show. ``source`` is
    ``KEY_FROM_SESSION``, the settings' ``key_source`` for the configured key, or
    ``KEY_FROM_NOWHERE`` in demo mode.
    """

    mode: str
    key: str | None = field(repr=False)
    source: str

    @property
    def billed(self) -> bool:
        return self.mode == BILLED


@dataclass
class _HeldKey:
    key: str = field(repr=False)
    base_url: str
    # The browser sessions holding a key typed in Settings; the configured and the demo keys
    # are held for the process's lifetime instead.
    holders: set[str] = field(default_factory=set)
    permanent: bool = False
    submit_client: GatewayClient | None = None
    watch_client: GatewayClient | None = None

    def clients(self) -> list[GatewayClient]:
        return [client for client in (self.submit_client, self.watch_client) if client]


def _typed(session_key: str | None) -> str | None:
    return session_key.strip() if session_key and session_key.strip() else None


def key_for_new_job(settings: Settings, session_key: str | None = None) -> KeyChoice:
    """The key and mode of a job sent now by a browser session holding ``session_key``.

    Needs only the settings, so a page can say billed or demo before the Studio is open.
    """
    typed = _typed(session_key)
    if typed:
        return KeyChoice(mode=BILLED, key=typed, source=KEY_FROM_SESSION)
    if settings.api_key:
        return KeyChoice(mode=BILLED, key=settings.api_key, source=settings.key_source)
    return KeyChoice(mode=DEMO, key=None, source=KEY_FROM_NOWHERE)


class KeyRing:
    """Every key this process holds, by fingerprint, with one gateway client per key and use.

    Safe to call from several threads at once.
    """

    def __init__(self, *, settings: Settings, make_client: ClientMaker) -> None:
        self._settings = settings
        self._make_client = make_client
        self._lock = threading.Lock()
        self._held: dict[str, _HeldKey] = {}
        # (fingerprint, holder) of browser sessions that ended without forgetting their key.
        # Filled by garbage-collection callbacks, which must not take the lock (the collector
        # may run while this very thread holds it), so they only append; see _let_go_of_ended.
        self._ended_holders: deque[tuple[str, str]] = deque()
        self.demo_fingerprint: str | None = None
        if settings.api_key:
            self._hold(settings.api_key, settings.base_url, holder=None)

    def hold_demo_key(self, key: str, url: str) -> str:
        """Hold the demo gateway's key for good; return its fingerprint."""
        self.demo_fingerprint = self._hold(key, url, holder=None)
        return self.demo_fingerprint

    def close(self) -> None:
        """Close every gateway client made so far."""
        with self._lock:
            clients = [client for entry in self._held.values() for client in entry.clients()]
        for client in clients:
            client.close()

    # -- which key a job uses ---------------------------------------------------------------

    def for_new_job(self, session_key: str | None = None) -> KeyChoice:
        """The key and mode of a job sent now by a browser session holding ``session_key``."""
        return key_for_new_job(self._settings, session_key)

    def sender(self, session_key: str | None, *, holder: str) -> tuple[str, str]:
        """The (fingerprint, mode) a new job is sent with; a typed key is held for ``holder``.

        Raises
        ------
        KeyRequired
            With no key at all and no demo gateway.
        """
        choice = self.for_new_job(session_key)
        if choice.source == KEY_FROM_SESSION and choice.key:
            return self.use_session_key(choice.key, holder=holder), BILLED
        if choice.key:
            return self._settings.fingerprint(choice.key), BILLED
        if self.demo_fingerprint is None:
            raise KeyRequired("Enter an API key in Settings to generate videos.")
        return self.demo_fingerprint, DEMO

    def check_can_send_again(self, job: Job, session_key: str | None) -> None:
        """Raise ``KeyRequired`` unless ``job`` may be sent again by a session with this key.

        A demo job goes to the demo gateway; a billed one needs a key the asking session entered
        itself, or the configured key when the job was made with it, never a key that some other
        browser session entered.
        """
        if job.mode != BILLED or _typed(session_key):
            return
        configured = self._settings.api_key
        if configured is not None and self._settings.fingerprint(configured) == job.key_fingerprint:
            return
        raise KeyRequired(
            "This job was made with an API key that is not entered in this browser "
            "session; enter it in Settings to send the job again."
        )

    def can_watch(self, job: Job) -> bool:
        """True when this process holds the key ``job`` was made with."""
        return job.key_fingerprint in set(self.held_fingerprints())

    def waiting_for_key(self, jobs: Iterable[Job]) -> list[Job]:
        """Of ``jobs``, those made with a key this process does not hold."""
        held = set(self.held_fingerprints())
        return [job for job in jobs if job.key_fingerprint not in held]

    def watchable(self, jobs: Iterable[Job]) -> list[Job]:
        """Of ``jobs``, those made with a key this process holds."""
        held = set(self.held_fingerprints())
        return [job for job in jobs if job.key_fingerprint in held]

    # -- holding and letting go -------------------------------------------------------------

    def use_session_key(self, key: str, *, holder: str, alive: object | None = None) -> str:
        """Hold a key typed in Settings for the browser session ``holder``; return its fingerprint.

        ``alive`` lives exactly as long as that browser session: once it is collected, the
        session's hold ends as if it had forgotten the key.

        Raises
        ------
        ValueError
            For an empty key, or one with a character no key can have.
        """
        key = key.strip()
        if not key:
            raise ValueError("The API key is empty.")
        problem = key_problem(key)
        if problem:
            raise ValueError(problem)
        fingerprint = self._hold(key, self._settings.base_url, holder=holder)
        if alive is not None:
            weakref.finalize(alive, self._ended_holders.append, (fingerprint, holder))
        return fingerprint

    def forget_session_key(self, key: str, *, holder: str) -> None:
        """The browser session ``holder`` lets go of a key; unheld, the process lets go too."""
        fingerprint = self._settings.fingerprint(key.strip())
        with self._lock:
            self._let_go_of_ended()
            self._release(fingerprint, holder)

    def held_fingerprints(self) -> list[str]:
        """Fingerprints of every key this process holds (configured, session and demo)."""
        with self._lock:
            self._let_go_of_ended()
            return list(self._held)

    def client(self, fingerprint: str | None, *, for_watcher: bool) -> GatewayClient | None:
        """The gateway client of a held key (one for submits, one for the watcher), else None."""
        with self._lock:
            self._let_go_of_ended()
            entry = self._held.get(fingerprint) if fingerprint else None
            if entry is None:
                return None
            if for_watcher:
                if entry.watch_client is None:
                    entry.watch_client = self._make_client(entry.base_url, entry.key, True)
                return entry.watch_client
            if entry.submit_client is None:
                entry.submit_client = self._make_client(entry.base_url, entry.key, False)
            return entry.submit_client

    def watch_client(self, fingerprint: str | None) -> GatewayClient | None:
        """The watcher's client for a held key, else None."""
        return self.client(fingerprint, for_watcher=True)

    def demo_moved(self, url: str) -> None:
        """Point the demo key's clients at the demo gateway's new address."""
        with self._lock:
            entry = self._held.get(self.demo_fingerprint or "")
            if entry is None:
                return
            entry.base_url = url
            for client in entry.clients():
                client.base_url = url.rstrip("/")

    def _hold(self, key: str, base_url: str, *, holder: str | None) -> str:
        """Hold a key for one browser session (``holder``), or for good with ``None``."""
        fingerprint = self._settings.fingerprint(key)
        with self._lock:
            self._let_go_of_ended()
            entry = self._held.get(fingerprint)
            if entry is None:
                entry = self._held[fingerprint] = _HeldKey(key, base_url)
            if holder is None:
                entry.permanent = True
            else:
                entry.holders.add(holder)
        return fingerprint

    def _release(self, fingerprint: str, holder: str) -> None:
        # Called with the lock held.
        entry = self._held.get(fingerprint)
        if entry is None:
            return
        entry.holders.discard(holder)
        if not entry.holders and not entry.permanent:
            # Dropped, not closed: the watcher may be in the middle of a poll with its client.
            del self._held[fingerprint]

    def _let_go_of_ended(self) -> None:
        # Called with the lock held.
        while self._ended_holders:
            self._release(*self._ended_holders.popleft())
