"""The command line, ``python -m studio``: the same engine as the app, for people who automate.

Settings come from the environment as in the app (``PIXAZO_API_KEY``, ``PIXAZO_BASE_URL``,
``WAN_STUDIO_HOME``, ``WAN_STUDIO_DATABASE_URL``); without a key it runs in demo mode. Results go
to stdout (a video's path, a job id, tables or ``--json``), progress and problems to stderr, and
the exit code says what happened: 0 done, 1 unexpected error, 2 invalid input, 3 the job did not
produce a video (for a batch: some clip did not go, or made no video), 4 a spending limit blocked
it (nothing sent), 130 interrupted while waiting.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote, urlsplit

from studio.catalog import default_catalog
from studio.errors import redact
from studio.export import (
    job_to_json,
    jobs_csv,
    jobs_json,
    people_spend_to_json,
    totals_to_json,
)
from studio.generation import JobDraft
from studio.humane import cost_phrase, money, plural, short_cost, shorten, stopwatch
from studio.images import ImageRejected, PreparedImage
from studio.keys import KeyRequired
from studio.limits import SpendingLimitReached
from studio.linkfetch import LinkRejected
from studio.people import PersonSpend, owner_email
from studio.records import Job, JobFilter, JobStatus, Spend
from studio.schedule import PollPolicy
from studio.service import RECHECKABLE, Studio, resend_submission_id
from studio.settings import Settings, redacted_database_url
from studio.variations import (
    MAX_CLIPS,
    MAX_MODELS,
    MIN_CLIPS,
    VariationKind,
    Variations,
    quote_batch,
)

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INVALID = 2
EXIT_JOB_FAILED = 3
EXIT_LIMIT = 4  # a spending limit blocked the job: nothing was written or sent
EXIT_INTERRUPTED = 130

# How often `watch` and `--wait` look at the store for news (the watcher does the polling).
_REPORT_SECONDS = 0.5
_PROMPT_COLUMN = 40
# Who made the jobs of a deployment without sign-in (or before it), in the per-person table.
_NOBODY = "(without sign-in)"


class CommandFailed(Exception):
    """Ends a command with a message (and an optional hint) on stderr and an exit code."""

    def __init__(self, exit_code: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class _Context:
    """What every command gets: the settings and how to open the engine."""

    settings: Settings
    poll_policy: PollPolicy | None

    @contextmanager
    def studio(self, *, watch: bool) -> Iterator[Studio]:
        # The one place the command line loads the shipped catalog.
        studio = Studio.open(
            self.settings,
            start_watcher=watch,
            catalog=default_catalog(),
            poll_policy=self.poll_policy,
        )
        try:
            yield studio
        finally:
            studio.close()


# Characters a terminal acts on rather than shows: C0 controls but tab and line break, DEL, C1
# controls, and the marks that reorder text on screen. A prompt or a gateway message holding
# ESC [ 31 m would colour the terminal, one with U+202E would show its words reversed.
_TERMINAL_CONTROLS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def terminal_safe(text: str) -> str:
    """``text`` with every terminal control written out as ``\\uXXXX``, so it shows, not acts.

    Inside a JSON string that is the character's own escape, so ``--json`` output keeps it.
    """
    return _TERMINAL_CONTROLS.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _say(text: str = "") -> None:
    print(terminal_safe(text), file=sys.stderr, flush=True)


def _out(text: str) -> None:
    print(terminal_safe(text), flush=True)


# -- formatting ----------------------------------------------------------------------------------


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "—"


def _spend_text(spend: Spend) -> str:
    """``3 jobs, 2 videos, 10 s, $0.450 · 1 pending ($0.225)``: a demo column's money is what
    its videos would have cost."""
    if not spend.jobs:
        return "—"
    said = (
        f"{plural(spend.jobs, 'job')}, {plural(spend.videos, 'video')}, {spend.seconds} s, "
        f"{money(spend.cost_usd)}"
    )
    return said + (
        f" · {spend.pending} pending ({money(spend.pending_usd)})" if spend.pending else ""
    )


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# -- images --------------------------------------------------------------------------------------


def _is_link(source: str) -> bool:
    return "://" in source


def _link_name(url: str) -> str:
    path = unquote(urlsplit(url).path)
    return path.rsplit("/", 1)[-1] or url


def _read_source(studio: Studio, source: str, *, option: str) -> tuple[str, bytes]:
    """Return the image's name (for notes about its extension) and its bytes."""
    if _is_link(source):
        try:
            fetched = studio.load_link(source)
        except LinkRejected as refusal:
            raise CommandFailed(EXIT_INVALID, f"{option}: {refusal}") from None
        return _link_name(fetched.final_url), fetched.data
    path = Path(source).expanduser()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CommandFailed(
            EXIT_INVALID,
            f"{option}: cannot read {source} ({error.strerror or error}).",
            hint="Give the path of a JPEG, PNG, BMP or WEBP file, or an http(s) link.",
        ) from None
    return path.name, data


