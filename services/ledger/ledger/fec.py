"""The FEC (fichier des écritures comptables, article A47 A-1 of the Livre des procédures
fiscales): one book's entries of a fiscal year, as accounting software and the tax
administration read them.

- ``GET /books/{book_id}/fec?year=2026``: a member's book (the member itself, or the
  coordinator and auditors of its pole), or the pole's own (book id = pole id; coordinator and
  auditors). Anything else answers 404, as every book read does (``ledger.access``).
- ``GET /fec?year=2026``: every book of the caller's pole, one after the other (coordinator and
  auditors; a member gets 403: the endpoint is its pole's, there is nothing to hide). Entry
  numbers are prefixed by the book's short code, so that they stay unique.

The file: 18 tab-separated columns in the fixed order of :data:`COLUMNS`, a header line with
their names, CRLF line ends, UTF-8; dates as AAAAMMJJ, amounts with a decimal comma and no
thousands separator. Lines come by journal, then entry number (gap-free per book, journal and
fiscal year: the journal's own numbers), then line number. It is streamed from a server-side
cursor, a chunk per :data:`YIELD_PER` lines: memory stays flat whatever the size of the book.
Its name is ``<SIREN>FEC<closing date>.txt``; the pole's own book, and the whole pole, have no
SIREN of their own: ``000000000``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.access import readable_book, sees_the_whole_pole
from ledger.chart import ACCOUNTS, JOURNALS
from ledger.models import entry, entry_line, member, pole
from shared.auth import CurrentPrincipal
from shared.errors import Forbidden, Problem, UnprocessableEntity
from shared.http import RuntimeDep

router = APIRouter(tags=["exports"])

COLUMNS = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)
SEPARATOR, END_OF_LINE = "\t", "\r\n"
HEADER = SEPARATOR.join(COLUMNS) + END_OF_LINE
MEDIA_TYPE = "text/plain; charset=utf-8"
NO_SIREN = "000000000"
"""The pole's own book and the whole pole: the FEC's name wants a SIREN, they have none."""
BOOK_CURRENCY = "EUR"
"""The FEC is kept in euros: Montantdevise and Idevise are filled only for another currency."""
THIRD_PARTY_ACCOUNTS = ("401", "411")
"""Accounts with an auxiliary account per counterpart member (CompAuxNum, CompAuxLib)."""
PIECE_REF_LENGTH = 40
YIELD_PER = 1000
"""Lines fetched per round trip from the cursor, and written per chunk of the answer."""
DEFAULT_TIME_ZONE = "Europe/Paris"
"""For ValidDate, when the pole's copy has not arrived yet (the catalog's default)."""

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BLANKS = re.compile(r"[\t\r\n]+")


def short_code(book_or_member_id: uuid.UUID) -> str:
    """A member's (or book's) code in the FEC: the first 8 hex digits of its id, upper case.

    Stable, and in the same order as the ids (the whole pole's FEC goes book by book)."""
    return book_or_member_id.hex[:8].upper()


def fec_filename(siret: str | None, year: int) -> str:
    siren = siret[:9] if siret else NO_SIREN
    return f"{siren}FEC{closing_date(year):%Y%m%d}.txt"


def closing_date(year: int) -> date:
    """The last day of the fiscal year: fiscal years are calendar years (docs/ledger.md)."""
    return date(year, 12, 31)


def fec_date(day: date) -> str:
    return f"{day:%Y%m%d}"


def fec_amount(amount: Decimal) -> str:
    return f"{amount:.2f}".replace(".", ",")


def free_text(value: str) -> str:
    """A free text field: no tab or line end may break the columns."""
    return _BLANKS.sub(" ", value).strip()


def piece_ref(source: str) -> str:
    """The entry's source, shortened: every UUID to its first 8 hex digits, then at most
    :data:`PIECE_REF_LENGTH` characters (``exchange:1a2b3c4d:completed:v3:EX``)."""
    return free_text(_UUID.sub(lambda found: found.group()[:8], source))[:PIECE_REF_LENGTH]


@lru_cache(maxsize=256)
def account_label(account: str) -> str:
    """The chart's label of ``account``, or of its longest prefix the chart names."""
    for length in range(len(account), 0, -1):
        label = ACCOUNTS.get(account[:length])
        if label is not None:
            return label
    return f"Compte {account}"


def parse_journals(journals: str | None) -> tuple[str, ...]:
    if journals is None:
        return tuple(JOURNALS)
    codes = tuple(dict.fromkeys(code.strip().upper() for code in journals.split(",")))
    unknown = [code for code in codes if code not in JOURNALS]
    if unknown or not codes:
        raise UnprocessableEntity(
            f"Unknown journal(s): {', '.join(unknown) or '(none)'}; "
            f"give some of {', '.join(JOURNALS)}, comma-separated.",
            invalid_params=[{"name": "query.journals", "reason": "unknown journal code"}],
        )
    return codes


def fec_statement(
    *, pole_id: uuid.UUID, year: int, journals: Sequence[str], book_id: uuid.UUID | None
) -> Select[Any]:
    """The lines of one book (or, ``book_id`` None, of every book of the pole) in FEC order."""
    counterpart = member.alias("counterpart")
    statement = (
        select(
            entry.c.book_id,
            entry.c.journal,
            entry.c.number,
            entry.c.entry_date,
            entry.c.label,
            entry.c.source,
            entry.c.posted_at,
            entry_line.c.account,
            entry_line.c.debit,
            entry_line.c.credit,
            entry_line.c.currency,
            entry_line.c.counterpart_id,
            counterpart.c.legal_name.label("counterpart_name"),
        )
        .join(entry_line, entry_line.c.entry_id == entry.c.id)
        .outerjoin(
            counterpart,
            and_(
                counterpart.c.id == entry_line.c.counterpart_id,
                counterpart.c.pole_id == entry.c.pole_id,
            ),
        )
        .where(
            entry.c.pole_id == pole_id,
            entry.c.fiscal_year == year,
            entry.c.journal.in_(journals),
        )
    )
    order = (entry.c.journal, entry.c.number, entry_line.c.line_no)
    if book_id is not None:
        return statement.where(entry.c.book_id == book_id).order_by(*order)
    return statement.order_by(entry.c.book_id, *order)


def line_formatter(*, time_zone: str, prefix_book: bool) -> Callable[[Any], str]:
    """Turns a row of :func:`fec_statement` into one line of the file (CRLF included)."""
    zone = ZoneInfo(time_zone)

    def format_line(row: Any) -> str:
        number = f"{row.journal}-{row.number}"
        if prefix_book:
            number = f"{short_code(row.book_id)}-{number}"
        aux_num = aux_lib = ""
        if row.counterpart_id is not None and row.account.startswith(THIRD_PARTY_ACCOUNTS):
            aux_num = short_code(row.counterpart_id)
            aux_lib = free_text(row.counterpart_name or f"Membre {aux_num}")
        other_currency = row.currency != BOOK_CURRENCY
        posted_on: datetime = row.posted_at.astimezone(zone)
        fields = (
            row.journal,
            JOURNALS.get(row.journal, row.journal),
            number,
            fec_date(row.entry_date),
            row.account,
            account_label(row.account),
            aux_num,
            aux_lib,
            piece_ref(row.source),
            fec_date(row.entry_date),
            free_text(row.label),
            fec_amount(row.debit),
            fec_amount(row.credit),
            "",
            "",
            fec_date(posted_on.date()),
            fec_amount(row.debit or row.credit) if other_currency else "",
            row.currency if other_currency else "",
        )
        return SEPARATOR.join(fields) + END_OF_LINE

    return format_line


async def fec_chunks(
    session_factory: async_sessionmaker[AsyncSession],
    *,
    pole_id: uuid.UUID,
    year: int,
    journals: Sequence[str],
    book_id: uuid.UUID | None,
    time_zone: str,
) -> AsyncIterator[bytes]:
    """The file, chunk by chunk: the header, then :data:`YIELD_PER` lines at a time, read from
    a server-side cursor (one statement: one snapshot, even for the whole pole)."""
    yield HEADER.encode()
    format_line = line_formatter(time_zone=time_zone, prefix_book=book_id is None)
    statement = fec_statement(
        pole_id=pole_id, year=year, journals=journals, book_id=book_id
    ).execution_options(yield_per=YIELD_PER)
    async with session_factory() as session:
        result = await session.stream(statement)
        async for rows in result.partitions():
            yield "".join(format_line(row) for row in rows).encode()


async def _time_zone(session: AsyncSession, pole_id: uuid.UUID) -> str:
    zone = await session.scalar(select(pole.c.time_zone).where(pole.c.id == pole_id))
    return zone or DEFAULT_TIME_ZONE


def _attachment(chunks: AsyncIterator[bytes], filename: str) -> StreamingResponse:
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


Year = Annotated[
    int, Query(ge=2000, le=2999, description="The fiscal year (a calendar year), e.g. 2026.")
]
Journals = Annotated[
    str | None,
    Query(
        description="Only these journals, comma-separated (e.g. `EX,OD` to leave out the "
        "contributions in kind, CVN). Default: all.",
        examples=["EX,OD"],
    ),
]
FEC_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/plain": {}},
        "description": "The FEC: 18 tab-separated columns, a header line, UTF-8.",
    },
    422: {"model": Problem, "description": "An unknown journal or a year out of range"},
}


