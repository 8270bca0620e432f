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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from studio.catalog import Catalog
from studio.errors import GatewayConnectionError, GatewayError, RequestNotSentError
from studio.explain import explain_rejection, explain_uncertain, submit_was_certainly_refused
from studio.generation import (
    InvalidRequest,
    JobDraft,
    Quote,
    SubmitPayload,
    build_payload,
    quote,
)
from studio.records import Job, JobStatus

if TYPE_CHECKING:
    # Only named in annotations: the form imports this module for drafts, and must not wait
    # for SQLAlchemy, requests or Pillow to be imported before it can be drawn.
    from studio.gateway import GatewayClient
    from studio.imagehost import ImageHost
    from studio.images import ImageLibrary, PreparedImage
    from studio.limits import SpendGuard
    from studio.schedule import PollPolicy
    from studio.store import JobStore

logger = logging.getLogger("studio.jobs")

_ANSWERED = frozenset({JobStatus.SUBMITTING, JobStatus.UNCERTAIN})


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


def _not_sent() -> RequestNotSentError:
    return RequestNotSentError(
        "Wan Studio hit a problem before sending the job, so it was not sent.",
        hint="Try again in a moment.",
    )


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
        guard: SpendGuard | None = None,
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
            The spending limit a billed job must fit under (None: no limit applies).

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
        if draft.seed is None:
            draft = dataclasses.replace(draft, seed=draw_seed(self.catalog))
        asked = quote(draft, self.catalog)
        if guard is not None:
            # A first look, so that a job that cannot fit keeps no images either; the store
            # checks again, for good, in the transaction that writes the job.
            self.store.check_spend(guard, asked=asked.cost_usd)
        first, last = self._keep_images(draft)
        payload = build_payload(
            draft, asked, image_url=first.url, last_frame_url=last.url if last else None
        )
        job, created = self._write_job(
            draft,
            asked,
            payload,
            first=first,
            last=last,
            submission_id=submission_id,
            session_id=session_id,
            mode=mode,
            key_fingerprint=key_fingerprint,
            guard=guard,
        )
        if not created:
            return job
        return self._send(job, payload, client=client)

    def _keep_images(self, draft: JobDraft) -> tuple[_HostedImage, _HostedImage | None]:
        """Keep and host the draft's first and last frames."""
        # Kept before sending, so history can show and reuse them whatever happens next.
        assert draft.image is not None  # a draft without problems has a first frame
        first = self._keep(draft.image)
        last = self._keep(draft.last_frame) if draft.last_frame is not None else None
        return first, last

    def _keep(self, image: PreparedImage) -> _HostedImage:
        sha256 = self.library.save(image.data, format=image.format)
        return _HostedImage(sha256=sha256, url=self.image_host.url_for(image))

    def _write_job(
        self,
        draft: JobDraft,
        asked: Quote,
        payload: SubmitPayload,
        *,
        first: _HostedImage,
        last: _HostedImage | None,
        submission_id: str,
        session_id: str | None,
        mode: str,
        key_fingerprint: str | None,
        guard: SpendGuard | None,
    ) -> tuple[Job, bool]:
        """The job in the store, ``submitting``, before any byte leaves; False if it was there."""
        hosted = {image.url: image.sha256 for image in (first, last) if image is not None}
        return self.store.create_job(
            submission_id=submission_id,
            mode=mode,
            session_id=session_id,
            model=asked.spec.id,
            resolution=asked.resolution,
            duration=asked.duration,
            prompt=draft.prompt,
            negative_prompt=draft.negative_prompt,
            prompt_extend=draft.prompt_extend,
            watermark=draft.watermark,
            seed=draft.seed,
            image_sha256=first.sha256,
            image_source=draft.image_source,
            last_frame_sha256=last.sha256 if last else None,
            estimate_usd=asked.cost_usd,
            output_width=asked.output_width,
            output_height=asked.output_height,
            key_fingerprint=key_fingerprint,
            request_json=recordable_payload(payload.body, hosted),
            guard=guard,
        )

    def _send(self, job: Job, payload: SubmitPayload, *, client: GatewayClient) -> Job:
        """Send the written job once and record the receipt or why it failed."""
        sent_at = _utcnow()
        try:
            # If this process dies while sending, the watcher finds the job after the grace period
            # and marks it uncertain rather than leaving it "sending" for ever.
            self.store.update(
                job.id,
                submitted_at=sent_at,
                next_poll_at=sent_at + timedelta(seconds=self.policy.submit_grace),
            )
        except Exception:
            logger.exception("job %s: could not get ready to send it", job.id)
            return self._record_failure(job.id, _not_sent())
        try:
            receipt = client.submit(payload.body, path=payload.path)
        except GatewayError as error:
            return self._record_failure(job.id, error)
        except Exception:
            # The client turns every failure before the request leaves into a GatewayError that
            # says it was not sent, so this one came while the request may have been on its way.
            logger.exception("job %s: unexpected error while sending it", job.id)
            return self._record_failure(
                job.id,
                GatewayConnectionError(
                    "Wan Studio hit an unexpected problem while sending the job.",
                    may_have_reached_server=True,
                ),
            )
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
        return queued or self._current(job.id)

    def _record_failure(self, job_id: int, error: GatewayError) -> Job:
        if submit_was_certainly_refused(error):
            changed = self.store.transition(
                job_id,
                expected=_ANSWERED,
                status=JobStatus.REJECTED,
                error_code=getattr(error, "code", None) or type(error).__name__,
                error_message=error.message,
                explanation=explain_rejection(error),
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