def load_frame(studio: Studio, source: str, *, fix: bool, option: str) -> PreparedImage:
    """Read an image file or link and make it ready to send, applying fixes only when allowed.

    Parameters
    ----------
    studio
        The engine (its link guard honours the trusted image hosts).
    source
        A file path or an http(s) link.
    fix
        Apply the one-click fixes for broken rules (``--fix-image``); otherwise refuse.
    option
        The option the image came from, for messages.

    Returns
    -------
    PreparedImage
        The bytes to send; ``fixes`` says what was changed.

    Raises
    ------
    CommandFailed
        With every problem found when the image cannot be used (as it is, or at all).
    """
    name, data = _read_source(studio, source, option=option)
    try:
        reading = studio.read_upload(name, data)
    except ImageRejected as refusal:
        raise CommandFailed(EXIT_INVALID, f"{option}: {refusal}") from None
    check = reading.check
    for note in check.notes:
        _say(f"note: {note}")
    if not check.ok:
        problems = "\n".join(f"  - {problem.message}" for problem in check.problems)
        if not check.can_fix:
            raise CommandFailed(
                EXIT_INVALID,
                f"{option}: the gateway would refuse {name}:\n{problems}",
                hint="No automatic fix helps here: choose another image.",
            )
        if not fix:
            fixes = "\n".join(f"  - {problem.fix}" for problem in check.problems)
            raise CommandFailed(
                EXIT_INVALID,
                f"{option}: the gateway would refuse {name}:\n{problems}",
                hint=f"Run again with --fix-image to apply these fixes (your file stays as it "
                f"is):\n{fixes}",
            )
    prepared = reading.prepared
    if prepared is None:
        raise CommandFailed(EXIT_INVALID, f"{option}: {reading.refusal}")
    for done in prepared.fixes:
        _say(f"fixed: {done}")
    for warning in prepared.warnings:
        _say(f"warning: {warning}")
    return prepared


# -- commands ------------------------------------------------------------------------------------


def _generate(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=options.wait) as studio:
        image = load_frame(studio, options.image, fix=options.fix_image, option="--image")
        last = None
        if options.last_frame:
            last = load_frame(
                studio, options.last_frame, fix=options.fix_image, option="--last-frame"
            )
        models, prompts = options.model or [studio.catalog.default_model.id], options.prompt
        variations = _variations(options)
        draft = JobDraft(
            model=models[0],
            resolution=options.resolution.upper() if options.resolution else None,
            duration=options.duration,
            prompt=prompts[0],
            negative_prompt=options.negative_prompt,
            prompt_extend=options.prompt_extend,
            watermark=options.watermark,
            seed=options.seed,
            image=image,
            image_source=_source_label(options.image),
            last_frame=last,
        )
        if variations is not None:
            return _generate_batch(
                studio, draft, variations, wait=options.wait, owner=options.owner
            )
        if problems := studio.check_draft(draft):
            lines = "\n".join(f"  - {problem.field}: {problem.message}" for problem in problems)
            raise CommandFailed(EXIT_INVALID, f"These settings cannot be sent:\n{lines}")
        estimate = studio.estimate(draft)
        size = (
            f", {estimate.output_width}×{estimate.output_height} px"
            if estimate.output_width
            else ""
        )
        _say(f"{draft.model}: {estimate.text}{size}")
        _say_limits_left(studio, owner=options.owner)

        try:
            job = studio.submit(
                draft,
                submission_id=str(uuid.uuid4()),
                session_id=_cli_session(),
                owner=options.owner,
            )
        except SpendingLimitReached as reached:
            raise _limit_reached(reached) from None
        if not job.in_flight:
            raise _job_failure(job)
        _say(f"Job {job.id} sent ({job.status.label.lower()}), task {job.task_id}.")
        return _follow(studio, job, wait=options.wait)


