"""Comparing finished clips side by side: which clips can be compared and which settings differ.

The compare view shows only what tells the clips apart; a setting every clip shares is left out.
Values are compared as a person reads them, so two costs that print the same are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from studio.catalog import Catalog
from studio.humane import elapsed, money
from studio.records import Job

MIN_CLIPS = 2
MAX_CLIPS = 4


@dataclass(frozen=True)
class SettingRow:
    """One setting that differs between the compared clips: its name, then one value per clip."""

    name: str
    values: tuple[str, ...]


def can_compare(job: Job) -> bool:
    """True for a clip whose video was saved: only those can be played side by side."""
    return job.has_video


def seconds_taken(job: Job) -> float | None:
    """From the click to the video made, in seconds; None when the job has not ended."""
    if job.finished_at is None:
        return None
    return max(0.0, (job.finished_at - job.created_at).total_seconds())


def model_label(job: Job, catalog: Catalog) -> str:
    """The model's name as the user sees it (its id when the catalog no longer lists it)."""
    spec = catalog.models.get(job.model)
    return spec.label if spec else job.model


def cost_text(job: Job) -> str:
    """What a clip cost; a demo clip says what it would have cost, and that it was not billed."""
    amount = money(job.cost_usd if job.cost_usd is not None else job.estimate_usd)
    return f"{amount} (demo, not billed)" if job.is_demo else amount


def _time_taken_text(job: Job) -> str:
    taken = seconds_taken(job)
    return "—" if taken is None else elapsed(taken)


def _settings(catalog: Catalog) -> tuple[tuple[str, Callable[[Job], str]], ...]:
    # In the order the table shows them.
    return (
        ("Model", lambda job: model_label(job, catalog)),
        ("Seed", lambda job: "random" if job.seed is None else str(job.seed)),
        ("Prompt", lambda job: job.prompt),
        ("Avoid", lambda job: job.negative_prompt),
        ("Resolution", lambda job: job.resolution),
        ("Length", lambda job: f"{job.duration} s"),
        ("Cost", cost_text),
        ("Time taken", _time_taken_text),
    )


def differing_settings(jobs: Sequence[Job], *, catalog: Catalog) -> list[SettingRow]:
    """The settings that are not the same for every clip, each with one value per clip.

    Parameters
    ----------
    jobs
        The compared clips, in the order they are shown.
    catalog
        Gives each model's name as the user sees it.

    Returns
    -------
    list of SettingRow
        In a fixed order (model, seed, prompt, avoid, resolution, length, cost, time taken);
        empty for fewer than ``MIN_CLIPS`` clips or when every setting is shared.
    """
    if len(jobs) < MIN_CLIPS:
        return []
    rows = []
    for name, read in _settings(catalog):
        values = tuple(read(job) for job in jobs)
        if len(set(values)) > 1:
            rows.append(SettingRow(name=name, values=values))
    return rows


# Job ids are positive 64-bit integers in either database.
_LARGEST_ID = 2**63 - 1


def job_id_from(raw: object) -> int | None:
    """A job id from a number or text (a page address holds text); None if it cannot be one."""
    try:
        job_id = int(str(raw).strip())
    except ValueError:
        return None
    return job_id if 0 < job_id <= _LARGEST_ID else None


def compare_choice(
    asked: Sequence[object], *, comparable: Callable[[int], bool]
) -> tuple[list[int], list[str]]:
    """The job ids to compare from ids given by a link or another page, and what was left out.

    Parameters
    ----------
    asked
        Job ids as given: numbers or text (a page address holds text). Repeats count once.
    comparable
        Says whether a job id names a finished clip with its video saved.

    Returns
    -------
    tuple
        At most ``MAX_CLIPS`` comparable ids in the order given, and one plain sentence per
        problem (an id that is not a number, a clip that cannot be played, too many clips).
    """
    chosen: list[int] = []
    problems: list[str] = []
    for raw in asked:
        job_id = job_id_from(raw)
        if job_id is None:
            problems.append(f"“{str(raw)[:40]}” is not a clip number, so it was left out.")
            continue
        if job_id in chosen:
            continue
        if not comparable(job_id):
            problems.append(f"Clip #{job_id} has no saved video to play, so it was left out.")
            continue
        if len(chosen) == MAX_CLIPS:
            problems.append(f"Only {MAX_CLIPS} clips fit side by side: the rest were left out.")
            break
        chosen.append(job_id)
    return chosen, problems
