"""The unit of work: one database transaction holding a state change and the events it causes.

It rolls back unless told to commit. Events are recorded on it explicitly
(``uow.publish(SomethingHappened(...))``) and written to the outbox in the same
transaction at commit, so a state change and its event are never separated.

:class:`UnitOfWork` works on an ORM session; :class:`ConnectionUnitOfWork` is the same on a
Core connection, for a hot path that runs Core statements only (no ORM objects): it saves
the session's own work on every statement and at commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import cache
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shared.events.envelope import new_cloudevent, to_structured_json
from shared.events.registry import EventPayload, topic_name
from shared.logging import request_id_var

T = TypeVar("T")


@cache
def _outbox_insert(outbox: Table) -> Insert:
    return insert(outbox)  # built once: its cache key is then computed once too


class BaseUnitOfWork:
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
    """

    connection: AsyncConnection

    def __init__(self, engine: AsyncEngine, *, outbox: Table, topic_prefix: str = "") -> None:
        super().__init__(outbox=outbox, topic_prefix=topic_prefix)
        self._engine = engine

    async def __aenter__(self) -> Self:
        self.connection = await self._engine.connect().start()
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

    async def flush_events(self) -> None:
        """Write the recorded events to the outbox (inside the open transaction)."""
        if self._pending:
            await self.connection.execute(_outbox_insert(self._outbox), self._outbox_rows())

    async def commit(self) -> None:
        # Outbox rows last, as in UnitOfWork.commit.
        await self._run_before_commit()
        await self.flush_events()
        await self.connection.commit()
        self._begin()