def _say_limits_left(studio: Studio, *, owner: str | None) -> None:
    """What the spending limits leave, for the team or, with an owner, for that person."""
    if limits := studio.spending_status(studio.mode, owner=owner):
        whose = f" for {owner}" if owner else ""
        _say(f"Spending limit{whose}: {limits.left_words()}.")


def _limit_reached(reached: SpendingLimitReached) -> CommandFailed:
    return CommandFailed(
        EXIT_LIMIT,
        f"{reached} Nothing was sent or billed.",
        hint="An administrator can raise the limit on the app's Settings page.",
    )


def _variations(options: argparse.Namespace) -> Variations | None:
    """The batch the options ask for (several seeds, prompts or models), or None for one clip."""
    asked = []
    if options.variations is not None:
        asked.append(Variations(VariationKind.SEEDS, count=options.variations))
    if len(options.prompt) > 1:
        asked.append(Variations(VariationKind.PROMPTS, prompts=tuple(options.prompt)))
    if options.model and len(options.model) > 1:
        asked.append(Variations(VariationKind.MODELS, models=tuple(options.model)))
    if len(asked) > 1:
        raise CommandFailed(
            EXIT_INVALID,
            "Vary one thing at a time: give --variations, or several --prompt, or several "
            "--model, not more than one of them.",
        )
    return asked[0] if asked else None


def _generate_batch(
    studio: Studio,
    draft: JobDraft,
    variations: Variations,
    *,
    wait: bool,
    owner: str | None = None,
) -> int:
    """Show the batch's price, send every clip once, and report each clip."""
    if problems := studio.check_batch(draft, variations):
        lines = "\n".join(f"  - {problem.field}: {problem.message}" for problem in problems)
        raise CommandFailed(EXIT_INVALID, f"These settings cannot be sent:\n{lines}")
    priced = quote_batch(variations.expand(draft, studio.catalog), studio.catalog)
    price = priced.arithmetic()
    if not studio.key_for_new_job().billed:
        price = f"demo, not billed: would cost {price}"
    _say(f"{priced.summary()}: {price}")

    _say_limits_left(studio, owner=owner)
    try:
        batch = studio.submit_batch(
            draft,
            variations,
            submission_id=str(uuid.uuid4()),
            session_id=_cli_session(),
            owner=owner,
        )
    except SpendingLimitReached as reached:
        raise _limit_reached(reached) from None
    for number, job in enumerate(batch.jobs, start=1):
        if job.in_flight:
            _say(f"Clip {number}: job {job.id} sent ({job.status.label.lower()}).")
        else:
            _say(f"Clip {number}: job {job.id}: {job.status.label.lower()}.")
    if not wait:
        for job in batch.went:
            _out(str(job.id))
        if failure := _batch_failure(batch.jobs, what="did not go"):
            raise failure
        _say(
            "The app or `python -m studio watch` finishes them; `python -m studio jobs` tells "
            "where they are."
        )
        return EXIT_OK
    ended = [
        _wait_for(studio, job, label=f"Clip {number}") if job.in_flight else job
        for number, job in enumerate(batch.jobs, start=1)
    ]
    for job in ended:
        video = _saved_video(studio, job)
        if job.status is JobStatus.SUCCEEDED and video is not None:
            _out(video)
    if failure := _batch_failure(ended, what="made no video"):
        raise failure
    done = studio.batch(batch.id) or batch
    cost = "Demo, not billed." if ended[0].is_demo else f"Billed {money(done.cost_usd)}."
    _say(f"Done: {plural(len(ended), 'video')}. {cost}")
    return EXIT_OK


def _saved_video(studio: Studio, job: Job) -> str | None:
    """Where a finished job's video is: its file, or in object storage a short-lived link."""
    video = studio.video_file(job)
    if video is not None:
        return str(video)
    return studio.video_url(job, file_name=f"wan-{job.id}.mp4")


def _batch_failure(jobs: Sequence[Job], *, what: str) -> CommandFailed | None:
    """Which clips of a batch ended without a video, as the command's failure; None if none."""
    failed = [
        (number, job)
        for number, job in enumerate(jobs, start=1)
        if not (job.in_flight or job.status is JobStatus.SUCCEEDED)
    ]
    if not failed:
        return None
    names = ", ".join(
        f"clip {number} (job {job.id}, {job.status.label.lower()})" for number, job in failed
    )
    # Each clip's own words, once each: they say whether it was billed and what to do.
    explanations = dict.fromkeys(job.explanation for _, job in failed if job.explanation)
    return CommandFailed(
        EXIT_JOB_FAILED,
        f"{len(failed)} of {plural(len(jobs), 'clip')} {what}: {names}.",
        hint=" ".join(explanations) or None,
    )


