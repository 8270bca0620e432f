"""Turning what the user set up into one job: checked, written to the store, then sent exactly once.

The order is the point. The job is in the store (status ``submitting``, a unique submission id)
before any byte leaves, and the submit is never repeated by this code: a second call with the same
submission id returns the job already written, and an answer lost after the request may have
reached the gateway leaves the job ``uncertain`` for the user to decide.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from studio.catalog import Catalog
from studio.errors import (
    AuthenticationError,
    GatewayConnectionError,
    GatewayError,
    GatewayStatusError,
    InsufficientBalanceError,
    RateLimitError,
    RequestNotSentError,
)
from studio.explain import (
    explain_held_back,
    explain_image_host_needed,
    explain_rejection,
    explain_uncertain,
    refused_inline_image,
    submit_was_certainly_refused,
)
from studio.generation import (
    FieldProblem,
    InvalidRequest,
    JobDraft,
    Quote,
    SubmitPayload,
    build_payload,
    quote,
)
from studio.records import Batch, Job, JobStatus

if TYPE_CHECKING:
    # Only named in annotations: the form imports this module for drafts, and must not wait
    # for SQLAlchemy, requests or Pillow to be imported before it can be drawn.
    from studio.gateway import GatewayClient
    from studio.imagehost import ImageHost
    from studio.images import ImageLibrary, PreparedImage
    from studio.schedule import PollPolicy
    from studio.store import Guards, JobStore

logger = logging.getLogger("studio.jobs")

_ANSWERED = frozenset({JobStatus.SUBMITTING, JobStatus.UNCERTAIN})
# Refusals that are about the account, not the clip: the clips after one are not sent.
_REFUSALS_FOR_EVERY_CLIP = (RateLimitError, AuthenticationError, InsufficientBalanceError)


@dataclass(frozen=True)
class _HostedImage:
    """An image kept in the library and the URL the gateway reads it from."""

    sha256: str
    url: str


def draw_seed(catalog: Catalog) -> int:
    """A random seed in the gateway's range."""
    limits = catalog.limits
    return limits.seed_min + secrets.randbelow(limits.seed_max - limits.seed_min + 1)


def recordable_payload(payload: dict[str, Any], images: dict[str, str]) -> str:
    """The submit body as JSON for the store, each hosted image replaced by ``image:<sha256>``.

    Parameters
    ----------
    payload
        The exact body sent to the gateway.
    images
        Each image URL in it (often a multi-megabyte ``data:`` URI) and its content hash.
    """
    inputs = {
        name: f"image:{images[value]}" if isinstance(value, str) and value in images else value
        for name, value in payload.get("input", {}).items()
    }
    return json.dumps({**payload, "input": inputs}, sort_keys=True)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def batch_problems(drafts: Sequence[JobDraft], catalog: Catalog) -> list[FieldProblem]:
    """Every problem of a batch's drafts: said once when every clip has it, else per clip.

    A problem of some clips only (one prompt of a list too long) names them: "Clip 3: ...".
    """
    each = [draft.problems(catalog) for draft in drafts]
    shared = [problem for problem in each[0] if all(problem in other for other in each)]
    named = [
        FieldProblem(problem.field, f"Clip {number}: {problem.message}")
        for number, problems in enumerate(each, start=1)
        for problem in problems
        if problem not in shared
    ]
    return shared + named


@dataclass(frozen=True)
class _Clip:
    """One clip of a batch, ready to write and send."""

    payload: SubmitPayload
    fields: dict[str, Any]  # its job's fields for the store, but the submission id


def _not_sent() -> RequestNotSentError:
    return RequestNotSentError(
        "Wan Studio hit a problem before sending the job, so it was not sent.",
        hint="Try again in a moment.",
    )


@dataclass
class _Hosting:
    """Each distinct image of one submit kept and hosted once, whatever number of clips use it."""

    submitter: Submitter
    hosted: dict[bytes, _HostedImage] = field(default_factory=dict)

    def __call__(self, image: PreparedImage) -> _HostedImage:
        if image.data not in self.hosted:
            self.hosted[image.data] = self.submitter._keep(image)
        return self.hosted[image.data]


