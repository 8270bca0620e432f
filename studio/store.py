"""The job store: every job, its state, its lease and its cost, in SQLite or PostgreSQL.

SQLAlchemy Core only. One ``JobStore`` is shared by every thread of a process (the watcher and the
page scripts); several processes may share one database. State changes that race (a status moving
on, a lease being taken, a job being finished) are single compare-and-set statements, so a second
watcher or a restart can never apply them twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import secrets
import sqlite3
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite

from studio.limits import SpendGuard, SpendingLimit, SpendingLimitReached
from studio.migrations import (
    apply_migrations,
    batches,
    drafts,
    jobs,
    recorded_version,
    spending_limits,
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
    ModeSpend,
    Spend,
    Totals,
)

SQLITE_BUSY_TIMEOUT_SECONDS = 10.0
# A job is written before it is sent, and a batch's later clips wait their turn to be sent. One
# still unsent this long after it was written lost its sender (the process stopped): it comes due
# for the watcher then, which says it was not sent. Long enough for eight slow submits in a row.
UNSENT_GRACE_SECONDS = 600.0
DEFAULT_LEASE_SECONDS = 60.0

IN_FLIGHT_STATUSES = tuple(status for status in JobStatus if status.in_flight)
# A billed job without a cost yet holds its estimate against the spending limit while it may
# still be billed: in flight, or sent with its answer lost, or no longer watched but not ended.
_RESERVING_STATUSES = (*IN_FLIGHT_STATUSES, JobStatus.UNCERTAIN, JobStatus.TIMED_OUT)

_JOB_FIELDS = tuple(field.name for field in dataclasses.fields(Job))
# Fixed at creation: the identity of a job and the moment it was written.
_READ_ONLY_FIELDS = frozenset({"id", "submission_id", "created_at"})
_UPDATABLE_FIELDS = frozenset(jobs.c.keys()) - _READ_ONLY_FIELDS
_LEASE_FIELDS = frozenset({"lease_owner", "lease_until"})
_MONEY_FIELDS = frozenset({"estimate_usd", "cost_usd"})
# Tells the SQLite "begin" hook to take the write lock at once (see _configure_sqlite).
_WRITE_OPTION = "wan_studio_write"
# Written into the header of every SQLite file the store creates ("WANS"), so a new file is
# never empty, even for the moment before its tables exist.
_SQLITE_APPLICATION_ID = 0x57414E53


class JobNotFound(LookupError):
    """No job has this id."""


class EmptyDatabase(RuntimeError):
    """The SQLite file is there but empty: not a history this app made; the text says so."""


def sqlite_url(path: Path) -> str:
    """Return the SQLAlchemy URL of a SQLite database file."""
    return f"sqlite:///{Path(path).resolve()}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _spend_lock_key(scope: str) -> int:
    # A PostgreSQL advisory lock key (a signed 64-bit number) of its own for each scope.
    digest = hashlib.sha256(f"wan-studio spend {scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _job(row: Row[Any]) -> Job:
    mapping = row._mapping
    return Job(**{name: mapping[name] for name in _JOB_FIELDS})


def _batch(row: Row[Any], batch_jobs: Sequence[Job]) -> Batch:
    from studio.variations import VariationKind

    mapping = row._mapping
    kind: VariationKind | str = mapping["kind"]
    with contextlib.suppress(ValueError):  # a kind a newer version wrote stays as it is
        kind = VariationKind(kind)
    return Batch(
        id=mapping["id"],
        submission_id=mapping["submission_id"],
        session_id=mapping["session_id"],
        kind=kind,
        size=mapping["size"],
        created_at=mapping["created_at"],
        jobs=tuple(batch_jobs),
        owner=mapping["owner"],
    )


# What a caller gives for a new job (``create_job``'s keyword arguments but the guard); the
# store adds its status, creation time and counters.
NEW_JOB_FIELDS = frozenset(
    {
        "submission_id", "mode", "session_id", "model", "resolution", "duration", "prompt",
        "negative_prompt", "prompt_extend", "watermark", "seed", "image_sha256", "image_source",
        "last_frame_sha256", "estimate_usd", "output_width", "output_height", "key_fingerprint",
        "request_json",
    }
)  # fmt: skip
# May be left out of a new job's fields: none, as without sign-in.
OPTIONAL_NEW_JOB_FIELDS = frozenset({"owner"})
_SUBMISSION_ID_LENGTH = jobs.c.submission_id.type.length


def _new_job_row(
    fields: Mapping[str, Any], *, created_at: datetime, **extra: Any
) -> dict[str, Any]:
    """The row of a new job, ``submitting``, from ``NEW_JOB_FIELDS`` (checked here)."""
    if not NEW_JOB_FIELDS <= set(fields) <= NEW_JOB_FIELDS | OPTIONAL_NEW_JOB_FIELDS:
        missing = NEW_JOB_FIELDS - set(fields)
        unknown = set(fields) - NEW_JOB_FIELDS - OPTIONAL_NEW_JOB_FIELDS
        raise TypeError(f"a new job needs {sorted(missing)} and takes no {sorted(unknown)}")
    mode = fields["mode"]
    if mode not in {DEMO, BILLED}:
        raise ValueError(f"mode must be {DEMO!r} or {BILLED!r}, not {mode!r}")
    if len(fields["submission_id"]) > (_SUBMISSION_ID_LENGTH or 0):
        raise ValueError(f"submission ids are at most {_SUBMISSION_ID_LENGTH} characters")
    values = {
        **fields,
        **extra,
        "status": JobStatus.SUBMITTING,
        "created_at": created_at,
        "poll_count": 0,
        "next_poll_at": created_at + timedelta(seconds=UNSENT_GRACE_SECONDS),
    }
    _check_values(values)
    return values


def clip_submission_id(batch_submission_id: str, clip: int, again: str | None = None) -> str:
    """The submission id of clip ``clip`` (from 1) of a batch, or of sending it ``again``."""
    first = f"{batch_submission_id}/{clip}"
    return first if again is None else f"{first}/{again}"


def _check_values(values: dict[str, Any]) -> None:
    # The column types refuse these too, but wrapped in a StatementError; say it plainly here.
    for name, value in values.items():
        if isinstance(value, datetime) and value.utcoffset() is None:
            raise ValueError(f"{name}: naive datetime {value!r}; the store needs aware times")
        if isinstance(value, float) and name in _MONEY_FIELDS:
            raise TypeError(f"{name}: money must be a Decimal, not a float")


def _check_fields(fields: dict[str, Any], *, reserved: Collection[str] = ()) -> None:
    unknown = set(fields) - _UPDATABLE_FIELDS
    taken = set(fields) & set(reserved)
    if unknown or taken:
        raise TypeError(f"these job fields cannot be set here: {sorted(unknown | taken)}")
    _check_values(fields)


def _filter_clauses(where: JobFilter) -> list[sa.ColumnElement[bool]]:
    _check_values({"since": where.since, "until": where.until})
    clauses: list[sa.ColumnElement[bool]] = []
    if where.session_id is not None:
        clauses.append(jobs.c.session_id == where.session_id)
    if where.models is not None:
        clauses.append(jobs.c.model.in_(list(where.models)))
    if where.statuses is not None:
        clauses.append(jobs.c.status.in_(list(where.statuses)))
    if where.mode is not None:
        clauses.append(jobs.c.mode == where.mode)
    if where.since is not None:
        clauses.append(jobs.c.created_at >= where.since)
    if where.until is not None:
        clauses.append(jobs.c.created_at < where.until)
    if where.favourites_only:
        clauses.append(jobs.c.favourite.is_(True))
    if where.batch_id is not None:
        clauses.append(jobs.c.batch_id == where.batch_id)
    if where.owner is not None:
        clauses.append(jobs.c.owner == where.owner)
    if where.text is not None:
        searched = (jobs.c.prompt, jobs.c.actual_prompt, jobs.c.image_source)
        clauses.append(
            sa.or_(*(column.icontains(where.text, autoescape=True) for column in searched))
        )
    return clauses


def _owned(owner: str | None) -> sa.ColumnElement[bool]:
    # Everyone's jobs for None; one person's otherwise.
    return sa.true() if owner is None else jobs.c.owner == owner


Guards = SpendGuard | Sequence[SpendGuard] | None


def _guards(guard: Guards) -> tuple[SpendGuard, ...]:
    """Every guard a submit checks (the team's and its person's), in one fixed order.

    The same order for every submit, so that two submits taking the same PostgreSQL advisory
    locks take them in the same order and never wait on each other in a circle.
    """
    if guard is None:
        return ()
    given = (guard,) if isinstance(guard, SpendGuard) else tuple(guard)
    return tuple(sorted(given, key=lambda one: one.scope))


def _fingerprint_clause(key_fingerprints: Collection[str | None] | None) -> sa.ColumnElement[bool]:
    if key_fingerprints is None:
        return sa.true()
    named = [fingerprint for fingerprint in key_fingerprints if fingerprint is not None]
    clauses = [jobs.c.key_fingerprint.in_(named)] if named else []
    if None in key_fingerprints:
        clauses.append(jobs.c.key_fingerprint.is_(None))
    return sa.or_(sa.false(), *clauses)


def _configure_sqlite(engine: Engine) -> None:
    busy_ms = int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defers BEGIN to the first write; SQLAlchemy's
        # "begin" hook below issues it instead, so reads see one snapshot and writers lock early.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction that started as a reader cannot wait for the lock when it upgrades
        # (SQLITE_BUSY at once), so writers take it up front and wait up to the busy timeout.
        writing = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _enable_wal(cursor: Any, *, attempts: int = 50) -> None:
    # WAL is persistent, so only the first connection to a new file switches it; that switch
    # needs an exclusive lock and SQLite answers "locked" at once instead of calling the busy
    # handler, so connections racing to open a new database retry briefly.
    for attempt in range(attempts):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _prepare_sqlite_file(path: Path) -> None:
    """Create a new database file readable by this user only, or check an existing one.

    A new file is made aside with mode 0600, given a header, then linked into place, so the real
    path never holds an empty file of ours; SQLite gives its -wal and -shm files the same mode.
    An empty file found there is somebody else's (truncated, or replaced): refused, not taken for
    a new history.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if path.stat().st_size == 0:
            raise EmptyDatabase(
                f"The history database at {path} is empty (0 bytes), so Wan Studio won't start "
                "over it: a history it made is never empty, so this file was truncated or "
                "replaced. Restore it from a backup, or delete it to start a new, empty history."
            )
        # Files made before they were private: take away what others could read.
        for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                if file.stat().st_mode & 0o077:
                    file.chmod(0o600)
        return
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    os.close(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with contextlib.closing(sqlite3.connect(draft)) as connection:
            connection.execute(f"PRAGMA application_id = {_SQLITE_APPLICATION_ID}")
        # When two processes race to create it, exactly one link wins; both use the winner's.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _create_engine(database_url: str) -> Engine:
    url = sa.make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the job store needs a SQLite file, not an in-memory database")
        _prepare_sqlite_file(Path(url.database))
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        _configure_sqlite(engine)
        return engine
    if backend in {"postgresql", "postgres"}:
        # The only PostgreSQL driver installed is psycopg 3; plain postgresql:// means psycopg2.
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        return sa.create_engine(url, pool_pre_ping=True)
    raise ValueError(f"unsupported database {backend!r}: use a sqlite:/// or postgresql:// URL")


class JobStore:
    """Every job and its cost, in one SQL database; safe to share between threads and processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, database_url: str) -> JobStore:
        """Connect to a database and bring its schema up to date.

        Parameters
        ----------
        database_url
            A SQLAlchemy URL: ``sqlite:///path/to/file.db`` (WAL, a busy timeout, the folder is
            created) or ``postgresql://`` / ``postgresql+psycopg://``.
        """
        store = cls(_create_engine(database_url))
        try:
            apply_migrations(store._write)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def migrate(cls, database_url: str) -> tuple[int, int]:
        """Bring a database's schema up to date; return its version before and after.

        What ``open`` does first, on its own: operators run it before new app processes start.
        """
        store = cls(_create_engine(database_url))
        try:
            with store._read() as conn:
                before = recorded_version(conn)
            return before, apply_migrations(store._write)
        finally:
            store.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JobStore({self._engine.url.render_as_string(hide_password=True)!r})"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for bulk tools and benchmarks."""
        return self._engine

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    def _insert(self, table: sa.Table = jobs) -> postgresql.Insert | sqlite.Insert:
        # Imported here so that a SQLite store never loads the PostgreSQL dialect (it slows the
        # app's first page).
        if self.dialect_name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    # -- creating and reading ---------------------------------------------------------------

    def create_job(
        self,
        *,
        submission_id: str,
        mode: str,
        session_id: str | None,
        model: str,
        resolution: str,
        duration: int,
        prompt: str,
        negative_prompt: str,
        prompt_extend: bool,
        watermark: bool,
        seed: int | None,
        image_sha256: str,
        image_source: str | None,
        last_frame_sha256: str | None,
        estimate_usd: Decimal,
        output_width: int | None,
        output_height: int | None,
        key_fingerprint: str | None,
        request_json: str | None,
        guard: Guards = None,
        owner: str | None = None,
    ) -> tuple[Job, bool]:
        """Write a new job in status ``submitting``, once per submission id.

        With a ``guard`` (billed jobs under a spending limit), the limit is checked and the job's
        estimate reserved in the same transaction that writes it.

        Returns
        -------
        tuple[Job, bool]
            The job, and whether this call created it: the same ``submission_id`` again (a double
            click, a rerun, a second tab) returns the job already written and ``False``.

        Raises
        ------
        SpendingLimitReached
            When the job would take spend over the guard's limit; nothing is written.
        """
        values = _new_job_row(
            {
                "submission_id": submission_id,
                "mode": mode,
                "session_id": session_id,
                "model": model,
                "resolution": resolution,
                "duration": duration,
                "prompt": prompt,
                "negative_prompt": negative_prompt,
                "prompt_extend": prompt_extend,
                "watermark": watermark,
                "seed": seed,
                "image_sha256": image_sha256,
                "image_source": image_source,
                "last_frame_sha256": last_frame_sha256,
                "estimate_usd": estimate_usd,
                "output_width": output_width,
                "output_height": output_height,
                "key_fingerprint": key_fingerprint,
                "request_json": request_json,
                "owner": owner,
            },
            created_at=_utcnow(),
        )
        insert = (
            self._insert()
            .values(**values)
            .on_conflict_do_nothing(index_elements=["submission_id"])
            .returning(*jobs.c)
        )
        with self._write() as conn:
            if _guards(guard) and mode == BILLED:
                # The turn first: a second click racing the first then finds its job, rather
                # than being refused for the first one's reservation.
                self._take_spend_turn(conn, guard)
                existing = conn.execute(
                    sa.select(jobs).where(jobs.c.submission_id == submission_id)
                ).first()
                if existing is not None:  # a second click reserves nothing more
                    return _job(existing), False
                self._reserve_spend(conn, guard, asked=estimate_usd)
            created = conn.execute(insert).first()
            if created is not None:
                return _job(created), True
            # Another writer got there first; under READ COMMITTED this statement sees its row.
            existing = conn.execute(
                sa.select(jobs).where(jobs.c.submission_id == submission_id)
            ).one()
            return _job(existing), False

    def _reserve_spend(self, conn: Connection, guard: Guards, *, asked: Decimal) -> None:
        """Check that ``asked`` more fits under the guard's limits, inside a write transaction.

        Whatever writes the jobs in this same transaction then holds the reservation: their
        estimates count for every later check until they end.
        """
        self._take_spend_turn(conn, guard)
        self._check_spend(conn, guard, asked=asked)

    def _take_spend_turn(self, conn: Connection, guard: Guards) -> None:
        if self.dialect_name == "postgresql":
            # Submits under one scope take turns from here to their commit (taking it twice in
            # one transaction is harmless); on SQLite the write transaction (BEGIN IMMEDIATE)
            # already holds the database's one write lock.
            for one in _guards(guard):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_spend_lock_key(one.scope))))

    def _check_spend(self, conn: Connection, guard: Guards, *, asked: Decimal) -> None:
        # A person's clip fits under the team's caps and under their own.
        for one in _guards(guard):
            committed = self._committed_spend(conn, one)
            for period, cap in one.capped_periods():
                if committed[period.name] + asked > cap:
                    raise SpendingLimitReached(
                        period=period, cap=cap, committed=committed[period.name], asked=asked
                    )

    def check_spend(self, guard: Guards, *, asked: Decimal) -> None:
        """Raise ``SpendingLimitReached`` when ``asked`` does not fit now; reserves nothing.

        A first look before anything is prepared; only ``create_job``'s check, in the
        transaction that writes the job, decides.
        """
        with self._read() as conn:
            self._check_spend(conn, guard, asked=asked)

    def _committed_spend(self, conn: Connection, guard: SpendGuard) -> dict[str, Decimal]:
        """Billed spend of the jobs written in each of the guard's periods: cost or reservation.

        One pass over the jobs of both periods (the day lies inside the month).
        """
        held = sa.case(
            (jobs.c.cost_usd.is_not(None), jobs.c.cost_usd),
            (jobs.c.status.in_(_RESERVING_STATUSES), jobs.c.estimate_usd),
            else_=sa.literal(0, type_=jobs.c.estimate_usd.type),
        )
        periods = (guard.day, guard.month)
        sums = [
            sa.func.coalesce(
                sa.func.sum(
                    sa.case(
                        (
                            sa.and_(
                                jobs.c.created_at >= period.start, jobs.c.created_at < period.end
                            ),
                            held,
                        ),
                        else_=sa.literal(0, type_=jobs.c.estimate_usd.type),
                    )
                ),
                sa.literal(0, type_=jobs.c.estimate_usd.type),
            )
            for period in periods
        ]
        query = sa.select(*sums).where(
            jobs.c.mode == BILLED,
            _owned(guard.owner),
            jobs.c.created_at >= min(period.start for period in periods),
            jobs.c.created_at < max(period.end for period in periods),
        )
        # The sums keep the money type, which turns SQLite's micro-dollars back into dollars.
        totals = conn.execute(query).one()
        return {period.name: Decimal(total) for period, total in zip(periods, totals, strict=True)}

    def committed_spend(self, guard: SpendGuard) -> dict[str, Decimal]:
        """What is spent or reserved today and this month (keys: the periods' names)."""
        with self._read() as conn:
            return self._committed_spend(conn, guard)

    # -- spending limits set on the Settings page ----------------------------------------------

    def spending_limit(self, scope: str) -> SpendingLimit:
        """The limit kept for ``scope`` (no caps when none was ever set)."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(spending_limits.c.daily_usd, spending_limits.c.monthly_usd).where(
                    spending_limits.c.scope == scope
                )
            ).first()
        if row is None:
            return SpendingLimit()
        return SpendingLimit(daily_usd=row.daily_usd, monthly_usd=row.monthly_usd)

    def set_spending_limit(self, scope: str, limit: SpendingLimit) -> None:
        """Keep ``limit`` for ``scope``, replacing the one kept before (None: no cap)."""
        for name, amount in (("daily_usd", limit.daily_usd), ("monthly_usd", limit.monthly_usd)):
            if amount is not None and (not isinstance(amount, Decimal) or amount < 0):
                raise ValueError(f"{name} must be a Decimal of zero or more, not {amount!r}")
        values = {
            "daily_usd": limit.daily_usd,
            "monthly_usd": limit.monthly_usd,
            "updated_at": _utcnow(),
        }
        if self.dialect_name == "postgresql":
            from sqlalchemy.dialects import postgresql as dialect
        else:
            from sqlalchemy.dialects import sqlite as dialect  # type: ignore[no-redef]
        upsert = (
            dialect.insert(spending_limits)
            .values(scope=scope, **values)
            .on_conflict_do_update(index_elements=[spending_limits.c.scope], set_=values)
        )
        with self._write() as conn:
            conn.execute(upsert)

    def get(self, job_id: int) -> Job | None:
        """Return the job with this id, or ``None``."""
        with self._read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def get_by_submission(self, submission_id: str) -> Job | None:
        """Return the job written for this submission id, or ``None``."""
        with self._read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.submission_id == submission_id)).first()
        return None if row is None else _job(row)

    def get_request_json(self, job_id: int) -> str | None:
        """Return the request body recorded for a job (images as ``image:<sha256>``), if any."""
        with self._read() as conn:
            return conn.execute(
                sa.select(jobs.c.request_json).where(jobs.c.id == job_id)
            ).scalar_one_or_none()

    # -- batches: several clips from one click ------------------------------------------------

    def create_batch(
        self,
        *,
        submission_id: str,
        session_id: str | None,
        kind: str,
        clips: Sequence[Mapping[str, Any]],
        guard: Guards = None,
        owner: str | None = None,
    ) -> tuple[Batch, bool]:
        """Write a batch and every clip's job (``submitting``) in one transaction, once.

        Parameters
        ----------
        submission_id
            Unique per click: the same id again returns the batch already written and
            ``False``, writing nothing. Clip ``n``'s job gets ``clip_submission_id(id, n)``.
        session_id
            The browser session.
        kind
            What varies from clip to clip (a ``VariationKind``).
        clips
            Each clip's job, in clip order: ``NEW_JOB_FIELDS`` but the submission id.
        guard
            With it, the limit is checked for the whole batch's billed estimate and that is
            reserved in the same transaction.
        owner
            Who made it (a signed-in person's e-mail); each clip's job gets the same.

        Raises
        ------
        SpendingLimitReached
            When the batch would take spend over the guard's limit; nothing is written.
        """
        if not clips:
            raise ValueError("a batch needs at least one clip")
        now = _utcnow()
        rows = [
            _new_job_row(
                {
                    **clip,
                    "owner": owner,
                    "submission_id": clip_submission_id(submission_id, number),
                },
                created_at=now,
            )
            for number, clip in enumerate(clips, start=1)
        ]
        billed = sum((row["estimate_usd"] for row in rows if row["mode"] == BILLED), Decimal(0))
        insert_batch = (
            self._insert(batches)
            .values(
                submission_id=submission_id,
                session_id=session_id,
                kind=str(kind),
                size=len(rows),
                created_at=now,
                owner=owner,
            )
            .on_conflict_do_nothing(index_elements=["submission_id"])
            .returning(batches.c.id)
        )
        with self._write() as conn:
            if _guards(guard) and billed:
                # The turn first: a second click racing the first then finds its batch, rather
                # than being refused for the first one's reservation.
                self._take_spend_turn(conn, guard)
            existing = self._batch_where(conn, batches.c.submission_id == submission_id)
            if existing is not None:
                return existing, False
            if _guards(guard) and billed:
                self._reserve_spend(conn, guard, asked=billed)
            batch_id = conn.execute(insert_batch).scalar()
            if batch_id is None:
                # Another writer got there first; under READ COMMITTED this statement sees it.
                again = self._batch_where(conn, batches.c.submission_id == submission_id)
                assert again is not None
                return again, False
            conn.execute(sa.insert(jobs), [{**row, "batch_id": batch_id} for row in rows])
            created = self._batch_where(conn, batches.c.id == batch_id)
        assert created is not None
        return created, True

    def add_to_batch(
        self,
        batch_id: int,
        *,
        submission_id: str,
        clips: Mapping[int, Mapping[str, Any]],
        guard: Guards = None,
    ) -> tuple[Batch, list[Job]]:
        """Write a new attempt at clips of a batch that were not sent, in one transaction.

        Parameters
        ----------
        batch_id
            The batch.
        submission_id
            Unique per click of "send the rest": when any job of the batch was written for it
            already, nothing more is written.
        clips
            Clip number -> its new job (``NEW_JOB_FIELDS`` but the submission id). Only clips
            whose latest attempt is still ``rejected`` get one, so two clicks racing from two
            tabs write one attempt per clip.
        guard
            As for ``create_batch``.

        Returns
        -------
        tuple[Batch, list[Job]]
            The batch as it is now, and the jobs this call wrote (empty when there was nothing
            to write), in clip order.

        Raises
        ------
        LookupError
            When there is no such batch.
        SpendingLimitReached
            When the new attempts would take spend over the limit; nothing is written.
        """
        now = _utcnow()
        with self._write() as conn:
            # Attempts at one batch take turns (SQLite's write lock already makes them).
            locked = sa.select(batches.c.id).where(batches.c.id == batch_id).with_for_update()
            if conn.execute(locked).first() is None:
                raise LookupError(f"There is no batch {batch_id}.")
            batch = self._batch_where(conn, batches.c.id == batch_id)
            assert batch is not None
            suffix = f"/{submission_id}"
            if any(job.submission_id.endswith(suffix) for job in batch.jobs):
                return batch, []
            unsent = {batch.clip_number(job) for job in batch.not_sent}
            rows = [
                _new_job_row(
                    {
                        **clips[number],
                        "submission_id": clip_submission_id(
                            batch.submission_id, number, submission_id
                        ),
                        "owner": batch.owner,
                    },
                    created_at=now,
                    batch_id=batch_id,
                )
                for number in sorted(clips)
                if number in unsent
            ]
            if not rows:
                return batch, []
            billed = sum((row["estimate_usd"] for row in rows if row["mode"] == BILLED), Decimal(0))
            if _guards(guard) and billed:
                self._reserve_spend(conn, guard, asked=billed)
            written = conn.execute(sa.insert(jobs).returning(*jobs.c), rows).all()
            batch = self._batch_where(conn, batches.c.id == batch_id)
        assert batch is not None
        return batch, sorted((_job(row) for row in written), key=batch.clip_number)

    def get_batch(self, batch_id: int) -> Batch | None:
        """The batch with this id and its jobs, or ``None``."""
        with self._read() as conn:
            return self._batch_where(conn, batches.c.id == batch_id)

    def get_batch_by_submission(self, submission_id: str) -> Batch | None:
        """The batch written for this submission id, or ``None``."""
        with self._read() as conn:
            return self._batch_where(conn, batches.c.submission_id == submission_id)

    def list_batches(self, where: JobFilter = ALL_JOBS, *, limit: int = 50) -> list[Batch]:
        """The batches with a job that matches ``where``, newest first, each with its jobs."""
        matching = sa.select(jobs.c.batch_id).where(
            jobs.c.batch_id.is_not(None), *_filter_clauses(where)
        )
        query = (
            sa.select(batches)
            .where(batches.c.id.in_(matching))
            .order_by(batches.c.created_at.desc(), batches.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
            ids = [row.id for row in rows]
            job_rows = conn.execute(
                sa.select(jobs).where(jobs.c.batch_id.in_(ids)).order_by(jobs.c.id)
            ).all()
        by_batch: dict[int, list[Job]] = {batch_id: [] for batch_id in ids}
        for job_row in job_rows:
            job = _job(job_row)
            by_batch[job.batch_id].append(job)  # type: ignore[index]
        return [_batch(row, by_batch[row.id]) for row in rows]

    def _batch_where(self, conn: Connection, clause: sa.ColumnElement[bool]) -> Batch | None:
        row = conn.execute(sa.select(batches).where(clause)).first()
        if row is None:
            return None
        job_rows = conn.execute(
            sa.select(jobs).where(jobs.c.batch_id == row.id).order_by(jobs.c.id)
        ).all()
        return _batch(row, [_job(job_row) for job_row in job_rows])

    # -- changing state ---------------------------------------------------------------------

    def transition(
        self,
        job_id: int,
        *,
        expected: Collection[JobStatus],
        status: JobStatus,
        unsent_only: bool = False,
        **fields: Any,
    ) -> Job | None:
        """Move a job to ``status`` only if its current status is one of ``expected``.

        Parameters
        ----------
        job_id
            The job.
        expected
            The statuses the caller believes the job is in.
        status
            The new status.
        unsent_only
            Only if its sending has not started (no ``submitted_at``): the sender starting to
            send and the watcher giving up on a job never sent cannot both win.
        **fields
            Other job fields to set in the same statement.

        Returns
        -------
        Job | None
            The updated job, or ``None`` if it does not exist or its status was not expected.
        """
        _check_fields(fields, reserved={"status"})
        unsent = jobs.c.submitted_at.is_(None) if unsent_only else sa.true()
        statement = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.status.in_(list(expected)), unsent)
            .values(status=status, **fields)
            .returning(*jobs.c)
        )
        with self._write() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _job(row)

    def reject_never_sent(self, *, written_before: datetime, **fields: Any) -> list[Job]:
        """Mark ``rejected`` every job written before then whose sending never started.

        Its sender stopped first (a batch's later clips wait their turn), whatever key it was
        to use, so no watcher need hold that key: nothing was sent, nothing is billed, and its
        reservation against a spending limit ends. The same compare-and-set as ``transition``
        with ``unsent_only``, so a sender starting at that moment cannot also send it.
        """
        _check_fields(fields, reserved={"status"})
        _check_values({"written_before": written_before})
        statement = (
            sa.update(jobs)
            .where(
                jobs.c.status == JobStatus.SUBMITTING,
                jobs.c.submitted_at.is_(None),
                jobs.c.created_at < written_before,
            )
            .values(status=JobStatus.REJECTED, **fields)
            .returning(*jobs.c)
        )
        with self._write() as conn:
            return [_job(row) for row in conn.execute(statement)]

    def update(self, job_id: int, **fields: Any) -> Job:
        """Set fields of a job unconditionally and return it; raise ``JobNotFound`` if absent."""
        _check_fields(fields)
        if not fields:
            job = self.get(job_id)
            if job is None:
                raise JobNotFound(job_id)
            return job
        statement = sa.update(jobs).where(jobs.c.id == job_id).values(**fields).returning(*jobs.c)
        with self._write() as conn:
            row = conn.execute(statement).first()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    # -- leases (the watcher) ---------------------------------------------------------------

    def claim_due(
        self,
        owner: str,
        *,
        now: datetime | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        limit: int = 50,
        key_fingerprints: Collection[str | None] | None = None,
    ) -> list[Job]:
        """Lease the in-flight jobs that are due for a poll, atomically across processes.

        A job is due when its ``next_poll_at`` is set and not after ``now``, and nobody holds an
        unexpired lease on it. Jobs with no ``next_poll_at`` are never claimed.

        Parameters
        ----------
        owner
            Who takes the leases (unique per watcher).
        now
            The current time (aware); the clock by default.
        lease_seconds
            How long the leases last unless released or the job is finished.
        limit
            At most this many jobs, the most overdue first.
        key_fingerprints
            Only jobs whose key fingerprint is in this collection (``None`` in it matches jobs
            without one); ``None`` means any job.

        Returns
        -------
        list[Job]
            The jobs now leased to ``owner``, most overdue first.
        """
        now = now or _utcnow()
        _check_values({"now": now})
        due = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.status.in_(IN_FLIGHT_STATUSES),
                jobs.c.next_poll_at.is_not(None),
                jobs.c.next_poll_at <= now,
                sa.or_(jobs.c.lease_until.is_(None), jobs.c.lease_until <= now),
                _fingerprint_clause(key_fingerprints),
            )
            .order_by(jobs.c.next_poll_at, jobs.c.id)
            .limit(limit)
            # PostgreSQL: concurrent claimers skip each other's rows instead of waiting. SQLite
            # ignores it; its BEGIN IMMEDIATE makes this whole transaction exclusive.
            .with_for_update(skip_locked=True)
        )
        with self._write() as conn:
            ids = conn.execute(due).scalars().all()
            if not ids:
                return []
            rows = conn.execute(
                sa.update(jobs)
                .where(jobs.c.id.in_(ids))
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
                .returning(*jobs.c)
            ).all()
        claimed = [_job(row) for row in rows]
        return sorted(claimed, key=lambda job: (job.next_poll_at, job.id))

    def release(
        self, job_id: int, owner: str, *, next_poll_at: datetime | None, **fields: Any
    ) -> Job | None:
        """Give a lease back with the job's next poll time and any fields the poll learnt.

        Returns ``None`` (and changes nothing) unless ``owner`` holds the lease.
        """
        _check_fields(fields, reserved=_LEASE_FIELDS)
        statement = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, next_poll_at=next_poll_at, **fields)
            .returning(*jobs.c)
        )
        with self._write() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _job(row)

    def release_all(self, owner: str) -> int:
        """Give back every lease ``owner`` holds, each job due as it was; return how many.

        For a watcher that stops: its jobs are free for another watcher at once, and whatever it
        was still doing with them is then refused by the compare-and-set of ``release``,
        ``renew_lease`` and ``finish_with_lease``.
        """
        statement = (
            sa.update(jobs)
            .where(jobs.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .returning(jobs.c.id)
        )
        with self._write() as conn:
            return len(conn.execute(statement).all())

    def renew_lease(
        self, job_id: int, owner: str, *, now: datetime | None = None, lease_seconds: float
    ) -> datetime | None:
        """Extend ``owner``'s lease on an in-flight job to ``now + lease_seconds``.

        A compare-and-set, for work that outlasts a lease (a long download): it returns the new
        end of the lease, or ``None`` (changing nothing) when ``owner`` no longer holds it because
        another watcher claimed the job, or the job is no longer in flight.
        """
        now = now or _utcnow()
        _check_values({"now": now})
        until = now + timedelta(seconds=lease_seconds)
        statement = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.lease_owner == owner,
                jobs.c.status.in_(IN_FLIGHT_STATUSES),
            )
            .values(lease_until=until)
            .returning(jobs.c.id)
        )
        with self._write() as conn:
            row = conn.execute(statement).first()
        return None if row is None else until

    def finish_with_lease(
        self, job_id: int, owner: str, *, status: JobStatus, **fields: Any
    ) -> Job | None:
        """End a job (status, cost, video, error) if ``owner`` holds its lease and it is in flight.

        This is a compare-and-set: a second watcher, or the same one after a restart, gets
        ``None`` and changes nothing, so a cost is recorded exactly once. The lease is cleared
        and ``next_poll_at`` too unless given.
        """
        _check_fields(fields, reserved=_LEASE_FIELDS)
        # A final job needs no more polls, unless the caller schedules one (a job it will recheck).
        values = {"next_poll_at": None, **fields, "lease_owner": None, "lease_until": None}
        statement = (
            sa.update(jobs)
            .where(
                jobs.c.id == job_id,
                jobs.c.lease_owner == owner,
                jobs.c.status.in_(IN_FLIGHT_STATUSES),
            )
            .values(status=status, **values)
            .returning(*jobs.c)
        )
        with self._write() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _job(row)

    def set_favourite(self, job_id: int, favourite: bool) -> Job:
        """Mark a job as a favourite, or unmark it; returns the job as it now is.

        Only the mark changes, whatever state the job is in, so a watcher finishing it at the
        same moment loses nothing.

        Raises
        ------
        JobNotFound
            When no job has this id.
        """
        statement = (
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(favourite=bool(favourite))
            .returning(*jobs.c)
        )
        with self._write() as conn:
            row = conn.execute(statement).first()
        if row is None:
            raise JobNotFound(f"no job {job_id}")
        return _job(row)

    # -- drafts: each browser session's Generate form ----------------------------------------

    def save_draft(
        self,
        session_id: str,
        body: str,
        *,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> None:
        """Keep a browser session's form (JSON text) and who kept it, replacing what it kept."""
        updated_at = now or datetime.now(UTC)
        with self._write() as conn:
            changed = conn.execute(
                sa.update(drafts)
                .where(drafts.c.session_id == session_id)
                .values(body=body, owner=owner, updated_at=updated_at)
            ).rowcount
            if not changed:
                conn.execute(
                    sa.insert(drafts).values(
                        session_id=session_id, body=body, owner=owner, updated_at=updated_at
                    )
                )

    def load_draft(self, session_id: str) -> KeptDraft | None:
        """The form a browser session kept last, and who kept it, if it kept one."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(drafts.c.body, drafts.c.owner).where(drafts.c.session_id == session_id)
            ).first()
        return None if row is None else KeptDraft(body=row.body, owner=row.owner)

    def in_flight_jobs(self) -> list[Job]:
        """Every job the watcher still has work for, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(jobs)
                .where(jobs.c.status.in_(IN_FLIGHT_STATUSES))
                .order_by(jobs.c.created_at, jobs.c.id)
            ).all()
        return [_job(row) for row in rows]

    def in_flight_among(self, job_ids: Collection[int]) -> set[int]:
        """Which of ``job_ids`` are jobs the watcher still has work for."""
        if not job_ids:
            return set()
        with self._read() as conn:
            found = conn.execute(
                sa.select(jobs.c.id).where(
                    jobs.c.id.in_(list(job_ids)), jobs.c.status.in_(IN_FLIGHT_STATUSES)
                )
            ).scalars()
            return set(found)

    def next_due_at(
        self, *, key_fingerprints: Collection[str | None] | None = None
    ) -> datetime | None:
        """When the next in-flight job becomes claimable (its poll time, or its lease's end).

        ``key_fingerprints`` filters as in ``claim_due``. ``None`` when nothing is scheduled.
        """
        claimable_at = sa.case(
            (jobs.c.lease_until > jobs.c.next_poll_at, jobs.c.lease_until),
            else_=jobs.c.next_poll_at,
        )
        with self._read() as conn:
            return conn.execute(
                sa.select(sa.func.min(claimable_at)).where(
                    jobs.c.status.in_(IN_FLIGHT_STATUSES),
                    jobs.c.next_poll_at.is_not(None),
                    _fingerprint_clause(key_fingerprints),
                )
            ).scalar_one()

    # -- history and money ------------------------------------------------------------------

    def list_jobs(
        self,
        where: JobFilter = ALL_JOBS,
        *,
        limit: int | None = 200,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[Job]:
        """Return the jobs that match ``where``, a page at a time.

        Parameters
        ----------
        where
            Which jobs (every job by default).
        limit, offset
            The page (``limit=None`` for every match).
        newest_first
            The order of ``created_at``.
        """
        order = (
            (jobs.c.created_at.desc(), jobs.c.id.desc())
            if newest_first
            else (jobs.c.created_at, jobs.c.id)
        )
        query = (
            sa.select(jobs)
            .where(*_filter_clauses(where))
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_job(row) for row in rows]

    def count_jobs(self, where: JobFilter = ALL_JOBS) -> int:
        """Count the jobs ``list_jobs`` would return for ``where`` with no page limit."""
        query = sa.select(sa.func.count()).select_from(jobs).where(*_filter_clauses(where))
        with self._read() as conn:
            return conn.execute(query).scalar_one()

    def totals(
        self, *, session_id: str | None, today_start: datetime, owner: str | None = None
    ) -> Totals:
        """Count jobs, videos, billed seconds and cost, billed and demo apart, in one query.

        Parameters
        ----------
        session_id
            The browser session whose jobs make the ``session`` slice (``None``: an empty slice).
        today_start
            The start of today (local midnight, aware); ``today`` counts jobs created since then.
        owner
            One person's jobs only (every slice); ``None``: everyone's.

        Returns
        -------
        Totals
            ``jobs`` counts every job in a slice, ``videos`` the ones the gateway made (their
            cost is recorded, whether or not the video could be saved), ``seconds`` and
            ``cost_usd`` their billed seconds and cost, ``pending`` and ``pending_usd`` the jobs
            in flight not yet billed and what they cost if they succeed. ``by_model`` covers all
            time.
        """
        _check_values({"today_start": today_start})
        slices: dict[str, sa.ColumnElement[bool]] = {
            "all": sa.true(),
            "today": jobs.c.created_at >= today_start,
            "session": jobs.c.session_id == session_id if session_id is not None else sa.false(),
        }
        with self._read() as conn:
            rows = conn.execute(_totals_query(slices).where(_owned(owner))).all()
        return _totals_from_rows(rows, slices=list(slices))

    def spend_by_owner(
        self, *, today_start: datetime, month_start: datetime
    ) -> dict[str | None, dict[str, ModeSpend]]:
        """Each person's spend today, this month and all time, billed and demo apart.

        Returns
        -------
        dict
            owner (``None`` for jobs made without sign-in) -> ``"today"``, ``"this month"``,
            ``"all time"`` -> spend. Every owner's spend adds up to ``totals``' for everyone.
        """
        _check_values({"today_start": today_start, "month_start": month_start})
        slices: dict[str, sa.ColumnElement[bool]] = {
            "all": sa.true(),
            "today": jobs.c.created_at >= today_start,
            "month": jobs.c.created_at >= month_start,
        }
        query = _totals_query(slices).add_columns(jobs.c.owner).group_by(jobs.c.owner)
        with self._read() as conn:
            rows = conn.execute(query).all()
        by_owner: dict[str | None, list[Row[Any]]] = {}
        for row in rows:
            by_owner.setdefault(row.owner, []).append(row)
        spend: dict[str | None, dict[str, ModeSpend]] = {}
        for owner, owned_rows in by_owner.items():
            parts = _slices_from_rows(owned_rows, slices=list(slices))
            spend[owner] = {
                "today": parts["today"],
                "this month": parts["month"],
                "all time": parts["all"],
            }
        return spend

    def recent_run_times(
        self,
        model: str,
        resolution: str,
        duration: int,
        *,
        mode: str,
        from_start: bool,
        limit: int = 50,
    ) -> list[float]:
        """How long the latest similar successes on one gateway took, the most recent first.

        Parameters
        ----------
        model, resolution, duration
            The class of job.
        mode
            ``billed`` or ``demo``: the two gateways run at their own speeds, so their times
            never mix.
        from_start
            True: from the gateway's ``scheduled_time`` to its ``end_time`` (the model's running
            time, which varies far less than the queue; jobs never seen started are left out).
            False: from the submit to the end, queue included.
        limit
            Use at most this many of the most recent successes.

        Returns
        -------
        list of float
            Seconds, one per job; empty when no similar job qualifies. A job whose two times fell
            on one moment (clamped into what our clock saw) is left out: it measures nothing.
        """
        began = jobs.c.started_at if from_start else jobs.c.submitted_at
        query = (
            sa.select(began, jobs.c.finished_at)
            .where(
                jobs.c.mode == mode,
                jobs.c.model == model,
                jobs.c.resolution == resolution,
                jobs.c.duration == duration,
                jobs.c.status == JobStatus.SUCCEEDED,
                began.is_not(None),
                jobs.c.finished_at.is_not(None),
            )
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        spans = ((finished - started).total_seconds() for started, finished in rows)
        return [seconds for seconds in spans if seconds > 0]

    def latest_running_times(self, *, mode: str, limit: int) -> list[tuple[str, str, int, float]]:
        """The running times of the latest successes on one gateway, of any class.

        Parameters
        ----------
        mode
            ``billed`` or ``demo``.
        limit
            How many of the most recent successes with a known start.

        Returns
        -------
        list of tuple
            ``(model, resolution, duration, seconds)``, the most recent first; jobs that took
            no time are left out, as by ``recent_run_times``.
        """
        query = (
            sa.select(
                jobs.c.model, jobs.c.resolution, jobs.c.duration, jobs.c.started_at,
                jobs.c.finished_at,
            )
            .where(
                jobs.c.mode == mode,
                jobs.c.status == JobStatus.SUCCEEDED,
                jobs.c.started_at.is_not(None),
                jobs.c.finished_at.is_not(None),
            )
            .order_by(jobs.c.finished_at.desc())
            .limit(limit)
        )  # fmt: skip
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            (model, resolution, duration, (finished - started).total_seconds())
            for model, resolution, duration, started, finished in rows
            if finished > started
        ]


def _totals_query(slices: dict[str, sa.ColumnElement[bool]]) -> sa.Select[Any]:
    """Per mode and model, each slice's jobs, videos, billed seconds and cost, and its jobs in
    flight with what they cost if they succeed, in one query."""
    # The cost is recorded once, when the gateway reports the video made, and never cleared:
    # a video whose link expired before it was saved was billed all the same.
    made = sa.or_(jobs.c.status == JobStatus.SUCCEEDED, jobs.c.cost_usd.is_not(None))
    # Sent and not yet billed: counted from the click, at its estimate.
    in_flight = sa.and_(
        jobs.c.status.in_([status for status in JobStatus if status.in_flight]),
        jobs.c.cost_usd.is_(None),
    )
    seconds = sa.func.coalesce(jobs.c.billed_seconds, 0)
    columns: list[sa.ColumnElement[Any]] = [jobs.c.mode, jobs.c.model]
    for name, condition in slices.items():
        done = sa.and_(condition, made)
        pending = sa.and_(condition, in_flight)
        columns += [
            sa.func.sum(sa.case((condition, 1), else_=0)).label(f"{name}_jobs"),
            sa.func.sum(sa.case((done, 1), else_=0)).label(f"{name}_videos"),
            sa.func.sum(sa.case((done, seconds), else_=0)).label(f"{name}_seconds"),
            sa.func.sum(sa.case((done, jobs.c.cost_usd))).label(f"{name}_cost"),
            sa.func.sum(sa.case((pending, 1), else_=0)).label(f"{name}_pending"),
            sa.func.sum(sa.case((pending, jobs.c.estimate_usd))).label(f"{name}_pending_usd"),
        ]
    return sa.select(*columns).group_by(jobs.c.mode, jobs.c.model)


def _slices_from_rows(rows: Sequence[Row[Any]], *, slices: list[str]) -> dict[str, ModeSpend]:
    """Add ``_totals_query``'s rows up into billed and demo spend per slice."""
    by_slice: dict[str, dict[str, Spend]] = {name: {} for name in slices}
    for row in rows:
        for name in slices:
            modes = by_slice[name]
            modes[row.mode] = _add(modes.get(row.mode, Spend()), _spend_part(row, name))
    return {
        name: ModeSpend(billed=modes.get(BILLED, Spend()), demo=modes.get(DEMO, Spend()))
        for name, modes in by_slice.items()
    }


def _spend_part(row: Row[Any], name: str) -> Spend:
    mapping = row._mapping
    return Spend(
        jobs=int(mapping[f"{name}_jobs"] or 0),
        videos=int(mapping[f"{name}_videos"] or 0),
        seconds=int(mapping[f"{name}_seconds"] or 0),
        cost_usd=mapping[f"{name}_cost"] or Decimal(0),
        pending=int(mapping[f"{name}_pending"] or 0),
        pending_usd=mapping[f"{name}_pending_usd"] or Decimal(0),
    )


def _totals_from_rows(rows: Sequence[Row[Any]], *, slices: list[str]) -> Totals:
    """Add ``_totals_query``'s rows up into billed and demo spend per slice, and per model."""
    # slice -> mode -> spend, and model -> mode -> spend (all time)
    by_slice: dict[str, dict[str, Spend]] = {name: {} for name in slices}
    by_model: dict[str, dict[str, Spend]] = {}
    for row in rows:
        mapping = row._mapping
        for name in slices:
            part = Spend(
                jobs=int(mapping[f"{name}_jobs"] or 0),
                videos=int(mapping[f"{name}_videos"] or 0),
                seconds=int(mapping[f"{name}_seconds"] or 0),
                cost_usd=mapping[f"{name}_cost"] or Decimal(0),
                pending=int(mapping[f"{name}_pending"] or 0),
                pending_usd=mapping[f"{name}_pending_usd"] or Decimal(0),
            )
            modes = by_slice[name]
            modes[row.mode] = _add(modes.get(row.mode, Spend()), part)
            if name == "all":
                by_model.setdefault(row.model, {})[row.mode] = part

    def mode_spend(modes: dict[str, Spend]) -> ModeSpend:
        return ModeSpend(billed=modes.get(BILLED, Spend()), demo=modes.get(DEMO, Spend()))

    return Totals(
        session=mode_spend(by_slice["session"]),
        today=mode_spend(by_slice["today"]),
        all_time=mode_spend(by_slice["all"]),
        by_model={model: mode_spend(modes) for model, modes in sorted(by_model.items())},
    )


def _add(left: Spend, right: Spend) -> Spend:
    return Spend(
        jobs=left.jobs + right.jobs,
        videos=left.videos + right.videos,
        seconds=left.seconds + right.seconds,
        cost_usd=left.cost_usd + right.cost_usd,
        pending=left.pending + right.pending,
        pending_usd=left.pending_usd + right.pending_usd,
    )
