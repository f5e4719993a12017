"""The unit of work: one database transaction holding a state change and the events it causes.

It rolls back unless told to commit. Events are recorded on it explicitly
(``uow.publish(SomethingHappened(...))``) and written to the outbox in the same
transaction at commit, so a state change and its event are never separated.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events.envelope import new_cloudevent, to_structured_json
from shared.events.registry import EventPayload, topic_name
from shared.logging import request_id_var


class UnitOfWork:
    session: AsyncSession

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        outbox: Table,
        topic_prefix: str = "",
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._topic_prefix = topic_prefix
        self._pending: list[EventPayload] = []

    async def __aenter__(self) -> Self:
        self.session = self._session_factory()
        self._pending = []
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

    def publish(self, payload: EventPayload) -> None:
        """Record an event to be written to the outbox when this unit of work commits."""
        self._pending.append(payload)

    async def flush_events(self) -> None:
        """Write the recorded events to the outbox (inside the open transaction)."""
        if not self._pending:
            return
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
        await self.session.execute(insert(self._outbox), rows)

    async def commit(self) -> None:
        # Outbox rows are inserted last, after the aggregate's own rows are locked, so that
        # two transactions on one aggregate get outbox ids in their commit order.
        await self.flush_events()
        await self.session.commit()

    async def rollback(self) -> None:
        self._pending = []
        await self.session.rollback()
