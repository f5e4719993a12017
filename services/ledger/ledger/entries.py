"""Reading the journal: a book's entries with their lines, and the check of the hash chain."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select, tuple_

from ledger.access import readable_book, sees_the_whole_pole
from ledger.journal import verify_chain
from ledger.models import entry, entry_line
from shared.auth import CurrentPrincipal
from shared.errors import Forbidden
from shared.http import RuntimeDep
from shared.limits import Day
from shared.pagination import Page, PageRequest, encode_cursor, page_request

router = APIRouter(tags=["journal"])


class LineOut(BaseModel):
    line_no: int
    account: str
    debit: Decimal
    credit: Decimal
    currency: str
    counterpart_id: uuid.UUID | None
    flow: str
    resource: str
    origin: str | None
    quantity: Decimal | None
    unit: str | None
    valuation_method: str | None
    reference_date: date | None


class EntryOut(BaseModel):
    id: uuid.UUID
    book_id: uuid.UUID
    journal: str
    fiscal_year: int
    number: int
    entry_date: date
    label: str
    source: str
    reverses_id: uuid.UUID | None
    hash: str
    lines: list[LineOut]


@router.get(
    "/books/{book_id}/entries",
    summary="A book's entries with their lines (a member its own; coordinator, auditor: all)",
    responses={404: {"description": "No such book for you in your pole"}},
)
async def list_entries(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    book_id: uuid.UUID,
    page: Annotated[PageRequest, Depends(page_request)],
    journal: Annotated[str | None, Query(max_length=8)] = None,
    from_: Annotated[Day | None, Query(alias="from")] = None,
    to: Annotated[Day | None, Query(description="Excluded.")] = None,
) -> Page[EntryOut]:
    statement = select(entry).where(entry.c.book_id == book_id)
    if journal is not None:
        statement = statement.where(entry.c.journal == journal)
    if from_ is not None:
        statement = statement.where(entry.c.entry_date >= from_)
    if to is not None:
        statement = statement.where(entry.c.entry_date < to)
    after = page.after_as(date.fromisoformat)
    if after is not None:
        statement = statement.where(tuple_(entry.c.entry_date, entry.c.id) > tuple_(*after))
    statement = statement.order_by(entry.c.entry_date, entry.c.id).limit(page.limit + 1)
    async with runtime.session_factory() as session:
        await readable_book(session, principal, book_id)
        rows = list((await session.execute(statement)).all())
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        lines: dict[uuid.UUID, list[Any]] = {row.id: [] for row in rows}
        if rows:
            for line in await session.execute(
                select(entry_line)
                .where(entry_line.c.entry_id.in_(lines))
                .order_by(entry_line.c.entry_id, entry_line.c.line_no)
            ):
                lines[line.entry_id].append(line)
    return Page(
        items=[
            EntryOut(
                **{name: getattr(row, name) for name in EntryOut.model_fields if name != "lines"},
                lines=[
                    LineOut.model_validate(line, from_attributes=True) for line in lines[row.id]
                ],
            )
            for row in rows
        ],
        next_cursor=encode_cursor(rows[-1].entry_date.isoformat(), rows[-1].id) if more else None,
    )


class ChainOut(BaseModel):
    entries: int
    intact: bool
    broken_at: int | None


@router.get(
    "/pole/chain",
    summary="Recompute the hash chain of the pole's journal (coordinator, auditor)",
    responses={403: {"description": "A member's client"}},
)
async def check_chain(runtime: RuntimeDep, principal: CurrentPrincipal) -> ChainOut:
    if not sees_the_whole_pole(principal):
        raise Forbidden("Only the coordinator and auditors check the whole journal.")
    async with runtime.session_factory() as session:
        check = await verify_chain(session, principal.pole_id)
    return ChainOut(entries=check.entries, intact=check.intact, broken_at=check.broken_at)
