"""Posting to the journal: numbered without gaps, chained by hashes, once per source.

An entry belongs to one book (a member's, or the pole's own) and one journal. Posting takes,
in the caller's transaction:
1. the pole's chain head, locked: postings of one pole are serialised, so the chain is a line;
2. the next number of the book's journal for the fiscal year, from a locked counter row
   (rolled back with the transaction: no gap);
3. the entry's hash, over the previous hash and the entry's content.
The database checks the rest at commit: balanced lines per currency, at least two, and no
update or delete ever (migration 0004).

A :class:`Journal` does this for all the postings of a transaction at once (the ledger's
consumer applies a batch of events in one transaction): a handful of statements for the
whole batch instead of eight per posting.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    ARRAY,
    String,
    Uuid,
    any_,
    bindparam,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.chart import Flow
from ledger.models import chain_head, entry, entry_counter, entry_line
from shared.db import as_arrays, bulk_insert

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


class Journal:
    """The postings of one transaction, written together (``flush``): the poles' chain heads
    locked once, what was posted already read in one statement, the journals' numbers taken in
    one, the entries inserted in one and their lines in one (the totals' trigger runs once).

    Postings of a pole are written in the order they were added, which is their chain order.
    A source already posted to a book (earlier, or earlier in the same flush) posts nothing.
    """

    def __init__(self, session: AsyncSession, *, now: datetime) -> None:
        self._session = session
        self._now = now
        self._pending: list[tuple[uuid.UUID, Posting]] = []

    def add(self, pole_id: uuid.UUID, posting: Posting) -> None:
        self._pending.append((pole_id, posting))

    async def flush(self) -> list[uuid.UUID | None]:
        """Write what was added; for each posting its entry's id, None when its source had
        already been posted to its book."""
        pending, self._pending = self._pending, []
        if not pending:
            return []
        heads = await self._locked_heads(sorted({pole_id for pole_id, _ in pending}))
        # Read under the poles' locks: two deliveries of one source cannot both pass.
        seen = await self._posted_sources([posting for _, posting in pending])
        to_write: list[tuple[int, uuid.UUID, Posting]] = []
        for index, (pole_id, posting) in enumerate(pending):
            if (posting.source, posting.book_id) not in seen:
                seen.add((posting.source, posting.book_id))
                to_write.append((index, pole_id, posting))
        ids: list[uuid.UUID | None] = [None] * len(pending)
        if not to_write:
            return ids
        numbers = await self._numbers([posting for _, _, posting in to_write])
        entry_rows: list[dict[str, Any]] = []
        line_rows: list[dict[str, Any]] = []
        for index, pole_id, posting in to_write:
            position, last_hash = heads[pole_id]
            number = next(numbers[_counter_key(posting)])
            entry_row, lines = _rows(pole_id, posting, number, position + 1)
            digest = chained_hash(last_hash, canonical(entry_row, lines))
            entry_rows.append(
                {**entry_row, "previous_hash": last_hash, "hash": digest, "posted_at": self._now}
            )
            line_rows.extend(lines)
            heads[pole_id] = (position + 1, digest)
            ids[index] = entry_row["id"]
        await self._session.execute(_INSERT_ENTRIES, as_arrays(entry_rows, _ENTRY_COLUMNS))
        await self._session.execute(_INSERT_LINES, as_arrays(line_rows, _LINE_COLUMNS))
        for pole_id in {pole_id for _, pole_id, _ in to_write}:
            position, last_hash = heads[pole_id]
            await self._session.execute(
                update(chain_head)
                .where(chain_head.c.pole_id == pole_id)
                .values(position=position, last_hash=last_hash)
            )
        return ids

    async def _locked_heads(self, poles: list[uuid.UUID]) -> dict[uuid.UUID, tuple[int, str]]:
        await self._session.execute(
            _START_CHAINS,
            {"pole_id": poles, "position": [0] * len(poles), "last_hash": [GENESIS] * len(poles)},
        )
        rows = await self._session.execute(
            select(chain_head.c.pole_id, chain_head.c.position, chain_head.c.last_hash)
            .where(chain_head.c.pole_id == any_(bindparam("poles", poles, type_=ARRAY(Uuid))))
            .order_by(chain_head.c.pole_id)
            .with_for_update()
        )
        return {pole_id: (position, last_hash) for pole_id, position, last_hash in rows}

    async def _posted_sources(self, postings: list[Posting]) -> set[tuple[str, uuid.UUID]]:
        sources = sorted({posting.source for posting in postings})
        rows = await self._session.execute(
            select(entry.c.source, entry.c.book_id).where(
                entry.c.source == any_(bindparam("sources", sources, type_=ARRAY(String)))
            )
        )
        return {(source, book_id) for source, book_id in rows}

    async def _numbers(self, postings: list[Posting]) -> dict[CounterKey, Iterator[int]]:
        """The next numbers of each journal the postings go to, reserved in one statement
        (counter rows locked until the commit; a rollback gives them back: no gap)."""
        wanted = Counter(_counter_key(posting) for posting in postings)
        keys = sorted(wanted)  # one lock order for every transaction
        rows = await self._session.execute(
            _RESERVE_NUMBERS,
            as_arrays(
                [{**key._asdict(), "last_number": wanted[key]} for key in keys], _COUNTER_COLUMNS
            ),
        )
        numbers: dict[CounterKey, Iterator[int]] = {}
        for book_id, journal, fiscal_year, last in rows:
            key = CounterKey(book_id, journal, fiscal_year)
            numbers[key] = iter(range(last - wanted[key] + 1, last + 1))
        return numbers


_ENTRY_COLUMNS = tuple(column.name for column in entry.c)
_LINE_COLUMNS = tuple(column.name for column in entry_line.c)
_COUNTER_COLUMNS = tuple(column.name for column in entry_counter.c)
_INSERT_ENTRIES = bulk_insert(entry)
_INSERT_LINES = bulk_insert(entry_line)
_START_CHAINS = bulk_insert(chain_head).on_conflict_do_nothing()
_RESERVE_NUMBERS = (
    bulk_insert(entry_counter)
    .on_conflict_do_update(
        index_elements=["book_id", "journal", "fiscal_year"],
        set_={"last_number": entry_counter.c.last_number + literal_column("excluded.last_number")},
    )
    .returning(
        entry_counter.c.book_id,
        entry_counter.c.journal,
        entry_counter.c.fiscal_year,
        entry_counter.c.last_number,
    )
)


class CounterKey(NamedTuple):
    book_id: uuid.UUID
    journal: str
    fiscal_year: int


def _counter_key(posting: Posting) -> CounterKey:
    return CounterKey(posting.book_id, posting.journal, posting.fiscal_year)


def _rows(
    pole_id: uuid.UUID, posting: Posting, number: int, position: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An entry's row (without its hashes) and its lines' rows."""
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
        "position": position,
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
    return entry_row, line_rows


async def post(
    session: AsyncSession, pole_id: uuid.UUID, posting: Posting, *, now: datetime
) -> uuid.UUID | None:
    """Post ``posting`` at once; None when its source was already posted to that book."""
    journal = Journal(session, now=now)
    journal.add(pole_id, posting)
    return (await journal.flush())[0]


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
