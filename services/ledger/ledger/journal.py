"""Posting to the journal: numbered without gaps, chained by hashes, once per source.

An entry belongs to one book (a member's, or the pole's own) and one journal. Posting takes,
in the caller's transaction:
1. the pole's chain head, locked: postings of one pole are serialised, so the chain is a line;
2. the next number of the book's journal for the fiscal year, from a locked counter row
   (rolled back with the transaction: no gap);
3. the entry's hash, over the previous hash and the entry's content.
The database checks the rest at commit: balanced lines per currency, at least two, and no
update or delete ever (migration 0004).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.chart import Flow
from ledger.models import chain_head, entry, entry_counter, entry_line

GENESIS = "0" * 64
CENT = Decimal("0.01")


def money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT)


@dataclass(frozen=True)
class Line:
    account: str
    flow: Flow
    resource: str
    debit: Decimal = Decimal(0)
    credit: Decimal = Decimal(0)
    counterpart_id: uuid.UUID | None = None
    origin: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None
    valuation_method: str | None = None
    reference_date: date | None = None


@dataclass(frozen=True)
class Posting:
    book_id: uuid.UUID
    journal: str
    entry_date: date
    label: str
    source: str
    currency: str
    lines: tuple[Line, ...]
    reverses_id: uuid.UUID | None = None
    fiscal_year: int = field(default=0)

    def __post_init__(self) -> None:
        if not self.fiscal_year:
            # Fiscal years are calendar years for now (docs/ledger.md).
            object.__setattr__(self, "fiscal_year", self.entry_date.year)


def canonical(entry_row: dict[str, Any], lines: Sequence[dict[str, Any]]) -> bytes:
    """The bytes an entry's hash covers: its content, amounts to the cent, in a fixed order."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{value:.2f}"
        if isinstance(value, date | datetime | uuid.UUID):
            return str(value)
        return value

    content = {
        "entry": {
            name: plain(entry_row[name])
            for name in (
                "id",
                "pole_id",
                "book_id",
                "journal",
                "fiscal_year",
                "number",
                "entry_date",
                "label",
                "source",
                "reverses_id",
                "position",
            )
        },
        "lines": [
            {name: plain(value) for name, value in sorted(line.items()) if name != "entry_id"}
            for line in sorted(lines, key=lambda line: line["line_no"])
        ],
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode()


def chained_hash(previous_hash: str, content: bytes) -> str:
    return hashlib.sha256(previous_hash.encode() + content).hexdigest()


async def already_posted(session: AsyncSession, posting: Posting) -> bool:
    found = await session.scalar(
        select(entry.c.id).where(
            entry.c.source == posting.source, entry.c.book_id == posting.book_id
        )
    )
    return found is not None


async def post(
    session: AsyncSession, pole_id: uuid.UUID, posting: Posting, *, now: datetime
) -> uuid.UUID | None:
    """Post ``posting``; None when its source was already posted to that book."""
    await session.execute(
        pg_insert(chain_head)
        .values(pole_id=pole_id, position=0, last_hash=GENESIS)
        .on_conflict_do_nothing()
    )
    head = (
        await session.execute(
            select(chain_head).where(chain_head.c.pole_id == pole_id).with_for_update()
        )
    ).one()
    # Checked under the pole's lock: two deliveries of one source cannot both pass.
    if await already_posted(session, posting):
        return None
    counter_key = {
        "book_id": posting.book_id,
        "journal": posting.journal,
        "fiscal_year": posting.fiscal_year,
    }
    await session.execute(
        pg_insert(entry_counter).values(**counter_key, last_number=0).on_conflict_do_nothing()
    )
    number = (
        await session.execute(
            update(entry_counter)
            .where(*(entry_counter.c[name] == value for name, value in counter_key.items()))
            .values(last_number=entry_counter.c.last_number + 1)
            .returning(entry_counter.c.last_number)
        )
    ).scalar_one()
    entry_id = uuid.uuid4()
    entry_row: dict[str, Any] = {
        "id": entry_id,
        "pole_id": pole_id,
        "book_id": posting.book_id,
        "journal": posting.journal,
        "fiscal_year": posting.fiscal_year,
        "number": number,
        "entry_date": posting.entry_date,
        "label": posting.label[:300],
        "source": posting.source,
        "reverses_id": posting.reverses_id,
        "position": head.position + 1,
    }
    line_rows = [
        {
            "entry_id": entry_id,
            "line_no": line_no,
            "account": line.account,
            "debit": money(line.debit),
            "credit": money(line.credit),
            "currency": posting.currency,
            "counterpart_id": line.counterpart_id,
            "flow": line.flow,
            "resource": line.resource,
            "origin": line.origin,
            "quantity": money(line.quantity) if line.quantity is not None else None,
            "unit": line.unit,
            "valuation_method": line.valuation_method,
            "reference_date": line.reference_date,
        }
        for line_no, line in enumerate(posting.lines, start=1)
    ]
    digest = chained_hash(head.last_hash, canonical(entry_row, line_rows))
    await session.execute(
        insert(entry).values(**entry_row, previous_hash=head.last_hash, hash=digest, posted_at=now)
    )
    # One statement for all the lines: the running totals' trigger runs once per posting.
    await session.execute(insert(entry_line).values(line_rows))
    await session.execute(
        update(chain_head)
        .where(chain_head.c.pole_id == pole_id)
        .values(position=head.position + 1, last_hash=digest)
    )
    return entry_id


def reversal_of(original: Any, lines: Sequence[Any], *, source: str, entry_date: date) -> Posting:
    """The entry that cancels ``original``: the same lines, debit and credit swapped."""
    return Posting(
        book_id=original.book_id,
        journal=original.journal,
        entry_date=entry_date,
        label=f"Contre-passation : {original.label}"[:300],
        source=source,
        currency=lines[0].currency,
        reverses_id=original.id,
        lines=tuple(
            Line(
                account=line.account,
                flow=line.flow,
                resource=line.resource,
                debit=line.credit,
                credit=line.debit,
                counterpart_id=line.counterpart_id,
                origin=line.origin,
                quantity=-line.quantity if line.quantity is not None else None,
                unit=line.unit,
                valuation_method=line.valuation_method,
                reference_date=line.reference_date,
            )
            for line in lines
        ),
    )


@dataclass(frozen=True)
class ChainCheck:
    entries: int
    broken_at: int | None
    """Position of the first entry whose hash does not match its content, or None."""

    @property
    def intact(self) -> bool:
        return self.broken_at is None


async def _entries_with_lines(
    session: AsyncSession, pole_id: uuid.UUID
) -> AsyncIterator[tuple[Any, list[dict[str, Any]]]]:
    statement = (
        select(entry, entry_line)
        .join(entry_line, entry_line.c.entry_id == entry.c.id)
        .where(entry.c.pole_id == pole_id)
        .order_by(entry.c.position, entry_line.c.line_no)
        .execution_options(yield_per=2000)
    )
    current: Any = None
    lines: list[dict[str, Any]] = []
    result = await session.stream(statement)
    async for row in result:
        mapping = row._mapping
        if current is not None and mapping[entry.c.id] != current[entry.c.id]:
            yield current, lines
            lines = []
        current = mapping
        lines.append({column.name: mapping[column] for column in entry_line.c})
    if current is not None:
        yield current, lines


async def verify_chain(session: AsyncSession, pole_id: uuid.UUID) -> ChainCheck:
    """Recompute every hash of a pole's journal, in order, streaming.

    ``session`` must not have begun: the entries and the chain head are read in one snapshot
    (REPEATABLE READ). Read apart, a posting committed between the two (entries and head move
    in one transaction) showed a sound journal as cut off at its end.
    """
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    previous, count = GENESIS, 0
    async for current, lines in _entries_with_lines(session, pole_id):
        count += 1
        entry_row = {column.name: current[column] for column in entry.c}
        expected = chained_hash(previous, canonical(entry_row, lines))
        if current[entry.c.previous_hash] != previous or current[entry.c.hash] != expected:
            return ChainCheck(entries=count, broken_at=int(current[entry.c.position]))
        previous = expected
    # The head remembers the last entry: entries cut off the end of the chain show here.
    head = (
        await session.execute(select(chain_head).where(chain_head.c.pole_id == pole_id))
    ).first()
    if head is not None and (head.position != count or head.last_hash != previous):
        return ChainCheck(entries=count, broken_at=count + 1)
    return ChainCheck(entries=count, broken_at=None)


async def poles_with_entries(session: AsyncSession) -> dict[uuid.UUID, int]:
    """Every pole that has a journal, with its number of entries (for ``ptce ledger verify``)."""
    rows = await session.execute(
        select(entry.c.pole_id, func.count()).group_by(entry.c.pole_id).order_by(entry.c.pole_id)
    )
    return {pole_id: count for pole_id, count in rows}