def _cli_session() -> str:
    return f"cli-{uuid.uuid4().hex[:12]}"


def _follow(studio: Studio, job: Job, *, wait: bool) -> int:
    """Print the job's id and where it goes from here; with ``wait``, follow it to its video."""
    if not wait:
        _out(str(job.id))
        _say(
            f"The app or `python -m studio watch` finishes it; `python -m studio show "
            f"{job.id}` tells where it is."
        )
        return EXIT_OK
    job = _wait_for(studio, job)
    video = _saved_video(studio, job)
    if job.status is not JobStatus.SUCCEEDED or video is None:
        raise _job_failure(job)
    _say(f"Done: {job.billed_seconds or job.duration} s of video. {cost_phrase(job)}.")
    _out(video)
    return EXIT_OK


def _source_label(source: str) -> str:
    # A link is kept as given; a file by its name only (its folder means nothing elsewhere).
    return source if _is_link(source) else Path(source).name


def _wait_for(studio: Studio, job: Job, *, label: str = "") -> Job:
    started = time.monotonic()
    prefix = f"{label}: " if label else ""

    def report(current: Job) -> None:
        _say(f"{stopwatch(time.monotonic() - started):>6}  {prefix}{current.status.label}")

    try:
        return studio.wait(job.id, every=_REPORT_SECONDS, on_change=report)
    except KeyboardInterrupt:
        raise CommandFailed(
            EXIT_INTERRUPTED,
            f"Stopped waiting. Job {job.id} goes on at the gateway.",
            hint=f"`python -m studio watch --until-idle` finishes it; `python -m studio show "
            f"{job.id}` tells where it is.",
        ) from None


def next_steps(job: Job) -> str | None:
    """The commands that settle a job whose sending is uncertain or that ended unseen, if any."""
    if job.status is JobStatus.UNCERTAIN:
        return (
            f"`python -m studio resend {job.id}` sends it again (it may be billed twice); "
            f"`python -m studio dismiss {job.id}` gives up on it. The app's History has the "
            "same buttons."
        )
    if job.status in RECHECKABLE and job.task_id:
        return (
            f"`python -m studio check {job.id}` asks the gateway about it once more, as Check "
            "again does in the app's History."
        )
    return None


def _job_failure(job: Job) -> CommandFailed:
    said = f" The gateway said: {job.error_code}" if job.error_code else ""
    if job.error_message:
        said += f" ({job.error_message})" if said else f" The gateway said: {job.error_message}"
    hint = " ".join(part for part in (job.explanation, next_steps(job)) if part)
    return CommandFailed(
        EXIT_JOB_FAILED, f"Job {job.id}: {job.status.label.lower()}.{said}", hint=hint or None
    )


def _jobs(options: argparse.Namespace, context: _Context) -> int:
    where = JobFilter(statuses=options.status, models=options.model, owner=options.owner)
    with context.studio(watch=False) as studio:
        found = studio.history(where, limit=options.limit)
        if options.json:
            _out(_dumps(jobs_json(found, studio.video_file)))
            return EXIT_OK
        if options.csv:
            # What History's "Export CSV" gives for the same filters, to the given limit.
            sys.stdout.write(jobs_csv(found).decode("utf-8"))
            return EXIT_OK
        if not found:
            filtered = options.status or options.model or options.owner
            _say("No job matches." if filtered else "No jobs yet.")
            return EXIT_OK
        rows = [["ID", "CREATED", "MODE", "MODEL", "RES", "DUR", "STATUS", "COST", "PROMPT"]]
        rows += [
            [
                str(job.id),
                _local(job.created_at),
                job.mode,
                job.model,
                job.resolution,
                f"{job.duration} s",
                job.status.label,
                short_cost(job),
                shorten(job.prompt, _PROMPT_COLUMN),
            ]
            for job in found
        ]
        _out(_table(rows))
        return EXIT_OK


def _existing_job(studio: Studio, job_id: int) -> Job:
    job = studio.job(job_id)
    if job is None:
        raise CommandFailed(
            EXIT_INVALID, f"There is no job {job_id}.", hint="`python -m studio jobs` lists them."
        )
    return job


