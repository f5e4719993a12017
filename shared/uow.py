"""The unit of work: one database transaction holding a state change and the events it causes.

It rolls back unless told to commit. Events are recorded on it explicitly
(``uow.publish(SomethingHappened(...))``) and written to the outbox in the same
transaction at commit, so a state change and its event are never separated.

:class:`UnitOfWork` works on an ORM session; :class:`ConnectionUnitOfWork` is the same on a
Core connection, for a hot path that runs Core statements only (no ORM objects): it saves
the session's own work on every statement and at commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from functools import cache
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Insert, Select, Table, insert, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from shared.db import as_arrays, unnested_rows
from shared.driver import DriverConnection, hot
from shared.events.envelope import new_cloudevent, to_structured_json
from shared.events.registry import EventPayload, topic_name
from shared.logging import request_id_var

T = TypeVar("T")


OUTBOX_COLUMNS = ("event_id", "topic", "key", "event_type", "cloudevent")
_OUTBOX_PARAMETER = "outbox_"

Write = ReturningInsert[Any] | ReturningUpdate[Any]
"""One row's ``INSERT`` or ``UPDATE`` with its ``RETURNING`` columns."""


@cache
def _outbox_insert(outbox: Table) -> Insert:
    return insert(outbox)  # built once: its cache key is then computed once too


@cache
def _write_with_outbox(outbox: Table, write: Write) -> Select[Any]:
    """``WITH written AS (write), events AS (INSERT INTO outbox … SELECT … FROM unnest(…)
    CROSS JOIN written) SELECT * FROM written``.

    The outbox rows are drawn from the written row: none is inserted when ``write`` changes
    no row, and their ids are taken once it has locked it (the order of an aggregate's events
    is its writes' order, as in :meth:`UnitOfWork.commit`). Built once per ``write``.
    """
    written = write.cte("written")
    events = unnested_rows(outbox, OUTBOX_COLUMNS, prefix=_OUTBOX_PARAMETER).join(written, true())
    return hot(
        select(written).add_cte(
            pg_insert(outbox).from_select(list(OUTBOX_COLUMNS), events).cte("events")
        )
    )


class BaseUnitOfWork(ABC):
    """The events recorded during a unit of work, and their outbox rows."""

    def __init__(self, *, outbox: Table, topic_prefix: str = "") -> None:
        self._outbox = outbox
        self._topic_prefix = topic_prefix
        self._pending: list[EventPayload] = []
        self._attached: dict[type, Any] = {}
        self._before_commit: list[Callable[[], Awaitable[object]]] = []

    def _begin(self) -> None:
        self._pending = []
        self._attached = {}
        self._before_commit = []

    def attached(self, kind: type[T], make: Callable[[], T]) -> T:
        """The one ``kind`` of this unit of work, made by ``make`` on first use: state that
        lives as long as the transaction (a buffer, a cache), shared by what runs in it."""
        if kind not in self._attached:
            self._attached[kind] = make()
        found: T = self._attached[kind]
        return found

    def before_commit(self, step: Callable[[], Awaitable[object]]) -> None:
        """Run ``step`` inside the transaction when it commits, before the outbox rows."""
        self._before_commit.append(step)

    async def _run_before_commit(self) -> None:
        for step in self._before_commit:
            await step()

    def publish(self, payload: EventPayload) -> None:
        """Record an event to be written to the outbox when this unit of work commits."""
        self._pending.append(payload)

    @abstractmethod
    async def _execute(self, statement: Any, parameters: dict[str, Any]) -> Any:
        """Run one statement in this unit of work (its session, or its connection)."""

    async def write_with_events(self, write: Write, parameters: dict[str, Any]) -> Any:
        """Run ``write`` (one row's ``INSERT`` or ``UPDATE … RETURNING``) and write the events
        recorded so far to the outbox, in one statement: atomic even outside a transaction.

        The written row (a SQLAlchemy ``Row``, or a named tuple from the driver: read its
        fields by name); ``None`` when ``write`` changed no row (a compare-and-set that lost
        to another writer), and then no event is written: they are forgotten.
        """
        statement = _write_with_outbox(self._outbox, write)
        events = as_arrays(self._outbox_rows(), OUTBOX_COLUMNS, prefix=_OUTBOX_PARAMETER)
        return (await self._execute(statement, parameters | events)).first()

    def _outbox_rows(self) -> list[dict[str, Any]]:
        """The recorded events as outbox rows (and forget them)."""
        request_id = request_id_var.get()
        rows = []
        for payload in self._pending:
            event = new_cloudevent(payload, request_id=request_id)
            rows.append(
                {
                    "event_id": event.get_id(),
                    "topic": topic_name(payload.event_spec.service, self._topic_prefix),
                    "key": payload.aggregate_key(),
                    "event_type": payload.event_spec.type,
                    "cloudevent": to_structured_json(event),
                }
            )
        self._pending = []
        return rows


