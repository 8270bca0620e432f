"""The job store's schema and its history of migrations.

Each migration runs once, in order, in its own transaction, and records its number in
``schema_version``. Opening a database that another process is migrating at the same moment is safe:
every migration transaction first takes the database's write lock (SQLite ``BEGIN IMMEDIATE``, a
PostgreSQL advisory lock) and then checks again what is still to do.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from studio.records import JobStatus

MONEY_PLACES = 6
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_PLACES)
# Any fixed number will do; it only has to be the same for every process that migrates this schema.
_MIGRATION_LOCK_KEY = 7_461_002_315


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; SQLite, which has no time zones, keeps UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Money(sa.TypeDecorator[Decimal]):
    """US dollars as exact decimals: NUMERIC on PostgreSQL, integer micro-dollars on SQLite.

    SQLite has no decimal type (its NUMERIC is a float), and sums of floats drift; sums of
    integers do not.
    """

    impl = sa.Numeric(18, MONEY_PLACES)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(18, MONEY_PLACES, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"money must be a Decimal or an int, not {type(value).__name__}")
        amount = Decimal(value).quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)
        return int(amount.scaleb(MONEY_PLACES)) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_PLACES)
        return Decimal(value).quantize(_MONEY_QUANTUM)


class StatusType(sa.TypeDecorator[JobStatus]):
    """A ``JobStatus`` kept as its string value."""

    impl = sa.String(16)
    cache_ok = True

    def process_bind_param(self, value: JobStatus | str | None, dialect: Dialect) -> str | None:
        return None if value is None else JobStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> JobStatus | None:
        return None if value is None else JobStatus(value)


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)


def _jobs_table(
    into: sa.MetaData, *, last_frame_column: str, later_columns: tuple[sa.Column[Any], ...] = ()
) -> sa.Table:
    """The jobs table as version 1 made it, with its one renamed column and any added since."""
    return sa.Table(
        "jobs",
        into,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("submission_id", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("session_id", sa.String(100)),
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=False),
        sa.Column("duration", sa.Integer, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("negative_prompt", sa.Text, nullable=False),
        sa.Column("prompt_extend", sa.Boolean, nullable=False),
        sa.Column("watermark", sa.Boolean, nullable=False),
        sa.Column("seed", sa.BigInteger),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_source", sa.Text),
        sa.Column(last_frame_column, sa.String(64)),
        sa.Column("status", StatusType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("estimate_usd", Money, nullable=False),
        sa.Column("output_width", sa.Integer),
        sa.Column("output_height", sa.Integer),
        sa.Column("task_id", sa.String(200)),
        sa.Column("polling_url", sa.Text),
        sa.Column("submitted_at", UTCDateTime),
        sa.Column("queued_at", UTCDateTime),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("error_code", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("explanation", sa.Text),
        sa.Column("actual_prompt", sa.Text),
        sa.Column("video_url", sa.Text),
        sa.Column("video_path", sa.Text),
        sa.Column("billed_seconds", sa.Integer),
        sa.Column("cost_usd", Money),
        sa.Column("key_fingerprint", sa.String(100)),
        sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_poll_at", UTCDateTime),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("unknown_since", UTCDateTime),
        sa.Column("deadline_at", UTCDateTime),
        sa.Column("request_json", sa.Text),
        sa.Index("ux_jobs_submission_id", "submission_id", unique=True),
        sa.Index("ix_jobs_status_next_poll_at", "status", "next_poll_at"),
        sa.Index("ix_jobs_created_at", "created_at"),
        sa.Index("ix_jobs_model", "model", "resolution", "duration"),
        sa.Index("ix_jobs_session_id", "session_id"),
        *later_columns,
    )


def _batch_and_favourite_columns() -> tuple[sa.Column[Any], ...]:
    # Added by version 4. A function, because a column belongs to one table object only.
    return (
        # The clips made together by one click (variations); none for a single clip.
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id"), index=True),
        sa.Column("favourite", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def _owner_column() -> sa.Column[Any]:
    # Added by version 5: who made the job or batch (a signed-in person's e-mail, lower-cased);
    # none when sign-in is off.
    return sa.Column("owner", sa.String(320), index=True)


# The table as the latest migration leaves it. A change here needs a new migration; the store's
# tests compare a migrated database with this definition.
jobs = _jobs_table(
    metadata,
    last_frame_column="last_frame_sha256",
    later_columns=(*_batch_and_favourite_columns(), _owner_column()),
)


# Variations: several clips asked for by one click of Generate. Each clip is an ordinary job that
# points here; the batch only groups them (and, by its submission id, makes a double click one
# batch).
def _batches_table(
    into: sa.MetaData, *, later_columns: tuple[sa.Column[Any], ...] = ()
) -> sa.Table:
    """The batches table as version 4 made it, with any columns added since."""
    return sa.Table(
        "batches",
        into,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("submission_id", sa.String(100), nullable=False, unique=True),
        sa.Column("session_id", sa.String(100)),
        # What varies from clip to clip: "seeds", "prompts" or "models".
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        *later_columns,
    )


batches = _batches_table(metadata, later_columns=(_owner_column(),))

# Spending limits set on the Settings page, per scope ("team" for the whole deployment). A limit
# from the environment or secrets overrides the one kept here. A PostgreSQL submit under a limit
# takes an advisory lock keyed by the scope while it checks and reserves spend (see JobStore).
spending_limits = sa.Table(
    "spending_limits",
    metadata,
    sa.Column("scope", sa.String(200), primary_key=True),
    sa.Column("daily_usd", Money),
    sa.Column("monthly_usd", Money),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)


# The Generate form of each browser session, so that a refresh brings it back: the form's values
# and its frames (by the content hash of the image as given, kept in the image library) as JSON.
def _drafts_table(into: sa.MetaData, *, later_columns: tuple[sa.Column[Any], ...] = ()) -> sa.Table:
    """The drafts table as version 2 made it, with any columns added since."""
    return sa.Table(
        "drafts",
        into,
        sa.Column("session_id", sa.String(100), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        *later_columns,
    )


def _draft_owner_column() -> sa.Column[Any]:
    # Added by version 6: who kept the draft (a signed-in person's e-mail, lower-cased), so that
    # nobody else gets it back from its address; none when sign-in is off.
    return sa.Column("owner", sa.String(320))


drafts = _drafts_table(metadata, later_columns=(_draft_owner_column(),))


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_jobs(conn: Connection) -> None:
    # As version 1 made it, whatever the table looks like today: later migrations change it.
    _jobs_table(sa.MetaData(), last_frame_column="last_image_sha256").create(conn)


def _rename_last_image_to_last_frame(conn: Connection) -> None:
    # SQLite (3.25 and later) and PostgreSQL rename a column in place, keeping its data.
    conn.execute(sa.text("ALTER TABLE jobs RENAME COLUMN last_image_sha256 TO last_frame_sha256"))


def _create_drafts(conn: Connection) -> None:
    # As version 2 made it, whatever the table looks like today: later migrations change it.
    _drafts_table(sa.MetaData()).create(conn)


def _add_batches_favourites_and_limits(conn: Connection) -> None:
    # As version 4 made it, whatever the table looks like today: later migrations change it.
    _batches_table(sa.MetaData()).create(conn)
    spending_limits.create(conn)
    # The columns of _batch_and_favourite_columns, written out: both databases add a column in
    # place this way, and SQLite takes a reference only with a NULL default, as here.
    conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN batch_id INTEGER REFERENCES batches (id)"))
    conn.execute(sa.text("ALTER TABLE jobs ADD COLUMN favourite BOOLEAN NOT NULL DEFAULT false"))
    conn.execute(sa.text("CREATE INDEX ix_jobs_batch_id ON jobs (batch_id)"))


def _add_owners(conn: Connection) -> None:
    # The column of _owner_column, written out, on jobs and on batches; old rows keep none.
    for table in ("jobs", "batches"):
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN owner VARCHAR(320)"))
        conn.execute(sa.text(f"CREATE INDEX ix_{table}_owner ON {table} (owner)"))


def _add_draft_owners(conn: Connection) -> None:
    # The column of _draft_owner_column, written out; drafts kept before keep none.
    conn.execute(sa.text("ALTER TABLE drafts ADD COLUMN owner VARCHAR(320)"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "jobs table with leases, money and the history indexes", _create_jobs),
    Migration(2, "drafts table: each browser session's Generate form", _create_drafts),
    Migration(
        3,
        "the second image of a job is its last frame, as the gateway calls it",
        _rename_last_image_to_last_frame,
    ),
    Migration(
        4,
        "batches of variations, favourite clips and spending limits",
        _add_batches_favourites_and_limits,
    ),
    Migration(5, "who made each job and batch, for sign-in", _add_owners),
    Migration(6, "who kept each draft, so that only they get it back", _add_draft_owners),
)

LATEST_VERSION = MIGRATIONS[-1].version


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of Wan Studio than this one."""


