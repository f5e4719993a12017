"""Local copies of other services' aggregates (event-carried state transfer).

Events carry a full snapshot and its version; a copy keeps the highest version it saw,
so redelivered, replayed or reordered snapshots never move a copy backwards.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Uuid
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import ConsumerSpec, Handler
from shared.contracts.catalog import PoleRegistered, PoleUpdated
from shared.events.envelope import ReceivedEvent


async def upsert_snapshot(
    session: AsyncSession, table: Table, values: dict[str, Any], *, key: str = "id"
) -> bool:
    """Insert or replace a row when ``values['version']`` is newer; True when it changed."""
    statement = insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name != key}
    result = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_=changed,
            where=table.c.version < statement.excluded.version,
        ).returning(table.c[key])
    )
    return result.first() is not None


def pole_copy_table(metadata: MetaData) -> Table:
    """A service's copy of the catalog's poles (time zone and currency rule everything)."""
    return Table(
        "pole",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("name", String(200), nullable=False),
        Column("time_zone", String(64), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("version", Integer, nullable=False),
        Column("registered_at", DateTime(timezone=True), nullable=False),
    )


def pole_copy_handler(table: Table) -> Handler:
    """Keep ``table`` equal to the catalog's latest snapshot of each pole."""

    async def on_pole_snapshot(session: AsyncSession, event: ReceivedEvent) -> None:
        assert isinstance(event.payload, PoleRegistered)
        pole = event.payload
        await upsert_snapshot(
            session,
            table,
            {
                "id": pole.pole_id,
                "name": pole.name,
                "time_zone": pole.time_zone,
                "currency": pole.currency,
                "version": pole.version,
                "registered_at": pole.registered_at,
            },
        )

    return on_pole_snapshot


def catalog_copy(pole: Table) -> ConsumerSpec:
    """The consumer that keeps a service's copies of the catalog's aggregates."""
    on_pole = pole_copy_handler(pole)
    return ConsumerSpec(
        name="catalog-copy",
        handlers={
            PoleRegistered.event_spec.type: on_pole,
            PoleUpdated.event_spec.type: on_pole,
        },
    )
