"""Local copies of other services' aggregates (event-carried state transfer).

Events carry a full snapshot and its version; a copy keeps the highest version it saw,
so redelivered, replayed or reordered snapshots never move a copy backwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    bindparam,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import INVALID_TOKEN, Principal
from shared.consumer import ConsumerSpec, Handler
from shared.contracts.catalog import (
    MemberLeft,
    MemberRegistered,
    MemberSnapshot,
    MemberUpdated,
    OfferArchived,
    OfferPaused,
    OfferPublished,
    OfferSnapshot,
    OfferUpdated,
    PoleRegistered,
    PoleUpdated,
)
from shared.errors import Unauthorized
from shared.events.envelope import ReceivedEvent
from shared.events.registry import EventPayload
from shared.uow import UnitOfWork

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

PrincipalCheck = Callable[["ServiceRuntime", Principal], Awaitable[None]]


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
    """A service's copy of the catalog's poles (time zone, currency and exchange rules)."""
    return Table(
        "pole",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("name", String(200), nullable=False),
        Column("time_zone", String(64), nullable=False),
        Column("currency", String(3), nullable=False),
        Column("exchange_rules", JSONB, nullable=False, server_default=text("'{}'")),
        Column("version", Integer, nullable=False),
        Column("registered_at", DateTime(timezone=True), nullable=False),
    )


def pole_copy_handler(table: Table) -> Handler:
    """Keep ``table`` equal to the catalog's latest snapshot of each pole."""
    return snapshot_copy_handler(table, PoleRegistered, "pole_id")


def member_copy_table(metadata: MetaData) -> Table:
    """A service's copy of the catalog's members: every field of their snapshot."""
    return Table(
        "member",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("pole_id", Uuid, nullable=False, index=True),
        Column("legal_name", String(300), nullable=False),
        Column("siret", String(14), nullable=False),
        Column("category", String(40), nullable=False),
        Column("is_ess", Boolean, nullable=False),
        Column("headcount", Integer),
        Column("annual_turnover", Numeric(16, 2)),
        Column("street", String(300), nullable=False),
        Column("postal_code", String(5), nullable=False),
        Column("commune", String(200), nullable=False),
        Column("insee_code", String(5), nullable=False),
        Column("joined_on", Date, nullable=False),
        Column("left_on", Date),
        Column("version", Integer, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    )


def offer_copy_table(metadata: MetaData) -> Table:
    """A service's copy of the catalog's offers (those ever published): their snapshot."""
    return Table(
        "offer",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("pole_id", Uuid, nullable=False, index=True),
        Column("owner_id", Uuid, nullable=False, index=True),
        Column("kind", String(20), nullable=False),
        Column("state", String(20), nullable=False),
        Column("title", String(200), nullable=False),
        Column("description", String(5000), nullable=False),
        Column("street", String(300)),
        Column("postal_code", String(5)),
        Column("commune", String(200)),
        Column("insee_code", String(5)),
        Column("unit", String(20)),
        Column("capacity", Integer, nullable=False),
        Column("booking_mode", String(20), nullable=False),
        Column("internal_price", Numeric(12, 2)),
        Column("reference_value", Numeric(12, 2)),
        Column("valuation_basis", String(20)),
        Column("attributes", JSONB, nullable=False),
        Column("availability", JSONB, nullable=False),
        Column("version", Integer, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
    )


OnCopied = Callable[[UnitOfWork, EventPayload], Awaitable[None]]


def snapshot_copy_handler(
    table: Table,
    snapshot: type[EventPayload],
    id_field: str,
    *,
    on_copied: OnCopied | None = None,
) -> Handler:
    """Keep ``table`` equal to the latest snapshot of each aggregate (by version).

    The snapshot's fields map to the table's columns of the same name; ``id_field`` is the
    table's ``id``. Older or repeated snapshots change nothing. ``on_copied`` reacts, in the
    same transaction, to a snapshot that changed the copy (never to an older or repeated one).
    """
    columns = set(table.c.keys())

    async def on_snapshot(uow: UnitOfWork, event: ReceivedEvent) -> None:
        assert isinstance(event.payload, snapshot)
        values = event.payload.model_dump()
        values["id"] = values.pop(id_field)
        changed = await upsert_snapshot(
            uow.session, table, {name: value for name, value in values.items() if name in columns}
        )
        if changed and on_copied is not None:
            await on_copied(uow, event.payload)

    return on_snapshot


def catalog_copy(
    pole: Table,
    *,
    member: Table | None = None,
    offer: Table | None = None,
    on_member_copied: OnCopied | None = None,
    on_offer_copied: OnCopied | None = None,
) -> ConsumerSpec:
    """The consumer that keeps a service's copies of the catalog's aggregates (and runs the
    service's reactions to the snapshots that changed them)."""
    on_pole = pole_copy_handler(pole)
    handlers: dict[str, Handler] = {
        PoleRegistered.event_spec.type: on_pole,
        PoleUpdated.event_spec.type: on_pole,
    }
    if member is not None:
        on_member = snapshot_copy_handler(
            member, MemberSnapshot, "member_id", on_copied=on_member_copied
        )
        for member_event in (MemberRegistered, MemberUpdated, MemberLeft):
            handlers[member_event.event_spec.type] = on_member
    if offer is not None:
        on_offer = snapshot_copy_handler(
            offer, OfferSnapshot, "offer_id", on_copied=on_offer_copied
        )
        for offer_event in (OfferPublished, OfferUpdated, OfferPaused, OfferArchived):
            handlers[offer_event.event_spec.type] = on_offer
    return ConsumerSpec(name="catalog-copy", handlers=handlers)


def refuse_departed_members(member: Table) -> PrincipalCheck:
    """A service's check that refuses (401) a member whose departure reached its copy.

    One statement in autocommit mode (a single round trip), not repeated for the same member
    within ``AUTH_MEMBER_RECHECK_SECONDS`` (decision 39): a departure applied by any
    replica's consumer is refused by every replica within that time. A member that left is
    never remembered: it is refused on every request.
    """
    left_on_of = select(member.c.left_on).where(member.c.id == bindparam("member_id"))

    async def still_member(runtime: ServiceRuntime, principal: Principal) -> None:
        checks = runtime.member_checks
        if checks.fresh(principal.member_id):
            return
        async with runtime.autocommit_engine.connect() as conn:
            left_on = (await conn.execute(left_on_of, {"member_id": principal.member_id})).scalar()
        if left_on is not None:
            raise Unauthorized("This member left the pole.", headers=INVALID_TOKEN)
        checks.remember(principal.member_id)

    return still_member