def _lock_and_read_version(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        # Serialises migrators; SQLite's BEGIN IMMEDIATE already did.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
    schema_version.create(conn, checkfirst=True)
    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar_one()
    return current or 0


def recorded_version(conn: Connection) -> int:
    """The schema version a database is at now (0 for an empty one), without changing it."""
    if not sa.inspect(conn).has_table(schema_version.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar_one() or 0


def apply_migrations(write_transaction: Callable[[], AbstractContextManager[Connection]]) -> int:
    """Bring the schema up to date, one transaction per migration, and return its version.

    Parameters
    ----------
    write_transaction
        Opens a connection inside a transaction that may write (on SQLite, one that starts with
        ``BEGIN IMMEDIATE``); it commits on a clean exit.

    Raises
    ------
    SchemaTooNew
        If the database's schema is newer than the migrations this code knows.
    """
    version = 0
    for migration in MIGRATIONS:
        with write_transaction() as conn:
            version = _lock_and_read_version(conn)
            if version >= migration.version:
                continue
            migration.apply(conn)
            conn.execute(
                sa.insert(schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            version = migration.version
    if version > LATEST_VERSION:
        raise SchemaTooNew(
            f"the database's schema is version {version}, but this version of Wan Studio only "
            f"knows up to {LATEST_VERSION}: upgrade Wan Studio"
        )
    return version