def _show(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=False) as studio:
        job = _existing_job(studio, options.job)
        video = studio.video_file(job)
        if options.json:
            _out(_dumps(job_to_json(job, video)))
            return EXIT_OK
        lines = [
            ("Job", f"{job.id} ({job.mode})"),
            ("Status", job.status.label),
            ("Model", f"{job.model}, {job.resolution}, {job.duration} s"),
            ("Prompt", job.prompt or "—"),
        ]
        if job.negative_prompt:
            lines.append(("Negative prompt", job.negative_prompt))
        if job.prompt_was_improved:
            lines.append(("Improved prompt", job.actual_prompt or ""))
        lines += [
            ("Seed", "—" if job.seed is None else str(job.seed)),
            ("Image", job.image_source or job.image_sha256),
            ("Created", _local(job.created_at)),
            ("Finished", _local(job.finished_at)),
            ("Task", job.task_id or "—"),
            ("Cost", cost_phrase(job)),
            ("Video", str(video) if video else "—"),
        ]
        if job.error_code or job.error_message:
            said = " ".join(part for part in (job.error_code, job.error_message) if part)
            lines.append(("Gateway said", said))
        if job.explanation:
            lines.append(("What to do", job.explanation))
        if steps := next_steps(job):
            lines.append(("Next", steps))
        width = max(len(label) for label, _ in lines)
        _out("\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in lines))
        return EXIT_OK


def _check(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=options.wait) as studio:
        job = _existing_job(studio, options.job)
        if not studio.can_recheck(job):
            raise CommandFailed(
                EXIT_INVALID,
                f"Job {job.id} is {job.status.label.lower()}; only a job that took too long, "
                "was lost or expired, and that the gateway may still know, can be checked again.",
            )
        _require_key(studio, job, doing="check it again")
        job = studio.recheck(job.id)
        _say(f"Job {job.id}: asking the gateway about task {job.task_id} again.")
        return _follow(studio, job, wait=options.wait)


def _resend(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=options.wait) as studio:
        old = _existing_job(studio, options.job)
        if not studio.can_resend(old):
            # Also a second `resend`: the job was already sent again (its explanation says how).
            raise CommandFailed(
                EXIT_INVALID,
                f"Job {old.id} is {old.status.label.lower()}; only a job whose sending is "
                "uncertain can be sent again.",
                hint=old.explanation,
            )
        try:
            # Only with a key this process holds: the environment's key, or the demo gateway.
            new = studio.resend(
                old.id, submission_id=resend_submission_id(old), session_id=_cli_session()
            )
        except KeyRequired:
            raise _key_not_held(old, doing="send it again") from None
        except SpendingLimitReached as reached:
            raise _limit_reached(reached) from None
        except ValueError as refusal:
            raise CommandFailed(EXIT_INVALID, str(refusal)) from None
        if not new.in_flight:
            raise _job_failure(new)
        _say(
            f"Job {old.id} sent again as job {new.id} ({new.status.label.lower()}), task "
            f"{new.task_id}. If the first attempt did reach the gateway, it may be billed twice."
        )
        return _follow(studio, new, wait=options.wait)


def _dismiss(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=False) as studio:
        job = _existing_job(studio, options.job)
        if not studio.can_resend(job):
            raise CommandFailed(
                EXIT_INVALID,
                f"Job {job.id} is {job.status.label.lower()}; only a job whose sending is "
                "uncertain can be dismissed.",
            )
        dismissed = studio.dismiss(job.id)
        _say(f"Job {job.id}: {dismissed.status.label.lower()}. {dismissed.explanation or ''}")
        return EXIT_OK


def _require_key(studio: Studio, job: Job, *, doing: str) -> None:
    if not studio.can_watch(job):
        raise _key_not_held(job, doing=doing)


def _key_not_held(job: Job, *, doing: str) -> CommandFailed:
    return CommandFailed(
        EXIT_INVALID,
        f"Job {job.id} was made with an API key this process does not hold, so it cannot {doing}.",
        hint="Set PIXAZO_API_KEY to the key the job was made with and run again.",
    )


def _totals(options: argparse.Namespace, context: _Context) -> int:
    with context.studio(watch=False) as studio:
        if options.by_person:
            return _spend_by_person(studio.spend_by_person(), as_json=options.json)
        # A command line run is not a session: only today, all time and the models mean anything.
        totals = studio.totals(None, owner=options.owner)
    if options.json:
        _out(_dumps(totals_to_json(totals)))
        return EXIT_OK
    rows = [["", "BILLED", "DEMO (not billed: what it would have cost)"]]
    rows += [
        ["Today", _spend_text(totals.today.billed), _spend_text(totals.today.demo)],
        ["All time", _spend_text(totals.all_time.billed), _spend_text(totals.all_time.demo)],
    ]
    if totals.by_model:
        rows.append(["By model, all time:", "", ""])
        rows += [
            [f"  {model}", _spend_text(modes.billed), _spend_text(modes.demo)]
            for model, modes in totals.by_model.items()
        ]
    _out(_table(rows))
    return EXIT_OK


def _spend_by_person(people: list[PersonSpend], *, as_json: bool) -> int:
    """Each person's billed spend today, this month and all time (demo videos cost nothing)."""
    if as_json:
        _out(_dumps(people_spend_to_json(people)))
        return EXIT_OK
    if not people:
        _say("No jobs yet.")
        return EXIT_OK
    rows = [["PERSON", "TODAY", "THIS MONTH", "ALL TIME", "DEMO VIDEOS (all time)"]]
    rows += [
        [
            row.email or _NOBODY,
            _spend_text(row.today.billed),
            _spend_text(row.this_month.billed),
            _spend_text(row.all_time.billed),
            str(row.all_time.demo.videos),
        ]
        for row in people
    ]
    _out(_table(rows))
    total = sum((row.all_time.billed.cost_usd for row in people), start=Decimal(0))
    _say(f"Billed all time, everyone together: {money(total)}.")
    return EXIT_OK


def _watch(options: argparse.Namespace, context: _Context) -> int:
    stop = threading.Event()
    with context.studio(watch=False) as studio, _stop_on_sigterm(stop):
        waiting = studio.jobs_waiting_for_key()
        if waiting:
            _say(
                f"{len(waiting)} job(s) were made with an API key this process does not hold; "
                "set PIXAZO_API_KEY to that key to resume them."
            )
        seen = {job.id: job.status for job in studio.watchable_jobs()}
        if options.until_idle and not seen:
            _say("Nothing in flight.")
            return EXIT_OK
        studio.start_watcher()
        ending = " until nothing is in flight" if options.until_idle else "; Ctrl-C to stop"
        _say(f"Watching {len(seen)} job(s) in flight{ending}.")
        try:
            while not stop.wait(_REPORT_SECONDS):
                current = {job.id: job for job in studio.watchable_jobs()}
                for job_id in sorted(set(seen) - set(current)):
                    ended = studio.job(job_id)
                    if ended is not None:
                        _report(studio, ended)
                for job in current.values():
                    if seen.get(job.id) is not job.status:
                        _report(studio, job)
                seen = {job.id: job.status for job in current.values()}
                if options.until_idle and not current:
                    _say("Nothing left in flight.")
                    break
        except KeyboardInterrupt:
            _say("Stopping; jobs still in flight resume with the next watcher.")
    return EXIT_OK


def _migrate(_options: argparse.Namespace, context: _Context) -> int:
    # Imported here, as the engine is everywhere else: the parser alone stays quick.
    from studio.migrations import LATEST_VERSION, SchemaTooNew
    from studio.store import JobStore

    where = redacted_database_url(context.settings.database_url)
    try:
        before, after = JobStore.migrate(context.settings.database_url)
    except SchemaTooNew as problem:
        raise CommandFailed(EXIT_UNEXPECTED, f"{problem}.") from None
    if before == after:
        _say(f"The database {where} is up to date.")
    else:
        _say(f"The database {where} was at schema version {before}; migrated.")
    _out(f"schema version {after} (the latest this version of Wan Studio knows: {LATEST_VERSION})")
    return EXIT_OK


def _report(studio: Studio, job: Job) -> None:
    line = f"job {job.id}: {job.status.label}"
    if job.status is JobStatus.SUCCEEDED:
        video = studio.video_file(job)
        line += f", {video}" if video else ""
    elif not job.in_flight and job.explanation:
        line += f". {job.explanation}"
    _say(line)


@contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    # Signal handlers can only be set from the main thread (not when embedded in another program).
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _dumps(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


# -- parsing -------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _owner_option(text: str) -> str:
    try:
        return owner_email(text)
    except ValueError as problem:
        raise argparse.ArgumentTypeError(f"{problem}. Give the person's e-mail address.") from None


def _add_owner_option(command: argparse._ActionsContainer, *, help: str) -> None:
    command.add_argument(
        "--owner", type=_owner_option, metavar="EMAIL", help=help + " (case does not matter)"
    )


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m studio`` (each sub-command sets ``handler``)."""
    parser = argparse.ArgumentParser(
        prog="python -m studio",
        description="Wan Studio from the command line: turn an image into a video, list jobs "
        "and costs, or run the job watcher as a worker. Without PIXAZO_API_KEY it runs in demo "
        "mode on the built-in local gateway (nothing is billed).",
        epilog="Exit codes: 0 done, 1 unexpected error, 2 invalid input, 3 the job made no "
        "video (failed, refused, uncertain, lost, timed out), 4 a daily or monthly spending "
        "limit blocked it (nothing was sent), 130 interrupted.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(title="commands", dest="command", required=True)
    for add_command in (
        _add_generate,
        _add_jobs,
        _add_show,
        _add_check,
        _add_resend,
        _add_dismiss,
        _add_totals,
        _add_watch,
        _add_migrate,
    ):
        add_command(commands)
    return parser


_Commands = argparse._SubParsersAction  # the type of what ``add_subparsers`` returns


def _add_job_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("job", type=_positive_int, metavar="JOB", help="the job's id")


def _add_generate(commands: _Commands) -> None:
    generate = commands.add_parser(
        "generate",
        help="make a video from an image",
        description="Check the image and the settings, show the price, and send one job. "
        "With --wait, follow it until the video is saved and print the video's path on stdout; "
        "without it, print the job's id. --variations N, several --prompt or several --model "
        "make a batch instead (one of them at a time): each clip is its own job, the total "
        "price and its arithmetic are shown before anything is sent, and each clip's path (or "
        "id) is printed; the exit code is 3 when any clip made no video (or did not go).",
    )
    generate.add_argument("--image", required=True, metavar="PATH_OR_URL", help="first frame")
    generate.add_argument(
        "--prompt",
        required=True,
        action="append",
        help="what should happen in the video; repeat it for one clip per prompt "
        f"({MIN_CLIPS}-{MAX_CLIPS})",
    )
    generate.add_argument("--negative-prompt", default="", help="what to avoid")
    generate.add_argument(
        "--model",
        action="append",
        help="model id (default: the recommended model); repeat it for the same frame and "
        f"prompt across {MIN_CLIPS} or {MAX_MODELS} models",
    )
    generate.add_argument(
        "--variations",
        type=_positive_int,
        metavar="N",
        help=f"make N clips ({MIN_CLIPS}-{MAX_CLIPS}) that differ only by their seed",
    )
    generate.add_argument("--resolution", help="e.g. 480P, 720P, 1080P (default: the model's)")
    generate.add_argument(
        "--duration", type=_positive_int, metavar="N", help="seconds (default: the model's)"
    )
    generate.add_argument(
        "--seed", type=_whole_number, metavar="N", help="fix the seed (default: random)"
    )
    generate.add_argument(
        "--no-prompt-extend",
        dest="prompt_extend",
        action="store_false",
        help="send the prompt as written (by default the gateway improves it)",
    )
    generate.add_argument(
        "--watermark", action="store_true", help='draw "Generated by AI" on the video'
    )
    generate.add_argument(
        "--last-frame", metavar="PATH_OR_URL", help="last frame (first-and-last-frame models)"
    )
    generate.add_argument(
        "--fix-image",
        action="store_true",
        help="apply the fixes an image needs (scale, recompress, convert) instead of refusing it",
    )
    generate.add_argument(
        "--wait", action="store_true", help="follow the job until done; print the video's path"
    )
    _add_owner_option(
        generate,
        help="count the job (or batch) to this person, as if they had made it signed in to the "
        "app: it is theirs in History and their own spending limits apply",
    )
    generate.set_defaults(handler=_generate)


def _add_jobs(commands: _Commands) -> None:
    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    output = jobs.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV, as History exports it")
    jobs.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="at most N")
    jobs.add_argument(
        "--status",
        action="append",
        choices=[status.value for status in JobStatus],
        metavar="S",
        help="only this status (repeatable): " + ", ".join(status.value for status in JobStatus),
    )
    jobs.add_argument("--model", action="append", metavar="M", help="only this model (repeatable)")
    _add_owner_option(jobs, help="only the jobs this person made")
    jobs.set_defaults(handler=_jobs)


def _add_show(commands: _Commands) -> None:
    show = commands.add_parser("show", help="everything about one job")
    _add_job_argument(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=_show)


def _add_check(commands: _Commands) -> None:
    check = commands.add_parser(
        "check",
        help="ask the gateway about a job that took too long once more",
        description="For a job that timed out, was lost or expired: ask the gateway about its "
        "task again (with --wait, follow it and print the video's path).",
    )
    _add_job_argument(check)
    check.add_argument("--wait", action="store_true", help="follow the job until done")
    check.set_defaults(handler=_check)


def _add_resend(commands: _Commands) -> None:
    resend = commands.add_parser(
        "resend",
        help="send a job whose sending is uncertain again (it may be billed twice)",
        description="For a job whose submit answer was lost: send it again as a new job, with "
        "the key of this process (PIXAZO_API_KEY). If the first attempt did reach the gateway, "
        "both may be billed.",
    )
    _add_job_argument(resend)
    resend.add_argument("--wait", action="store_true", help="follow the new job until done")
    resend.set_defaults(handler=_resend)


def _add_dismiss(commands: _Commands) -> None:
    dismiss = commands.add_parser(
        "dismiss",
        help="give up on a job whose sending is uncertain",
        description="For a job whose submit answer was lost: stop counting on it, without "
        "sending it again.",
    )
    _add_job_argument(dismiss)
    dismiss.set_defaults(handler=_dismiss)


def _add_totals(commands: _Commands) -> None:
    totals = commands.add_parser("totals", help="costs today, all time and by model")
    totals.add_argument("--json", action="store_true", help="print JSON")
    whose = totals.add_mutually_exclusive_group()
    _add_owner_option(whose, help="only the jobs this person made")
    whose.add_argument(
        "--by-person",
        action="store_true",
        help="each person's billed spend today, this month and all time, most this month first",
    )
    totals.set_defaults(handler=_totals)


def _add_watch(commands: _Commands) -> None:
    watch = commands.add_parser(
        "watch",
        help="run the job watcher as a worker",
        description="Poll every in-flight job and save each finished video, until Ctrl-C or "
        "SIGTERM. Safe beside the app and other workers: jobs are leased.",
    )
    watch.add_argument("--until-idle", action="store_true", help="stop once nothing is in flight")
    watch.set_defaults(handler=_watch)


def _add_migrate(commands: _Commands) -> None:
    migrate = commands.add_parser(
        "migrate",
        help="bring the database's schema up to date and print its version",
        description="Apply the database migrations this version of Wan Studio brings, once, "
        "and print the schema version on stdout. The app and `watch` do the same when they "
        "start; run this first to upgrade a shared database before starting new processes. "
        "Safe to run while other processes use the database, and to run again.",
    )
    migrate.set_defaults(handler=_migrate)


def main(argv: list[str] | None = None, *, poll_policy: PollPolicy | None = None) -> int:
    """Run one command of ``python -m studio`` and return its exit code.

    Parameters
    ----------
    argv
        The arguments (``sys.argv[1:]`` by default).
    poll_policy
        The watcher's timing; the standard one by default (tests pass a faster one).

    Returns
    -------
    int
        0 done, 1 unexpected error, 2 invalid input, 3 the job made no video, 4 a spending
        limit blocked it, 130 interrupted.
    """
    parser = build_parser()
    try:
        options = parser.parse_args(argv)
    except SystemExit as exit_:
        # argparse has printed the usage and the problem (or the help).
        return exit_.code if isinstance(exit_.code, int) else EXIT_INVALID
    _configure_logging(verbose=options.verbose)
    try:
        settings = Settings.from_environment()
    except ValueError as problem:
        _say(f"error: {problem}")
        return EXIT_INVALID
    return _run(options, _Context(settings=settings, poll_policy=poll_policy))


def _configure_logging(*, verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if not verbose:
        # The demo gateway stopping mid-render makes the encoder complain; it means nothing here.
        logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)


def _run(options: argparse.Namespace, context: _Context) -> int:
    """Run the chosen command; turn what it raises into a message and an exit code."""
    handler: Callable[[argparse.Namespace, _Context], int] = options.handler
    try:
        return handler(options, context)
    except CommandFailed as failure:
        _say(f"error: {failure.message}")
        if failure.hint:
            _say(f"hint: {failure.hint}")
        return failure.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`python -m studio jobs | head`); not a failure. Point stdout at
        # nothing so that the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:
        # Never let the key slip out through an exception's text.
        key = [context.settings.api_key or ""]
        detail = redact(f"{type(error).__name__}: {error}", key)
        _say(f"error: something unexpected went wrong ({detail}).")
        if options.verbose:
            _say(redact("".join(traceback.format_exception(error)), key))
        else:
            _say("hint: run again with --verbose for the details.")
        return EXIT_UNEXPECTED