@router.get(
    "/books/{book_id}/fec",
    summary="A book's FEC (fichier des écritures comptables) for a fiscal year",
    response_class=StreamingResponse,
    responses={**FEC_RESPONSE, 404: {"model": Problem, "description": "No such book for you"}},
)
async def book_fec(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    book_id: Annotated[uuid.UUID, Path(description="A member's id, or the pole's own.")],
    year: Year,
    journals: Journals = None,
) -> StreamingResponse:
    codes = parse_journals(journals)
    # Who may read it is decided before the first byte: an answer that started is a 200.
    async with runtime.session_factory() as session:
        book = await readable_book(session, principal, book_id)
        time_zone = await _time_zone(session, principal.pole_id)
    chunks = fec_chunks(
        runtime.session_factory,
        pole_id=principal.pole_id,
        year=year,
        journals=codes,
        book_id=book.id,
        time_zone=time_zone,
    )
    return _attachment(chunks, fec_filename(book.siret, year))


@router.get(
    "/fec",
    summary="The whole pole's FEC for a fiscal year, book after book (coordinator, auditors)",
    response_class=StreamingResponse,
    responses={
        **FEC_RESPONSE,
        403: {"model": Problem, "description": "A member's client"},
    },
)
async def pole_fec(
    runtime: RuntimeDep, principal: CurrentPrincipal, year: Year, journals: Journals = None
) -> StreamingResponse:
    if not sees_the_whole_pole(principal):
        raise Forbidden("Only the pole's coordinator and auditors read the whole pole's FEC.")
    codes = parse_journals(journals)
    async with runtime.session_factory() as session:
        time_zone = await _time_zone(session, principal.pole_id)
    chunks = fec_chunks(
        runtime.session_factory,
        pole_id=principal.pole_id,
        year=year,
        journals=codes,
        book_id=None,
        time_zone=time_zone,
    )
    return _attachment(chunks, fec_filename(None, year))
