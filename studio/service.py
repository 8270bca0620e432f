"""``Studio``: the one object the app and the command line talk to.

It owns the store, the image library, the key ring (``studio.keys``: every key held, with its
gateway clients), the demo gateway when there is no key, and the watcher thread; callers use its
methods, never those parts. Every method is safe to call from several threads at once (Streamlit
runs each browser session in its own thread).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from studio.catalog import Catalog
from studio.compare import model_label
from studio.expectations import JobClass, RunTimeEstimator, TypicalWait
from studio.export import job_settings_json, jobs_csv
from studio.generation import FieldProblem, InvalidRequest, JobDraft, quote
from studio.humane import clip_price
from studio.imagehost import DataUriHost, ImageHost
from studio.jobs import Submitter, batch_problems
from studio.keys import KeyChoice, KeyRequired, KeyRing
from studio.limits import (
    TEAM_SCOPE,
    PeriodSpend,
    SpendGuard,
    SpendingLimit,
    SpendingStatus,
    day_and_month,
    local_zone,
    person_scope,
)
from studio.links import DEFAULT_MAX_BYTES as DEFAULT_LINK_BYTES
from studio.links import FetchedImage
from studio.people import PersonSpend, people_spend
from studio.pricing import (
    LISTED_CLIP_SECONDS,
    listed_clip_price,
    listed_price_differs,
)
from studio.records import (
    ALL_JOBS,
    BILLED,
    DEMO,
    Batch,
    Job,
    JobFilter,
    JobStatus,
    KeptDraft,
    Totals,
)
from studio.schedule import PollPolicy, RequestBudget, shared_budget
from studio.settings import Settings
from studio.variations import Variations

if TYPE_CHECKING:
    from studio.demo import DemoGateway
    from studio.gateway import GatewayClient
    from studio.images import ImageLibrary, ImageReading, PreparedImage
    from studio.mediastore import Bucket
    from studio.store import JobStore

# The store (SQLAlchemy), images (Pillow), the gateway client and the link guard (requests), the
# demo gateway and the watcher are imported where they are first used, not above: the app's pages
# import this module for its types, and the first page can be drawn while these load (see
# ENGINE_MODULES).
ENGINE_MODULES = (
    "studio.store",
    "studio.watcher",
    "studio.gateway",
    "studio.linkfetch",
    "studio.images",
    "PIL.Image",
    "studio.demo",
)

logger = logging.getLogger("studio.service")

RECHECKABLE = frozenset({JobStatus.TIMED_OUT, JobStatus.LOST, JobStatus.EXPIRED})
_EXPORT_PAGE = 1000
# Each watcher request is made once; the schedule decides when to try again (and counts it in the
# request budget), rather than the client retrying behind its back.
_WATCHER_ATTEMPTS = 1


_RESEND_NAMESPACE = uuid.UUID("5d0c3c1e-6f0a-4d55-9a43-7b1f2f0b8e21")


def resend_submission_id(job: Job) -> str:
    """The submission id of sending ``job`` again: the same every time, so a repeat is one job."""
    return str(uuid.uuid5(_RESEND_NAMESPACE, job.submission_id))


@dataclass(frozen=True)
class Estimate:
    """What a draft will cost and the size it will come out at, before it is sent."""

    cost_usd: Decimal
    billed: bool
    output_width: int | None
    output_height: int | None
    text: str
    listed_usd: Decimal | None = None  # the doc's 5-second price, when it differs from ours


@dataclass(frozen=True)
class BatchCheck:
    """What blocks a batch, in words for the user, and each clip's draft when nothing does."""

    problems: list[FieldProblem]
    drafts: list[JobDraft]  # empty while there are problems


def estimate_draft(draft: JobDraft, catalog: Catalog, *, billed: bool) -> Estimate:
    """``Studio.estimate`` from the catalog alone, for a page that draws the price before the
    Studio is open (raises ``InvalidRequest`` as it does)."""
    asked = quote(draft, catalog)
    spec, resolution, duration = asked.spec, asked.resolution, asked.duration
    price = clip_price(asked.cost_usd, duration)
    listed = None
    if duration == LISTED_CLIP_SECONDS and listed_price_differs(spec, resolution):
        listed = listed_clip_price(spec, resolution)
    return Estimate(
        cost_usd=asked.cost_usd,
        billed=billed,
        output_width=asked.output_width,
        output_height=asked.output_height,
        text=price if billed else f"demo, not billed: would cost {price}",
        listed_usd=listed,
    )