class UnitOfWork(BaseUnitOfWork):
    session: AsyncSession

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        outbox: Table,
        topic_prefix: str = "",
    ) -> None:
        super().__init__(outbox=outbox, topic_prefix=topic_prefix)
        self._session_factory = session_factory

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.rollback()
        finally:
            await self.session.close()

    async def _execute(self, statement: Any, parameters: dict[str, Any]) -> Any:
        return await self.session.execute(statement, parameters)

    async def flush_events(self) -> None:
        """Write the recorded events to the outbox (inside the open transaction)."""
        if not self._pending:
            return
        await self.session.execute(insert(self._outbox), self._outbox_rows())

    async def commit(self) -> None:
        # Outbox rows are inserted last, after the aggregate's own rows are locked, so that
        # two transactions on one aggregate get outbox ids in their commit order.
        await self._run_before_commit()
        await self.flush_events()
        await self.session.commit()
        self._begin()

    async def rollback(self) -> None:
        self._begin()
        await self.session.rollback()


class ConnectionUnitOfWork(BaseUnitOfWork):
    """A unit of work on a Core connection of ``engine`` (``self.connection``), not a session.

    Statements run on ``self.connection`` in one transaction (begun by the first of them);
    savepoints with ``self.connection.begin_nested()``. Leaving without ``commit()`` rolls
    back (closing the connection does).

    On an engine in autocommit mode there is no transaction (no ``BEGIN``, no ``COMMIT``):
    each statement commits by itself, so the change and its events must be one statement,
    :meth:`write_with_events`, after reads that lock nothing (a compare-and-set on a
    version then decides, as the API's moves of a request do). Statements then run on
    ``self.db``, where the hot ones go to the driver directly (``shared.driver``).
    """

    connection: AsyncConnection
    db: AsyncConnection | DriverConnection
    """Where statements run: ``self.connection``, or its :class:`DriverConnection` in
    autocommit mode."""

    def __init__(self, engine: AsyncEngine, *, outbox: Table, topic_prefix: str = "") -> None:
        super().__init__(outbox=outbox, topic_prefix=topic_prefix)
        self._engine = engine
        self._autocommit = engine.get_execution_options().get("isolation_level") == "AUTOCOMMIT"

    async def __aenter__(self) -> Self:
        self.connection = await self._engine.connect().start()
        self.db = DriverConnection(self.connection) if self._autocommit else self.connection
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._begin()
        await self.connection.close()  # rolls back what was not committed

    async def _execute(self, statement: Any, parameters: dict[str, Any]) -> Any:
        return await self.db.execute(statement, parameters)

    async def flush_events(self) -> None:
        """Write the recorded events to the outbox (inside the open transaction)."""
        if self._pending:
            if self._autocommit:
                # They would commit apart from the change they record.
                raise RuntimeError("without a transaction, events go with write_with_events")
            await self.connection.execute(_outbox_insert(self._outbox), self._outbox_rows())

    async def commit(self) -> None:
        # Outbox rows last, as in UnitOfWork.commit.
        await self._run_before_commit()
        await self.flush_events()
        await self.connection.commit()
        self._begin()
