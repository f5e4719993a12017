"""Database plumbing shared by the services: engine, sessions, model base, kernel tables.

Each service has its own database and its own SQLModel registry, so two services
may both have a table named ``pole`` in one Python process (the tests load all three).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import registry

# Stable constraint names, so that Alembic migrations name the same thing the same way.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_registry() -> registry:
    """A service's own SQLModel registry: ``class Base(SQLModel, registry=new_registry())``."""
    return registry(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def create_engine(
    database_url: str, *, pool_size: int = 10, idle_in_transaction_timeout: float = 0
) -> AsyncEngine:
    """The service's engine: a pool of asyncpg connections.

    ``idle_in_transaction_timeout`` (seconds, 0: none): a process frozen in the middle of a
    transaction (SIGSTOP, a VM paused, a hung event loop) would otherwise keep its row locks —
    the offer it was booking, the pole's journal head — and stall every replica behind it.
    PostgreSQL ends such a session; the frozen process, when it wakes, finds its connection
    gone and its work undone, and retries or answers 503.

    No ``pool_pre_ping``: with asyncpg it costs three round trips per checkout (``BEGIN``,
    ``;``, ``ROLLBACK``), more than the statements of a short request. A pooled connection
    that the server closed (restart, ``pg_terminate_backend``, idle timeout) is noticed by
    asyncpg as soon as the event loop reads the socket's end, and is replaced at checkout
    without a round trip (:func:`_replace_closed`). One that dies unnoticed fails its first
    statement: SQLAlchemy sees the disconnect and invalidates every connection of the pool
    opened before it, the request answers 503 (``shared.errors``) and the next ones get new
    connections.
    """
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        # Connections beyond pool_size are closed when given back: under a steady load that
        # churns connections (a new one costs a TLS attempt, type introspection and statements
        # prepared again). So the pool is sized for the load, and the overflow kept for bursts.
        max_overflow=pool_size // 2,
        # A server that went away must fail a request quickly (503), not hang it.
        connect_args={
            "timeout": 5,
            "command_timeout": 30,
            "server_settings": {
                "idle_in_transaction_session_timeout": str(int(idle_in_transaction_timeout * 1000))
            },
        },
    )
    event.listen(engine.sync_engine, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout: a connection the server already closed is discarded, and the pool
    checks out (or opens) another one (SQLAlchemy's answer to ``DisconnectionError``)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def asyncpg_dsn(database_url: str) -> str:
    """The plain libpq URL asyncpg wants, from a SQLAlchemy URL."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def kernel_tables(metadata: MetaData) -> tuple[Table, Table]:
    """The outbox and the processed-event record that every service's database holds."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("event_type", String(200), nullable=False),
        # The whole CloudEvent in its JSON structured form; the relay sends it in binary mode.
        Column("cloudevent", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Column("published_at", DateTime(timezone=True), nullable=True),
        # Where the broker put it: how the relay tells a broker that lost its data.
        Column("kafka_partition", Integer, nullable=True),
        Column("kafka_offset", BigInteger, nullable=True),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text, nullable=True),
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_created_at", "created_at"),
    )
    processed_event = Table(
        "processed_event",
        metadata,
        Column("source", String(200), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("consumer", String(100), nullable=False),
        Column("outcome", String(20), nullable=False),
        Column(
            "processed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
    )
    return outbox, processed_event


OUTBOX_NOTIFY_CHANNEL = "outbox"


@cache
def bulk_insert(table: Table, columns: tuple[str, ...] | None = None) -> PgInsert:
    """``INSERT INTO table (columns) SELECT … FROM unnest(one array per column)``.

    One statement whatever the number of rows, with one text: prepared once per connection,
    and a statement-level trigger runs once (an executemany would run one statement a row).
    Execute it with :func:`as_arrays` of the rows; add ``on_conflict_*``/``returning`` to taste.
    """
    names = columns if columns is not None else tuple(column.name for column in table.c)
    return pg_insert(table).from_select(list(names), unnested_rows(table, names))


def unnested_rows(table: Table, names: Sequence[str], *, prefix: str = "") -> Select[Any]:
    """``SELECT … FROM unnest(one array per column)``: the rows of ``table`` given as the
    arrays of :func:`as_arrays` (bind parameters named ``prefix`` + the column's name)."""
    arrays = [
        cast(
            bindparam(prefix + name, type_=ARRAY(table.c[name].type)),
            ARRAY(table.c[name].type),
        )
        for name in names
    ]
    given = func.unnest(*arrays).table_valued(*names).render_derived(name="given")
    return select(*(given.c[name] for name in names))


def as_arrays(
    rows: Sequence[Mapping[str, Any]], columns: Iterable[str], *, prefix: str = ""
) -> dict[str, list[Any]]:
    """The parameters of :func:`bulk_insert`: each column's values, in the rows' order."""
    return {prefix + name: [row.get(name) for row in rows] for name in columns}