def _media(
    settings: Settings, bucket: Bucket | None, image_host: ImageHost | None
) -> tuple[ImageLibrary, ImageHost]:
    """Where first frames are kept and how the gateway reads them: the bucket when configured."""
    from studio.images import ImageLibrary

    if bucket is None:
        return ImageLibrary(settings.home), image_host or DataUriHost()
    from studio.mediastore import BucketImageLibrary, PresignedImageHost, image_url_lifetime

    library = BucketImageLibrary(settings.home, bucket)
    lifetime = image_url_lifetime(settings.job_deadline_minutes)
    return library, image_host or PresignedImageHost(library, lifetime=lifetime)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _person(owner: str | None) -> str | None:
    # Owners are kept as lower-cased e-mails; a blank one is nobody.
    return owner.strip().lower() if owner and owner.strip() else None


def _local_midnight(now: datetime | None = None) -> datetime:
    # The same day as the daily spending limit's, in the zone's own rules: on the day the
    # clocks change, midnight had the other offset than the one in force now.
    today, _month = day_and_month(now or datetime.now(UTC), local_zone())
    return today.start


class Studio:
    """The engine behind every page: drafts, jobs, history, totals, keys and the watcher.

    Make it with ``Studio.open``; one per server process.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        store: JobStore,
        images: ImageLibrary,
        policy: PollPolicy,
        demo_policy: PollPolicy,
        budget: RequestBudget,
        image_host: ImageHost,
        demo: DemoGateway | None,
        bucket: Bucket | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.policy = policy
        self.budget = budget
        self._store = store
        self._images = images
        self._demo = demo
        self._bucket = bucket
        self._estimator = RunTimeEstimator(
            store=store, catalog=catalog, policy=policy, demo_speed=settings.demo_speed
        )
        self._submitter = Submitter(
            store=store, library=images, image_host=image_host, catalog=catalog, policy=policy
        )
        self._keys = KeyRing(settings=settings, make_client=self._make_client)
        if demo is not None:
            self._keys.hold_demo_key(demo.key, demo.url)
        from studio.watcher import Watcher

        self._watcher = Watcher(
            store=store,
            home=settings.home,
            catalog=catalog,
            client_for_key=self._keys.watch_client,
            held_keys=self._keys.held_fingerprints,
            policy=policy,
            estimator=self._estimator,
            demo_policy=demo_policy,
            budget=budget,
            bucket=bucket,
        )
        if demo is not None:
            demo.on_url_change(self._demo_moved)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        start_watcher: bool = True,
        catalog: Catalog,
        poll_policy: PollPolicy | None = None,
        image_host: ImageHost | None = None,
    ) -> Studio:
        """Open the data folder and the database, start demo mode if needed, and the watcher.

        Parameters
        ----------
        settings
            From ``Settings.from_environment``.
        start_watcher
            Run the watcher in a daemon thread (False for one-shot commands and tests that poll
            with ``poll_due_jobs`` themselves).
        catalog
            Models and prices (``studio.catalog.default_catalog()`` for the shipped one).
        poll_policy
            The watcher's timing for every job; by default the standard one with the settings'
            deadline, and for demo jobs the same scaled to the demo gateway's speed.
        image_host
            How images reach the gateway; ``data:`` URIs by default.

        Returns
        -------
        Studio
            Close it with ``close()``.
        """
        settings.home.mkdir(parents=True, exist_ok=True)
        settings.key_salt()
        policy = poll_policy or PollPolicy(deadline=settings.job_deadline_minutes * 60)
        # A policy given by the caller is already timed for its gateways; the standard one is for
        # real jobs, and the demo gateway runs ``demo_speed`` times faster than its defaults.
        demo_policy = poll_policy or policy.scaled(settings.demo_speed)
        from studio.demo import acquire_demo_gateway, release_demo_gateway
        from studio.mediastore import open_bucket
        from studio.store import JobStore

        bucket = open_bucket(settings.media_url)
        images, image_host = _media(settings, bucket, image_host)
        store = JobStore.open(settings.database_url)
        demo = None
        try:
            # Demo jobs still in flight from an earlier run need their gateway too.
            pending_demo = any(job.is_demo for job in store.in_flight_jobs())
            if settings.mode == DEMO or pending_demo:
                demo = acquire_demo_gateway(settings.simulator_dir, speed=settings.demo_speed)
            studio = cls(
                settings=settings,
                catalog=catalog,
                store=store,
                images=images,
                policy=policy,
                demo_policy=demo_policy,
                budget=shared_budget(settings.request_budget_per_second),
                image_host=image_host,
                demo=demo,
                bucket=bucket,
            )
        except BaseException:
            if demo is not None:
                release_demo_gateway(demo)
            store.close()
            raise
        if start_watcher:
            studio.start_watcher()
        return studio

    def close(self) -> None:
        """Stop the watcher, the clients and the demo gateway; close the database."""
        self._watcher.stop()
        self._keys.close()
        if self._demo is not None:
            from studio.demo import release_demo_gateway

            release_demo_gateway(self._demo)
            self._demo = None
        self._store.close()

    def __enter__(self) -> Studio:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Studio(mode={self.mode!r}, home={str(self.settings.home)!r})"

    # -- mode and keys ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The mode of new jobs sent without a session key: ``billed`` or ``demo``."""
        return self.settings.mode

    @property
    def demo_url(self) -> str | None:
        """The embedded simulator's address in demo mode, else None."""
        return self._demo.url if self._demo is not None else None

    @property
    def demo_fingerprint(self) -> str | None:
        """The fingerprint the demo gateway's jobs record, when there is a demo gateway."""
        return self._keys.demo_fingerprint

    def key_for_new_job(self, session_key: str | None = None) -> KeyChoice:
        """The key and mode of a job sent now by a browser session that entered ``session_key``."""
        return self._keys.for_new_job(session_key)

    def use_session_key(self, key: str, *, holder: str, alive: object | None = None) -> str:
        """Hold a key typed in Settings, in memory only, so its jobs can be sent and watched.

        Parameters
        ----------
        key
            The API key (surrounding whitespace is ignored).
        holder
            Who holds it: an id of one browser session that no other browser can have (not the
            session id in the page address, which a shared link passes on). The key stays in
            this process while at least one holder has not forgotten it.
        alive
            An object that lives exactly as long as the holder's browser session (kept in its
            session state): once it is collected, the session is gone and its hold ends as if
            it had forgotten the key.

        Returns
        -------
        str
            Its salted fingerprint (what jobs made with it record).

        Raises
        ------
        ValueError
            For an empty key, or one with a character no key can have.
        """
        fingerprint = self._keys.use_session_key(key, holder=holder, alive=alive)
        self._watcher.wake()
        return fingerprint

    def check_key(self, key: str) -> None:
        """Ask the gateway whether it takes ``key`` before anything is sent with it (free).

        Raises ``AuthenticationError`` for a key the gateway refuses and another
        ``GatewayError`` when it cannot be asked; returns when the key works.
        """
        from studio.gateway import GatewayClient

        with GatewayClient(base_url=self.settings.base_url, api_key=key.strip()) as client:
            client.check_key()

    def forget_session_key(self, key: str, *, holder: str) -> None:
        """The browser session ``holder`` lets go of a key it entered.

        When no other browser session holds it (and it is not the configured key), the process
        lets go of it too: nothing can be sent with it any more, and its jobs still in flight wait,
        visibly, until someone enters it again.
        """
        self._keys.forget_session_key(key, holder=holder)

    def held_key_fingerprints(self) -> list[str]:
        """Fingerprints of every key this process holds (configured, session and demo)."""
        return self._keys.held_fingerprints()

    def can_watch(self, job: Job) -> bool:
        """True when this process holds the key ``job`` was made with, so it can follow it."""
        return self._keys.can_watch(job)

    def jobs_waiting_for_key(self) -> list[Job]:
        """In-flight jobs whose key this process does not hold ("enter your key to resume")."""
        return self._keys.waiting_for_key(self._store.in_flight_jobs())

    def watchable_jobs(self) -> list[Job]:
        """In-flight jobs whose key this process holds: the ones its watcher follows."""
        return self._keys.watchable(self._store.in_flight_jobs())

    def _make_client(self, base_url: str, key: str, for_watcher: bool) -> GatewayClient:
        from studio.gateway import GatewayClient, RetryPolicy

        retry = {"retry": RetryPolicy(max_attempts=_WATCHER_ATTEMPTS)} if for_watcher else {}
        return GatewayClient(base_url=base_url, api_key=key, **retry)

    def _demo_moved(self, url: str) -> None:
        # Another process stopped running the demo gateway and one took over at a new address.
        self._keys.demo_moved(url)
        self._watcher.wake()

    # -- the watcher -----------------------------------------------------------------------

    def start_watcher(self) -> None:
        """Follow every in-flight job with a held key in a daemon thread, until ``close``."""
        self._watcher.start()

    @property
    def watcher_running(self) -> bool:
        """True while the watcher's thread runs."""
        return self._watcher.running

    def poll_due_jobs(self) -> int:
        """Poll every job that is due now, once, in this thread; return how many were polled."""
        return self._watcher.run_once()

    def finish_in_flight(self, *, timeout: float) -> bool:
        """Poll in this thread until nothing with a held key is in flight (False at ``timeout``)."""
        return self._watcher.run_until_idle(timeout=timeout)

    # -- drafts ----------------------------------------------------------------------------

    def check_draft(self, draft: JobDraft) -> list[FieldProblem]:
        """Everything that would block Generate for this draft (a missing image included)."""
        return draft.problems(self.catalog)

    def estimate(self, draft: JobDraft, *, api_key: str | None = None) -> Estimate:
        """The cost and output size of a draft before it is sent.

        Parameters
        ----------
        draft
            The user's choices; model, resolution and duration must be ones the catalog offers.
        api_key
            The session key it would be sent with, if any (decides billed or demo).

        Returns
        -------
        Estimate
            E.g. text ``"$0.750 · 5 s × $0.150/s"``, or in demo mode
            ``"demo, not billed: would cost $0.750 · 5 s × $0.150/s"``.

        Raises
        ------
        InvalidRequest
            When the model, resolution or duration is not in the catalog.
        """
        return estimate_draft(draft, self.catalog, billed=self._keys.for_new_job(api_key).billed)

    def read_upload(self, name: str | None, data: bytes) -> ImageReading:
        """Check an image and prepare what to send, in one decode (raises ``ImageRejected``)."""
        from studio.images import read_image

        return read_image(data, filename=name, limits=self.catalog.limits)

    def load_link(self, url: str, *, max_bytes: int = DEFAULT_LINK_BYTES) -> FetchedImage:
        """Fetch a pasted link through the guard (raises ``LinkRejected``).

        Trusted image hosts from the settings are allowed; in demo mode, so is the embedded
        simulator's own loopback address and nothing else on loopback. ``max_bytes`` is the
        largest file taken (the uploader's limit, so that link and upload take the same files).
        """
        from studio.linkfetch import fetch_image_link

        trusted = list(self.settings.trusted_image_hosts)
        if self._demo is not None:
            trusted.append(self._demo.host)
        return fetch_image_link(url, trusted_hosts=trusted, max_bytes=max_bytes)

    # -- drafts: a browser session's Generate form, kept so that a refresh brings it back ------

    def save_draft(self, session_id: str, body: str, *, owner: str | None = None) -> None:
        """Keep a browser session's form (JSON text written by the page) and who kept it."""
        self._store.save_draft(session_id, body, owner=_person(owner))

    def load_draft(self, session_id: str) -> KeptDraft | None:
        """The form a browser session kept last and who kept it, if any (see ``open_to``)."""
        return self._store.load_draft(session_id)

    def session_open_to(self, session_id: str, person: str | None) -> bool:
        """Whether ``person`` may take up a browser session from its address (a reload, a link).

        Without sign-in (no person), yes. Signed in, not when its draft or any of its jobs is
        someone else's: they would see that person's prompt and images.
        """
        person = _person(person)
        if person is None:
            return True
        kept = self._store.load_draft(session_id)
        if kept is not None and not kept.open_to(person):
            return False
        in_session = JobFilter(session_id=session_id)
        theirs = JobFilter(session_id=session_id, owner=person)
        return self._store.count_jobs(in_session) == self._store.count_jobs(theirs)

    def keep_image(self, data: bytes, *, format: str) -> str:
        """Store an image as given (by its content hash, once) and return the hash."""
        return self._images.save(data, format=format)

    def kept_image(self, sha256: str) -> bytes:
        """The bytes of a kept image (``FileNotFoundError`` if there is none)."""
        return self._images.load(sha256)

    # -- jobs ------------------------------------------------------------------------------

    def submit(
        self,
        draft: JobDraft,
        *,
        submission_id: str,
        session_id: str | None,
        api_key: str | None = None,
        key_holder: str | None = None,
        owner: str | None = None,
    ) -> Job:
        """Write the job, send it once, and hand it to the watcher.

        Parameters
        ----------
        draft
            The user's choices.
        submission_id
            Unique per click: the same id again returns the same job and sends nothing.
        session_id
            The browser session (for "this session" lists and totals).
        api_key
            The key this browser session holds (typed in Settings); without one, the configured
            key, or demo mode. Never a key another session entered: the caller gives its own.
        key_holder
            The browser session that holds ``api_key`` (see ``use_session_key``); by default
            ``session_id``. The key stays held for the watcher until that holder forgets it.
        owner
            The signed-in person making it (their e-mail); None without sign-in. A billed job
            must then fit under their own spending limit as well as the team's.

        Returns
        -------
        Job
            ``queued``, or ``rejected`` / ``uncertain`` with an explanation; gateway problems
            never raise.

        Raises
        ------
        InvalidRequest
            For a draft that breaks the catalog's rules; nothing is written or sent.
        SpendingLimitReached
            For a billed job that would take spend over the daily or monthly limit; nothing is
            written or sent, and the exception says what is left and when the limit resets.
        """
        existing = self._store.get_by_submission(submission_id)
        if existing is not None:
            return existing
        fingerprint, mode, client = self._sending_key(api_key, key_holder or session_id)
        job = self._submitter.submit(
            draft,
            client=client,
            submission_id=submission_id,
            session_id=session_id,
            mode=mode,
            key_fingerprint=fingerprint,
            guard=self._spend_guard(mode, owner),
            owner=_person(owner),
        )
        self._watcher.wake()
        return job

    # -- spending limits -------------------------------------------------------------------

    @property
    def deployment_spending_limit(self) -> SpendingLimit:
        """The caps fixed by the environment or secrets; the Settings page cannot change them."""
        return SpendingLimit(
            daily_usd=self.settings.daily_limit_usd, monthly_usd=self.settings.monthly_limit_usd
        )

    def kept_spending_limit(self) -> SpendingLimit:
        """The caps set on the Settings page (whether or not the deployment overrides them)."""
        return self._store.spending_limit(TEAM_SCOPE)

    def set_spending_limit(self, limit: SpendingLimit) -> None:
        """Keep the caps set on the Settings page; a cap the deployment fixes still wins."""
        self._store.set_spending_limit(TEAM_SCOPE, limit)

    def spending_limit(self) -> SpendingLimit:
        """The caps in force: each one from the deployment when it fixes it, else as kept."""
        fixed = self.deployment_spending_limit
        if fixed.daily_usd is not None and fixed.monthly_usd is not None:
            return fixed
        kept = self.kept_spending_limit()
        return SpendingLimit(
            daily_usd=fixed.daily_usd if fixed.daily_usd is not None else kept.daily_usd,
            monthly_usd=fixed.monthly_usd if fixed.monthly_usd is not None else kept.monthly_usd,
        )

    def person_spending_limit(self, email: str) -> SpendingLimit:
        """One signed-in person's own caps, as an administrator set them (none by default)."""
        return self._store.spending_limit(person_scope(email))

    def set_person_spending_limit(self, email: str, limit: SpendingLimit) -> None:
        """Keep one person's own caps; their clips must fit under these and the team's."""
        self._store.set_spending_limit(person_scope(email), limit)

    def _spend_guard(self, mode: str, owner: str | None = None) -> tuple[SpendGuard, ...] | None:
        """What a billed submit checks against, now: the team's caps and its owner's own.

        None for demo jobs or without a cap.
        """
        if mode != BILLED:
            return None
        day, month = day_and_month(_utcnow(), local_zone())
        limits = [(TEAM_SCOPE, self.spending_limit())]
        if _person(owner) is not None:
            limits.append((person_scope(owner), self.person_spending_limit(owner)))
        guards = tuple(
            SpendGuard(scope=scope, limit=limit, day=day, month=month)
            for scope, limit in limits
            if limit.is_set
        )
        return guards or None

    def spending_status(self, mode: str, *, owner: str | None = None) -> SpendingStatus | None:
        """Each capped period's cap, what is spent or reserved, what is left and when it resets.

        None in demo mode (``mode`` is the mode a new job would run in) or when no cap is set.
        With an ``owner`` under caps of their own, each period shows whichever of the team's
        and theirs has less left.
        """
        guards = self._spend_guard(mode, owner)
        if not guards:
            return None
        tightest: dict[str, PeriodSpend] = {}
        for guard in guards:
            committed = self._store.committed_spend(guard)
            for period, cap in guard.capped_periods():
                spend = PeriodSpend(period=period, cap=cap, committed=committed[period.name])
                if period.name not in tightest or spend.left < tightest[period.name].left:
                    tightest[period.name] = spend
        order = ("today", "this month")
        return SpendingStatus(periods=tuple(tightest[name] for name in order if name in tightest))

    def submit_batch(
        self,
        draft: JobDraft,
        variations: Variations,
        *,
        submission_id: str,
        session_id: str | None,
        api_key: str | None = None,
        key_holder: str | None = None,
        owner: str | None = None,
    ) -> Batch:
        """Make several clips from one draft at once: each its own job, grouped as a batch.

        Every clip is written first (with the batch and the spend reservation of the whole
        batch, in one transaction), then each is sent once, in order, and handed to the watcher.

        Parameters
        ----------
        draft
            The user's choices.
        variations
            What changes from clip to clip (seeds, prompts or models).
        submission_id
            Unique per click: the same id again returns the same batch and sends nothing.
        session_id, api_key, key_holder, owner
            As for ``submit``.

        Returns
        -------
        Batch
            Each clip ``queued``, or ``rejected`` / ``uncertain`` with an explanation. After a
            rate limit the clips not yet sent are ``rejected`` with "Not sent: ..." (nothing
            billed), for ``send_unsent``.

        Raises
        ------
        InvalidRequest
            For a batch or a clip that cannot be made ("Clip 2: ..."); nothing is written.
        SpendingLimitReached
            When the batch would take spend over a limit; nothing is written or sent.
        """
        existing = self._store.get_batch_by_submission(submission_id)
        if existing is not None:
            return existing
        if problems := variations.problems(self.catalog):
            raise InvalidRequest(problems)
        drafts = variations.expand(draft, self.catalog)
        fingerprint, mode, client = self._sending_key(api_key, key_holder or session_id)
        batch = self._submitter.submit_batch(
            drafts,
            kind=variations.kind,
            client=client,
            submission_id=submission_id,
            session_id=session_id,
            mode=mode,
            key_fingerprint=fingerprint,
            guard=self._spend_guard(mode, owner),
            owner=_person(owner),
        )
        self._watcher.wake()
        return batch

    def check_batch(self, draft: JobDraft, variations: Variations) -> list[FieldProblem]:
        """Everything that would block a batch: its size and choices, and each clip's draft."""
        return self.plan_batch(draft, variations).problems

    def plan_batch(self, draft: JobDraft, variations: Variations) -> BatchCheck:
        """What blocks a batch and, when nothing does, each clip's draft (the form and the CLI).

        A problem every clip shares (no first frame yet) is said once, after the batch's own;
        one of some clips only names them: "Clip 2: ...". With no clip at all (no model chosen),
        the draft's own problems are said, so that everything missing is said at once.
        """
        drafts = variations.expand(draft, self.catalog)
        clip_problems = (
            batch_problems(drafts, self.catalog) if drafts else draft.problems(self.catalog)
        )
        problems = variations.problems(self.catalog) + clip_problems
        return BatchCheck(problems=problems, drafts=[] if problems else drafts)

    def send_unsent(
        self,
        batch_id: int,
        *,
        submission_id: str,
        session_id: str | None,
        api_key: str | None = None,
        key_holder: str | None = None,
    ) -> Batch:
        """Send the clips of a batch that certainly did not go, again, as new jobs in the batch.

        Only clips whose latest attempt is ``rejected`` (refused, or held back after a rate
        limit) are sent, each with the settings of that attempt, its seed included; a clip that
        went, or may have, never is. The same ``submission_id`` again sends nothing more. The
        key is chosen as ``resend`` chooses it.

        Raises
        ------
        LookupError
            When there is no such batch.
        KeyRequired
            When the batch's billed clips were made with a key this session does not hold.
        SpendingLimitReached
            When the clips would take spend over a limit; nothing is written or sent.
        """
        batch = self.batch(batch_id)
        if batch is None:
            raise LookupError(f"There is no batch {batch_id}.")
        unsent = batch.not_sent
        if not unsent:
            return batch
        self._keys.check_can_send_again(unsent[0], api_key)
        billed = unsent[0].mode == BILLED
        fingerprint, mode, client = self._sending_key(
            api_key if billed else None, key_holder or session_id
        )
        images: dict[str, PreparedImage] = {}
        drafts = {batch.clip_number(job): self._draft_of(job, images) for job in unsent}
        sent = self._submitter.send_again(
            batch,
            drafts,
            client=client,
            submission_id=submission_id,
            session_id=session_id,
            mode=mode,
            key_fingerprint=fingerprint,
            # The batch's maker's caps, whoever sends the rest.
            guard=self._spend_guard(mode, batch.owner),
        )
        self._watcher.wake()
        return sent

    def batch(self, batch_id: int) -> Batch | None:
        """One batch, with its clips' jobs."""
        return self._store.get_batch(batch_id)

    def batches(self, where: JobFilter = ALL_JOBS, *, limit: int = 50) -> list[Batch]:
        """The batches with a job that matches ``where`` (for History), newest first."""
        return self._store.list_batches(where, limit=limit)

    def _sending_key(
        self, api_key: str | None, holder: str | None
    ) -> tuple[str, str, GatewayClient]:
        # The key a new job or batch is sent with: the session's, the configured one, or demo.
        fingerprint, mode = self._keys.sender(api_key, holder=holder or "")
        client = self._keys.client(fingerprint, for_watcher=False)
        if client is None:
            # The one session holding the key forgot it between these two lines.
            raise KeyRequired("That API key was just forgotten; enter it in Settings again.")
        return fingerprint, mode, client

    def job(self, job_id: int) -> Job | None:
        """One job by id."""
        return self._store.get(job_id)

    def jobs(self, job_ids: Iterable[int]) -> list[Job]:
        """The jobs with these ids, in the order given; ids of no job are left out."""
        found = (self._store.get(job_id) for job_id in job_ids)
        return [job for job in found if job is not None]

    def set_favourite(self, job_id: int, favourite: bool) -> Job:
        """Mark a job as a favourite, or unmark it (raises ``LookupError`` for no such job)."""
        return self._store.set_favourite(job_id, favourite)

    def settings_json(self, job: Job) -> bytes:
        """A clip's settings as a small JSON file to keep beside its video; never the key."""
        return job_settings_json(job, model_label=model_label(job, self.catalog))

    def session_jobs(self, session_id: str, *, limit: int = 100) -> list[Job]:
        """The jobs of one browser session, newest first."""
        return self._store.list_jobs(JobFilter(session_id=session_id), limit=limit)

    def history(
        self, where: JobFilter = ALL_JOBS, *, limit: int | None = 200, offset: int = 0
    ) -> list[Job]:
        """The jobs across sessions and restarts that match ``where``, a page, newest first."""
        return self._store.list_jobs(where, limit=limit, offset=offset)

    def count_history(self, where: JobFilter = ALL_JOBS) -> int:
        """How many jobs ``history`` would list without a page limit."""
        return self._store.count_jobs(where)

    def all_history(self, where: JobFilter = ALL_JOBS) -> Iterator[Job]:
        """Every job that matches ``where``, newest first, read from the store a page at a time."""
        offset = 0
        while True:
            page = self._store.list_jobs(where, limit=_EXPORT_PAGE, offset=offset)
            yield from page
            if len(page) < _EXPORT_PAGE:
                return
            offset += _EXPORT_PAGE

    def export_csv(self, where: JobFilter = ALL_JOBS) -> bytes:
        """Every job that matches ``where`` as CSV (see ``studio.export``); never the key."""
        return jobs_csv(self.all_history(where))

    def totals(
        self,
        session_id: str | None,
        *,
        owner: str | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> Totals:
        """Running totals for this session, today (since local midnight by ``now``) and all time.

        With an ``owner``, only that person's jobs count; without, everyone's (the team's).
        """
        return self._store.totals(
            session_id=session_id, today_start=_local_midnight(now()), owner=_person(owner)
        )

    def spend_by_person(self, *, now: Callable[[], datetime] = _utcnow) -> list[PersonSpend]:
        """Every person's spend today, this month and all time, most spent this month first.

        Jobs made without sign-in are one row with no e-mail. The rows add up to ``totals``.
        """
        today, month = day_and_month(now(), local_zone())
        by_owner = self._store.spend_by_owner(today_start=today.start, month_start=month.start)
        return people_spend(by_owner)

    def expected_finish(self, job: Job) -> datetime | None:
        """When an in-flight job should be done, from similar past jobs (None: none timed yet)."""
        return self._estimator.expected_finish(job)

    def typical_wait(self, job: Job) -> TypicalWait:
        """How long a job like this one usually takes, from past jobs or else the prior."""
        return self._estimator.typical_wait(JobClass.of(job))

    def video_file(self, job: Job) -> Path | None:
        """The saved MP4 of a finished job, if it is on disk."""
        if not job.video_path:
            return None
        path = self.settings.home / job.video_path
        return path if path.is_file() else None

    @property
    def media_in_bucket(self) -> bool:
        """Whether first frames and videos live in object storage rather than the data folder."""
        return self._bucket is not None

    def video_url(self, job: Job, *, file_name: str) -> str | None:
        """A short-lived presigned URL of a finished job's video in the bucket (None: no bucket
        or no video); a browser plays it, and saves it as ``file_name`` when it opens it."""
        if self._bucket is None or not job.has_video:
            return None
        from studio.mediastore import PLAYBACK_URL_SECONDS

        return self._bucket.url(job.video_path, lifetime=PLAYBACK_URL_SECONDS, file_name=file_name)

    def image_file(self, sha256: str) -> Path:
        """The stored first frame with this hash (raises ``FileNotFoundError``)."""
        return self._images.path(sha256)

    def thumbnail(self, sha256: str, *, max_side: int = 160) -> bytes:
        """A JPEG of a stored image, at most ``max_side`` pixels on its longer side."""
        return self._images.thumbnail(sha256, max_side)

    def can_recheck(self, job: Job) -> bool:
        """True when "Check again" can do something: it has a task the gateway may still know."""
        if job.status not in RECHECKABLE or job.task_id is None:
            return False
        submitted = job.submitted_at or job.created_at
        return datetime.now(UTC) - submitted < timedelta(seconds=self.policy.task_lifetime)

    def can_resend(self, job: Job) -> bool:
        """True for a job whose submit answer was lost: the user may choose to send it again."""
        return job.status is JobStatus.UNCERTAIN

    def recheck(self, job_id: int) -> Job:
        """Ask the gateway about a timed-out, lost or expired job once more (via the watcher).

        Jobs that cannot be rechecked (see ``can_recheck``) come back unchanged.
        """
        job = self._existing(job_id)
        if not self.can_recheck(job):
            return job
        now = datetime.now(UTC)
        changed = self._store.transition(
            job_id,
            expected=RECHECKABLE,
            status=JobStatus.QUEUED,
            next_poll_at=now,
            deadline_at=now + timedelta(seconds=self.policy.deadline),
            unknown_since=None,
            explanation=None,
            error_code=None,
            error_message=None,
        )
        self._watcher.wake()
        return changed or self._existing(job_id)

    def resend(
        self,
        job_id: int,
        *,
        submission_id: str,
        session_id: str | None,
        api_key: str | None = None,
        key_holder: str | None = None,
    ) -> Job:
        """Send an uncertain job again, as the user's explicit choice; return the new job.

        The old job is marked cancelled (pointing to the new one) so it is never counted twice.
        Demo jobs are resent in demo mode. Billed ones are sent with ``api_key``, the key the
        asking browser session holds now, or else with the configured key when the job was
        made with it; a key some other session entered is never used.

        Raises
        ------
        ValueError
            When the job is not uncertain.
        KeyRequired
            When the key the job was made with is not held.
        """
        already = self._store.get_by_submission(submission_id)
        if already is not None:
            # A double click on "send again": the first click's job.
            return already
        old = self._existing(job_id)
        if not self.can_resend(old):
            raise ValueError(
                f"Job {job_id} is {old.status.label.lower()}; only jobs whose "
                "sending is uncertain can be sent again."
            )
        self._keys.check_can_send_again(old, api_key)
        new = self.submit(
            self.reuse(job_id),
            submission_id=submission_id,
            session_id=session_id,
            api_key=api_key if old.mode == BILLED else None,
            key_holder=key_holder,
            owner=old.owner,
        )
        self._store.transition(
            job_id,
            expected=(JobStatus.UNCERTAIN,),
            status=JobStatus.CANCELED,
            explanation=f"Sent again as job {new.id}. If the first attempt did reach the "
            "gateway, it may still be billed there.",
            finished_at=datetime.now(UTC),
        )
        return new

    def dismiss(self, job_id: int) -> Job:
        """Give up on an uncertain job without sending it again (other jobs come back unchanged)."""
        job = self._existing(job_id)
        changed = self._store.transition(
            job_id,
            expected=(JobStatus.UNCERTAIN,),
            status=JobStatus.CANCELED,
            explanation="Dismissed without sending it again. If the request did reach the "
            "gateway, the video may still be made and billed there.",
            finished_at=datetime.now(UTC),
        )
        return changed or job

    def reuse(self, job_id: int) -> JobDraft:
        """A draft with a job's settings and images, to fill the Generate form again."""
        job = self._existing(job_id)
        image = self._stored_image(job.image_sha256)
        last = self._stored_image(job.last_frame_sha256) if job.last_frame_sha256 else None
        return JobDraft(
            model=job.model,
            resolution=job.resolution,
            duration=job.duration,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            prompt_extend=job.prompt_extend,
            watermark=job.watermark,
            seed=job.seed,
            image=image,
            image_source=job.image_source,
            last_frame=last,
        )

    def wait(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        every: float = 0.5,
        on_change: Callable[[Job], None] | None = None,
    ) -> Job:
        """Block until a job is no longer in flight (or ``timeout`` passes); return it.

        For the command line's ``--wait``: the watcher does the work, this only reads the store.
        ``on_change`` is called with the job whenever its status changes.
        """
        ends = None if timeout is None else time.monotonic() + timeout
        seen: JobStatus | None = None
        while True:
            job = self._existing(job_id)
            if on_change is not None and job.status is not seen:
                on_change(job)
            seen = job.status
            if not job.in_flight or (ends is not None and time.monotonic() >= ends):
                return job
            time.sleep(every)

    def _draft_of(self, job: Job, images: dict[str, PreparedImage]) -> JobDraft:
        """``reuse`` for a job of a batch, each stored image prepared once for all of them."""
        for sha256 in (job.image_sha256, job.last_frame_sha256):
            if sha256 is not None and sha256 not in images:
                images[sha256] = self._stored_image(sha256)
        return JobDraft(
            model=job.model,
            resolution=job.resolution,
            duration=job.duration,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            prompt_extend=job.prompt_extend,
            watermark=job.watermark,
            seed=job.seed,
            image=images[job.image_sha256],
            image_source=job.image_source,
            last_frame=images[job.last_frame_sha256] if job.last_frame_sha256 else None,
        )

    def _stored_image(self, sha256: str) -> PreparedImage:
        # It was sent as stored, so preparing it again returns it untouched.
        from studio.images import prepare_image

        return prepare_image(self._images.load(sha256), limits=self.catalog.limits)

    def _existing(self, job_id: int) -> Job:
        job = self._store.get(job_id)
        if job is None:
            raise LookupError(f"There is no job {job_id}.")
        return job
