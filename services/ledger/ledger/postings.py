"""The ledger's consumers: it values the exchange's events and keeps the pole's references.

Each event is applied once (the idempotent consumer), and each posting carries its source,
which the journal accepts once per book: a redelivered or replayed event posts nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.journal import Journal, Posting, reversal_of
from ledger.models import entry, entry_line, pole, valuation_reference
from ledger.valuation import (
    VOLUNTEER_HOUR,
    Context,
    Reference,
    exchange_day,
    value_completed,
    value_fee,
)
from shared.consumer import ConsumerSpec, NotApplicableYet
from shared.contracts.catalog import ExchangeRules, ValuationReferenceRecorded
from shared.contracts.exchange import (
    RequestCancelled,
    RequestCompleted,
    RequestCorrected,
    RequestNoShow,
    RequestSnapshot,
)
from shared.db import utcnow
from shared.events.envelope import ReceivedEvent
from shared.uow import UnitOfWork


class PoleNotCopiedYet(NotApplicableYet):
    """The exchange's event overtook the catalog's pole event: retried until it arrived."""


async def reference_on(
    session: AsyncSession, pole_id: uuid.UUID, code: str, day: date
) -> Reference | None:
    """The pole's reference ``code`` in effect on ``day``."""
    row = (
        await session.execute(
            select(valuation_reference)
            .where(
                valuation_reference.c.pole_id == pole_id,
                valuation_reference.c.code == code,
                valuation_reference.c.valid_from <= day,
            )
            .order_by(valuation_reference.c.valid_from.desc())
            .limit(1)
        )
    ).first()
    return Reference(row.code, row.amount, row.valid_from) if row is not None else None


class _Contexts:
    """The valuation contexts read in one transaction (a batch of events of a few poles and
    days reads each once); the transaction's snapshot of them, so never stale within it."""

    def __init__(self) -> None:
        self.by_pole_and_day: dict[tuple[uuid.UUID, date], Context] = {}


async def _context(uow: UnitOfWork, snapshot: RequestSnapshot) -> Context:
    moment = snapshot.end if snapshot.end is not None else snapshot.changed_at
    key = (snapshot.pole_id, moment.date())
    contexts = uow.attached(_Contexts, _Contexts).by_pole_and_day
    if key in contexts:
        return contexts[key]
    session = uow.session
    pole_row = (await session.execute(select(pole).where(pole.c.id == snapshot.pole_id))).first()
    if pole_row is None:
        raise PoleNotCopiedYet(str(snapshot.pole_id))
    contexts[key] = Context(
        time_zone=pole_row.time_zone,
        rules=ExchangeRules.model_validate(pole_row.exchange_rules or {}),
        volunteer_hour=await reference_on(session, snapshot.pole_id, VOLUNTEER_HOUR, moment.date()),
    )
    return contexts[key]


def journal_of(uow: UnitOfWork) -> Journal:
    """The transaction's journal: postings added to it are written when the unit of work
    commits, all of them together."""

    def new_journal() -> Journal:
        journal = Journal(uow.session, now=utcnow())
        uow.before_commit(journal.flush)
        return journal

    return uow.attached(Journal, new_journal)


def _post_all(uow: UnitOfWork, pole_id: uuid.UUID, postings: list[Posting]) -> None:
    journal = journal_of(uow)
    for posting in postings:
        journal.add(pole_id, posting)


async def on_completed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    snapshot = event.payload
    assert isinstance(snapshot, RequestSnapshot)
    context = await _context(uow, snapshot)
    _post_all(uow, snapshot.pole_id, value_completed(snapshot, context))


async def on_corrected(uow: UnitOfWork, event: ReceivedEvent) -> None:
    """Reverse what the exchange's earlier versions posted, then post the corrected figures."""
    snapshot = event.payload
    assert isinstance(snapshot, RequestSnapshot)
    context = await _context(uow, snapshot)
    journal = journal_of(uow)
    await journal.flush()  # what this transaction posted already is read below
    session = uow.session
    reversed_ids = select(entry.c.reverses_id).where(entry.c.reverses_id.is_not(None))
    earlier = (
        await session.execute(
            select(entry)
            .where(
                entry.c.pole_id == snapshot.pole_id,
                entry.c.source.like(f"exchange:{snapshot.request_id}:completed:%"),
                entry.c.reverses_id.is_(None),
                entry.c.id.not_in(reversed_ids),
            )
            .order_by(entry.c.position)
        )
    ).all()
    for original in earlier:
        lines = (
            await session.execute(
                select(entry_line)
                .where(entry_line.c.entry_id == original.id)
                .order_by(entry_line.c.line_no)
            )
        ).all()
        reversal = reversal_of(
            original,
            lines,
            source=f"{original.source}:reversed-by-v{snapshot.version}",
            entry_date=exchange_day(snapshot, context.time_zone),
        )
        journal.add(snapshot.pole_id, reversal)
    _post_all(uow, snapshot.pole_id, value_completed(snapshot, context))


async def on_cancelled_or_missed(uow: UnitOfWork, event: ReceivedEvent) -> None:
    snapshot = event.payload
    assert isinstance(snapshot, RequestSnapshot)
    context = await _context(uow, snapshot)
    _post_all(uow, snapshot.pole_id, value_fee(snapshot, context))


async def on_reference(uow: UnitOfWork, event: ReceivedEvent) -> None:
    recorded = event.payload
    assert isinstance(recorded, ValuationReferenceRecorded)
    values: dict[str, Any] = recorded.model_dump(exclude={"reference_id", "recorded_at"})
    await uow.session.execute(
        insert(valuation_reference)
        .values(id=recorded.reference_id, **values)
        .on_conflict_do_nothing()
    )


EXCHANGE_VALUATION = ConsumerSpec(
    name="exchange-valuation",
    handlers={
        RequestCompleted.event_spec.type: on_completed,
        RequestCorrected.event_spec.type: on_corrected,
        RequestCancelled.event_spec.type: on_cancelled_or_missed,
        RequestNoShow.event_spec.type: on_cancelled_or_missed,
    },
)
