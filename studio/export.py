"""Jobs and totals as CSV and JSON: History's export and the command line's output share these.

Neither ever holds the key: a job's key is recorded only as a fingerprint, and that is not
exported either. Times are ISO 8601 in UTC, money is a decimal string. Who made a job is its
owner's e-mail, empty for a job made without sign-in.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from studio.compare import seconds_taken
from studio.people import PersonSpend
from studio.records import Job, ModeSpend, Spend, Totals

CSV_COLUMNS = (
    "created (UTC)",
    "mode",
    "model",
    "resolution",
    "duration (s)",
    "status",
    "prompt",
    "actual prompt",
    "seed",
    "task id",
    "billed seconds",
    "billed cost USD",
    "demo would-be cost USD",
    "estimate USD",
    "video file",
    "made by (e-mail)",
)
# Fields of a job in JSON; the lease, the key's fingerprint and the signed video link are the
# engine's business, not a script's.
JSON_FIELDS = (
    "id",
    "submission_id",
    "mode",
    "model",
    "resolution",
    "duration",
    "prompt",
    "negative_prompt",
    "prompt_extend",
    "watermark",
    "seed",
    "image_sha256",
    "image_source",
    "last_frame_sha256",
    "output_width",
    "output_height",
    "task_id",
    "created_at",
    "submitted_at",
    "queued_at",
    "started_at",
    "finished_at",
    "error_code",
    "error_message",
    "explanation",
    "actual_prompt",
    "billed_seconds",
    "cost_usd",
    "estimate_usd",
    "poll_count",
    "owner",
)
# A favourite's settings file, kept beside its video: what made the clip and what it cost. Each
# field is one of JSON_FIELDS, so it leaves out everything the export leaves out, and the request's
# workings (task and submission ids, error details, polls) too.
SETTINGS_FIELDS = (
    "id",
    "mode",
    "model",
    "resolution",
    "duration",
    "prompt",
    "negative_prompt",
    "prompt_extend",
    "watermark",
    "seed",
    "image_source",
    "image_sha256",
    "last_frame_sha256",
    "output_width",
    "output_height",
    "created_at",
    "started_at",
    "finished_at",
    "actual_prompt",
    "billed_seconds",
    "cost_usd",
    "estimate_usd",
)
# A cell starting with one of these is a formula to a spreadsheet (``=HYPERLINK(...)``).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def utc_text(moment: datetime | None) -> str | None:
    """An aware time as ISO 8601 in UTC to the second, e.g. ``2026-03-01T09:30:00+00:00``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None


def decimal_text(value: Decimal | None) -> str | None:
    """Money as a plain decimal string without trailing zeros (``0.135``), or None."""
    return None if value is None else format(value.normalize(), "f")


def spreadsheet_safe(cell: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a leading formula character gets a quote."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


def csv_row(job: Job) -> list[object]:
    """One job's cells, in the order of ``CSV_COLUMNS``, before the spreadsheet escaping.

    The status reads as on the page; what a demo video would have cost has its own column, so
    that a sum of the billed column is what was billed.
    """
    billed_cost, demo_cost = (None, job.cost_usd) if job.is_demo else (job.cost_usd, None)
    return [
        utc_text(job.created_at),
        job.mode,
        job.model,
        job.resolution,
        job.duration,
        job.status.label,
        job.prompt,
        job.actual_prompt or "",
        "" if job.seed is None else job.seed,
        job.task_id or "",
        "" if job.billed_seconds is None else job.billed_seconds,
        decimal_text(billed_cost) or "",
        decimal_text(demo_cost) or "",
        decimal_text(job.estimate_usd) or "",
        job.video_path or "",
        job.owner or "",
    ]


def jobs_csv(jobs: Iterable[Job]) -> bytes:
    """Jobs as CSV (UTF-8) with a header row, every text cell safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for job in jobs:
        writer.writerow([spreadsheet_safe(cell) for cell in csv_row(job)])
    return buffer.getvalue().encode("utf-8")


def job_to_json(job: Job, video_file: Path | None) -> dict[str, Any]:
    """A job as a JSON-ready dict: ISO UTC times, money as decimal strings, the video's path.

    Parameters
    ----------
    job
        The job as the store keeps it.
    video_file
        The saved MP4, if it is on disk.

    Returns
    -------
    dict
        The fields of ``JSON_FIELDS`` plus ``status``, ``status_label`` and ``video_file``.
    """
    data: dict[str, Any] = {}
    for name in JSON_FIELDS:
        value = getattr(job, name)
        if isinstance(value, datetime):
            value = utc_text(value)
        elif isinstance(value, Decimal):
            value = decimal_text(value)
        data[name] = value
    data["status"] = job.status.value
    data["status_label"] = job.status.label
    data["video_file"] = str(video_file) if video_file else None
    return data


def job_settings(job: Job, *, model_label: str) -> dict[str, Any]:
    """A clip's settings as a JSON-ready dict, to download beside its video.

    Parameters
    ----------
    job
        The job as the store keeps it.
    model_label
        The model's name as the user sees it; the model's id is kept too, as ``model``.

    Returns
    -------
    dict
        ``model_label``, then the fields of ``SETTINGS_FIELDS`` as ``job_to_json`` writes them
        (``duration`` is the length in seconds), then ``seconds_taken`` from the click to the end.
    """
    whole = job_to_json(job, None)
    data: dict[str, Any] = {"model_label": model_label}
    data |= {name: whole[name] for name in SETTINGS_FIELDS}
    taken = seconds_taken(job)
    data["seconds_taken"] = None if taken is None else round(taken, 1)
    return data


def job_settings_json(job: Job, *, model_label: str) -> bytes:
    """``job_settings`` as an indented UTF-8 JSON file."""
    text = json.dumps(job_settings(job, model_label=model_label), indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def jobs_json(jobs: Iterable[Job], video_file: Callable[[Job], Path | None]) -> list[dict]:
    """Jobs as ``job_to_json`` dicts; ``video_file`` finds each one's saved MP4."""
    return [job_to_json(job, video_file(job)) for job in jobs]


def _spend_json(spend: Spend) -> dict[str, Any]:
    return {
        "jobs": spend.jobs,
        "videos": spend.videos,
        "seconds": spend.seconds,
        "cost_usd": decimal_text(spend.cost_usd),
        "pending": spend.pending,
        "pending_usd": decimal_text(spend.pending_usd),
    }


def _modes_json(modes: ModeSpend) -> dict[str, Any]:
    return {"billed": _spend_json(modes.billed), "demo": _spend_json(modes.demo)}


def totals_to_json(totals: Totals) -> dict[str, Any]:
    """Today, all time and all time by model, each with billed and demo apart."""
    return {
        "today": _modes_json(totals.today),
        "all_time": _modes_json(totals.all_time),
        "by_model": {model: _modes_json(modes) for model, modes in totals.by_model.items()},
    }


def people_spend_to_json(people: Iterable[PersonSpend]) -> list[dict[str, Any]]:
    """Each person's spend (``email`` null for jobs made without sign-in), in the given order."""
    return [
        {
            "email": row.email,
            "today": _modes_json(row.today),
            "this_month": _modes_json(row.this_month),
            "all_time": _modes_json(row.all_time),
        }
        for row in people
    ]
