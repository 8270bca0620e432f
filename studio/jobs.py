"""Turning what the user set up into one job: checked, written to the store, then sent exactly once.

The order is the point. The job is in the store (status ``submitting``, a unique submission id)
before any byte leaves, and the submit is never repeated by this code: a second call with the same
submission id returns the job already written, and an answer lost after the request may have
reached the gateway leaves the job ``uncertain`` for the user to decide.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from studio.catalog import Catalog
from studio.errors import GatewayConnectionError, GatewayError, RequestNotSentError
from studio.explain import explain_rejection, explain_uncertain, submit_was_certainly_refused
from studio.generation import FieldProblem, GenerationRequest, InvalidRequest
from studio.pricing import estimate_cost, output_size
from studio.records import Job, JobStatus

if TYPE_CHECKING:
    # Only named in annotations: the form imports this module for drafts, and must not wait
    # for SQLAlchemy, requests or Pillow to be imported before it can be drawn.
    from studio.gateway import GatewayClient
    from studio.imagehost import ImageHost
    from studio.images import ImageLibrary, PreparedImage
    from studio.schedule import PollPolicy
    from studio.store import JobStore

logger = logging.getLogger("studio.jobs")

# Stands in for an image while a draft is checked, before any image is hosted.
_PENDING_IMAGE_URL = "data:image/png;base64,"
# GenerationRequest's field names, as the draft (and so the form) calls them.
_DRAFT_FIELDS = {"image_url": "image", "last_frame_url": "last_image"}
_ANSWERED = frozenset({JobStatus.SUBMITTING, JobStatus.UNCERTAIN})


@dataclass(frozen=True)
class JobDraft:
    """Everything the user chose for one video, before it becomes a job.

    ``resolution`` and ``duration`` None mean the model's defaults; ``seed`` None means a random
    seed, drawn at submit and recorded so that "use these settings again" reproduces the video.
    """

    model: str
    resolution: str | None = None
    duration: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    prompt_extend: bool = True
    watermark: bool = False
    seed: int | None = None
    image: PreparedImage | None = None
    image_source: str | None = None
    last_image: PreparedImage | None = None

    def to_request(
        self, *, image_url: str, last_frame_url: str | None = None, seed: int | None = None
    ) -> GenerationRequest:
        """The gateway request for this draft with its images hosted at the given URLs."""
        return GenerationRequest(
            model=self.model,
            image_url=image_url,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            resolution=self.resolution,
            duration=self.duration,
            prompt_extend=self.prompt_extend,
            watermark=self.watermark,
            seed=self.seed if seed is None else seed,
            last_frame_url=last_frame_url,
        )


def draft_problems(draft: JobDraft, catalog: Catalog) -> list[FieldProblem]:
    """Return everything that would stop this draft from being sent, in form order.

    Parameters
    ----------
    draft
        The user's choices.
    catalog
        The models and limits to check against.

    Returns
    -------
    list of FieldProblem
        Empty when it can be sent. Image problems name the draft's fields (``image``,
        ``last_image``), every other one the request's.
    """
    request = draft.to_request(
        image_url=_PENDING_IMAGE_URL if draft.image is not None else "",
        last_frame_url=_PENDING_IMAGE_URL if draft.last_image is not None else None,
    )
    return [
        FieldProblem(_DRAFT_FIELDS.get(problem.field, problem.field), problem.message)
        for problem in request.validate(catalog)
    ]


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
    ) -> Job:
        """Write the job, send it once, and record what the gateway answered.

        Parameters
        ----------
        draft
            The user's choices; checked first.
        client
            The gateway client holding the key this job is billed to.
        submission_id
            Unique per click of Generate: the same id again returns the same job, never a second
            task.
        session_id
            The browser session, for "this session" lists and totals.
        mode
            ``demo`` or ``billed``.
        key_fingerprint
            The salted fingerprint of the key, so the watcher can match the job to the key.

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
        """
        existing = self.store.get_by_submission(submission_id)
        if existing is not None:
            return existing
        if problems := draft_problems(draft, self.catalog):
            raise InvalidRequest(problems)
        assert draft.image is not None  # draft_problems reports a missing image
        seed = draft.seed if draft.seed is not None else draw_seed(self.catalog)

        # Kept before sending, so history can show and reuse the image whatever happens next.
        image_sha = self.library.save(draft.image.data, format=draft.image.format)
        hosted = {self.image_host.url_for(draft.image): image_sha}
        last_sha = last_url = None
        if draft.last_image is not None:
            last_sha = self.library.save(draft.last_image.data, format=draft.last_image.format)
            last_url = self.image_host.url_for(draft.last_image)
            hosted[last_url] = last_sha
        image_url = next(iter(hosted))
        request = draft.to_request(
            image_url=image_url, last_frame_url=last_url, seed=seed
        ).resolved(self.catalog)
        payload = request.to_payload(self.catalog)
        resolution, duration = str(request.resolution), int(request.duration or 0)
        width, height = output_size(
            draft.image.width, draft.image.height, self.catalog.tier_pixels[resolution]
        )

        job, created = self.store.create_job(
            submission_id=submission_id,
            mode=mode,
            session_id=session_id,
            model=request.model,
            resolution=resolution,
            duration=duration,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            prompt_extend=request.prompt_extend,
            watermark=request.watermark,
            seed=seed,
            image_sha256=image_sha,
            image_source=draft.image_source,
            last_image_sha256=last_sha,
            estimate_usd=estimate_cost(self.catalog.model(request.model), resolution, duration),
            output_width=width,
            output_height=height,
            key_fingerprint=key_fingerprint,
            request_json=recordable_payload(payload, hosted),
        )
        if not created:
            return job

        sent_at = _utcnow()
        try:
            # If this process dies while sending, the watcher finds the job after the grace period
            # and marks it uncertain rather than leaving it "sending" for ever.
            self.store.update(
                job.id,
                submitted_at=sent_at,
                next_poll_at=sent_at + timedelta(seconds=self.policy.submit_grace),
            )
            submit_path = request.submit_path(self.catalog)
        except Exception:
            logger.exception("job %s: could not get ready to send it", job.id)
            return self._record_failure(job.id, _not_sent())
        try:
            receipt = client.submit(payload, path=submit_path)
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