@dataclass(frozen=True)
class Submitter:
    """What sending a job needs, shared by every submit of one Studio."""

    store: JobStore
    library: ImageLibrary
    image_host: ImageHost
    catalog: Catalog
    policy: PollPolicy

    def submit(
        self,
        draft: JobDraft,
        *,
        client: GatewayClient,
        submission_id: str,
        session_id: str | None,
        mode: str,
        key_fingerprint: str | None,
        guard: Guards = None,
        owner: str | None = None,
    ) -> Job:
        """Write the job, send it once, and record what the gateway answered.

        Parameters
        ----------
        draft
            The user's choices; checked here, once.
        client
            The gateway client holding the key this job is billed to.
        submission_id
            Unique per click of Generate: a job already written with this id is returned as it
            is, never sent a second time.
        session_id
            The browser session, for "this session" lists and totals.
        mode
            ``demo`` or ``billed``.
        key_fingerprint
            The salted fingerprint of the key, so the watcher can match the job to the key.
        guard
            The spending limits a billed job must fit under: the team's and its owner's
            (None: no limit applies).
        owner
            Who makes it: the signed-in person's e-mail (None without sign-in).

        Returns
        -------
        Job
            ``queued`` with its task id; ``rejected`` (nothing billed) when the gateway refused
            it or it certainly never arrived; ``uncertain`` when the answer was lost after it may
            have arrived. Gateway problems never raise.

        Raises
        ------
        InvalidRequest
            When the draft breaks the catalog's rules or has no image; nothing is written.
        SpendingLimitReached
            When the job would take billed spend over a limit; nothing is written or sent.
        """
        if problems := draft.problems(self.catalog):
            raise InvalidRequest(problems)
        self._first_look(guard, [draft])
        clip = self._prepare(
            draft,
            host=_Hosting(self),
            mode=mode,
            session_id=session_id,
            key_fingerprint=key_fingerprint,
            owner=owner,
        )
        # The job is in the store, ``submitting``, before any byte leaves.
        job, created = self.store.create_job(
            submission_id=submission_id, guard=guard, **clip.fields
        )
        if not created:
            return job
        return self._send(job, clip.payload, client=client)

    def submit_batch(
        self,
        drafts: Sequence[JobDraft],
        *,
        kind: str,
        client: GatewayClient,
        submission_id: str,
        session_id: str | None,
        mode: str,
        key_fingerprint: str | None,
        guard: Guards = None,
        owner: str | None = None,
    ) -> Batch:
        """Write every clip of a batch at once, then send each once, in order.

        Parameters
        ----------
        drafts
            Each clip's draft, in clip order (``Variations.expand``); checked here, all of them
            before anything is written.
        kind
            What varies from clip to clip (a ``VariationKind``).
        guard
            The spending limit, checked and reserved for the whole batch as it is written.
        client, submission_id, session_id, mode, key_fingerprint, owner
            As for ``submit``; the same ``submission_id`` again returns the batch, sending
            nothing.

        Returns
        -------
        Batch
            Each clip as ``submit`` leaves a job. After the gateway asks to slow down, the clips
            not yet sent are not sent: they are ``rejected`` (nothing billed) with words that
            say so, for "send the rest" later.

        Raises
        ------
        InvalidRequest
            When a clip's draft has problems ("Clip 2: ..."); nothing is written.
        SpendingLimitReached
            When the batch would go over the limit; nothing is written.
        """
        if problems := batch_problems(drafts, self.catalog):
            raise InvalidRequest(problems)
        self._first_look(guard, drafts)
        host = _Hosting(self)
        clips = [
            self._prepare(
                draft,
                host=host,
                mode=mode,
                session_id=session_id,
                key_fingerprint=key_fingerprint,
                owner=owner,
            )
            for draft in drafts
        ]
        batch, created = self.store.create_batch(
            submission_id=submission_id,
            session_id=session_id,
            kind=kind,
            clips=[clip.fields for clip in clips],
            guard=guard,
            owner=owner,
        )
        if not created:
            return batch
        self._send_in_turn(batch.jobs, [clip.payload for clip in clips], client=client)
        return self._current_batch(batch.id)

    def send_again(
        self,
        batch: Batch,
        drafts: Mapping[int, JobDraft],
        *,
        client: GatewayClient,
        submission_id: str,
        session_id: str | None,
        mode: str,
        key_fingerprint: str | None,
        guard: Guards = None,
    ) -> Batch:
        """Write and send a new attempt at clips of ``batch`` that were not sent.

        ``drafts`` maps a clip's number to its draft (the refused job's settings, its seed
        included). Only clips still not sent get one; the same ``submission_id`` again sends
        nothing more. Sent as ``submit_batch`` sends, with the same stop after a rate limit.
        """
        problems = [
            FieldProblem(problem.field, f"Clip {number}: {problem.message}")
            for number, draft in sorted(drafts.items())
            for problem in draft.problems(self.catalog)
        ]
        if problems:  # the catalog changed since the clip was made
            raise InvalidRequest(problems)
        host = _Hosting(self)
        clips = {
            number: self._prepare(
                draft, host=host, mode=mode, session_id=session_id, key_fingerprint=key_fingerprint
            )
            for number, draft in drafts.items()
        }
        current, written = self.store.add_to_batch(
            batch.id,
            submission_id=submission_id,
            clips={number: clip.fields for number, clip in clips.items()},
            guard=guard,
        )
        if not written:
            return current
        payloads = [clips[current.clip_number(job)].payload for job in written]
        self._send_in_turn(written, payloads, client=client)
        return self._current_batch(batch.id)

    def _first_look(self, guard: Guards, drafts: Sequence[JobDraft]) -> None:
        # A first look at the spending limit, so that what cannot fit keeps no images either;
        # the store checks again, for good, in the transaction that writes the jobs.
        if guard:
            asked = sum((quote(draft, self.catalog).cost_usd for draft in drafts), Decimal(0))
            self.store.check_spend(guard, asked=asked)

    def _prepare(
        self,
        draft: JobDraft,
        *,
        host: _Hosting,
        mode: str,
        session_id: str | None,
        key_fingerprint: str | None,
        owner: str | None = None,
    ) -> _Clip:
        """A checked draft's seed drawn, its images kept and hosted, its payload and job fields."""
        if draft.seed is None:
            draft = dataclasses.replace(draft, seed=draw_seed(self.catalog))
        asked = quote(draft, self.catalog)
        # Kept before sending, so history can show and reuse them whatever happens next.
        assert draft.image is not None  # a draft without problems has a first frame
        first = host(draft.image)
        last = host(draft.last_frame) if draft.last_frame is not None else None
        payload = build_payload(
            draft, asked, image_url=first.url, last_frame_url=last.url if last else None
        )
        hosted = {image.url: image.sha256 for image in (first, last) if image is not None}
        return _Clip(
            payload=payload,
            fields=_job_fields(draft, asked, first=first, last=last)
            | {
                "mode": mode,
                "session_id": session_id,
                "key_fingerprint": key_fingerprint,
                "request_json": recordable_payload(payload.body, hosted),
                "owner": owner,
            },
        )

    def _keep(self, image: PreparedImage) -> _HostedImage:
        sha256 = self.library.save(image.data, format=image.format)
        return _HostedImage(sha256=sha256, url=self.image_host.url_for(image))

    def _send_in_turn(
        self, jobs: Sequence[Job], payloads: Sequence[SubmitPayload], *, client: GatewayClient
    ) -> None:
        """Send written jobs one after another; after a refusal every clip shares, hold the rest."""
        shared_refusal: GatewayStatusError | None = None
        for job, payload in zip(jobs, payloads, strict=True):
            if shared_refusal is not None:
                self._hold_back(job.id, because=shared_refusal)
                continue
            _, error = self._deliver(job, payload, client=client)
            if isinstance(error, _REFUSALS_FOR_EVERY_CLIP):
                shared_refusal = error

    def _hold_back(self, job_id: int, *, because: GatewayStatusError) -> None:
        # Never sent: the next submit would only be refused the same way.
        self.store.transition(
            job_id,
            expected=(JobStatus.SUBMITTING,),
            status=JobStatus.REJECTED,
            error_code="NotSent",
            explanation=explain_held_back(because),
            finished_at=_utcnow(),
            next_poll_at=None,
        )

    def _current_batch(self, batch_id: int) -> Batch:
        batch = self.store.get_batch(batch_id)
        assert batch is not None  # batches are never deleted
        return batch

    def _send(self, job: Job, payload: SubmitPayload, *, client: GatewayClient) -> Job:
        """Send the written job once and record the receipt or why it failed."""
        return self._deliver(job, payload, client=client)[0]

    def _deliver(
        self, job: Job, payload: SubmitPayload, *, client: GatewayClient
    ) -> tuple[Job, GatewayError | None]:
        """``_send``, also saying what the gateway answered when it was not a receipt."""
        sent_at = _utcnow()
        try:
            # If this process dies while sending, the watcher finds the job after the grace period
            # and marks it uncertain rather than leaving it "sending" for ever. A job the watcher
            # already gave up on (its turn came too late) is not sent at all.
            started = self.store.transition(
                job.id,
                expected=(JobStatus.SUBMITTING,),
                status=JobStatus.SUBMITTING,
                unsent_only=True,
                submitted_at=sent_at,
                next_poll_at=sent_at + timedelta(seconds=self.policy.submit_grace),
            )
            if started is None:
                return self._current(job.id), None
        except Exception:
            logger.exception("job %s: could not get ready to send it", job.id)
            not_sent = _not_sent()
            return self._record_failure(job.id, not_sent), not_sent
        try:
            receipt = client.submit(payload.body, path=payload.path)
        except GatewayError as error:
            inline = str(payload.body.get("input", {}).get("img_url", "")).startswith("data:")
            return self._record_failure(job.id, error, inline_image=inline), error
        except Exception:
            # The client turns every failure before the request leaves into a GatewayError that
            # says it was not sent, so this one came while the request may have been on its way.
            logger.exception("job %s: unexpected error while sending it", job.id)
            lost = GatewayConnectionError(
                "Wan Studio hit an unexpected problem while sending the job.",
                may_have_reached_server=True,
            )
            return self._record_failure(job.id, lost), lost
        answered = _utcnow()
        queued = self.store.transition(
            job.id,
            expected=_ANSWERED,
            status=JobStatus.QUEUED,
            task_id=receipt.task_id,
            polling_url=receipt.polling_url,
            queued_at=answered,
            explanation=None,
            error_message=None,
            next_poll_at=answered + timedelta(seconds=self.policy.first_delay),
            deadline_at=sent_at + timedelta(seconds=self.policy.deadline),
        )
        return queued or self._current(job.id), None

    def _record_failure(
        self, job_id: int, error: GatewayError, *, inline_image: bool = False
    ) -> Job:
        if submit_was_certainly_refused(error):
            if inline_image and refused_inline_image(error):
                explanation = explain_image_host_needed(error)
            else:
                explanation = explain_rejection(error)
            changed = self.store.transition(
                job_id,
                expected=_ANSWERED,
                status=JobStatus.REJECTED,
                error_code=getattr(error, "code", None) or type(error).__name__,
                error_message=error.message,
                explanation=explanation,
                finished_at=_utcnow(),
                next_poll_at=None,
            )
        else:
            changed = self.store.transition(
                job_id,
                expected=(JobStatus.SUBMITTING,),
                status=JobStatus.UNCERTAIN,
                error_message=error.message,
                explanation=explain_uncertain(error),
                next_poll_at=None,
            )
        return changed or self._current(job_id)

    def _current(self, job_id: int) -> Job:
        job = self.store.get(job_id)
        assert job is not None  # jobs are never deleted
        return job


def _job_fields(
    draft: JobDraft, asked: Quote, *, first: _HostedImage, last: _HostedImage | None
) -> dict[str, Any]:
    """What a job records of its draft and quote: the settings sent, the price and size shown."""
    return {
        "model": asked.spec.id,
        "resolution": asked.resolution,
        "duration": asked.duration,
        "prompt": draft.prompt,
        "negative_prompt": draft.negative_prompt,
        "prompt_extend": draft.prompt_extend,
        "watermark": draft.watermark,
        "seed": draft.seed,
        "image_sha256": first.sha256,
        "image_source": draft.image_source,
        "last_frame_sha256": last.sha256 if last else None,
        "estimate_usd": asked.cost_usd,
        "output_width": asked.output_width,
        "output_height": asked.output_height,
    }
