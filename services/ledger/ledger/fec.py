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

Speed (``bench/ledger_reports.py``: a million lines at 100,000 lines a second or more): the
cursor is declared in SQL (``DECLARE … CURSOR``), which PostgreSQL plans for its first rows:
the entries come in order from an index (``ix_entry_fec``: pole, year, book, journal,
number), their lines from a covering one (``ix_entry_line_fec``), and the first chunk leaves
at once, where a plan for the whole result would join and sort the whole
year first. Each line is formatted with what its entry, its account and its counterpart
already gave (cached); PostgreSQL writes the amounts (a ``numeric(14, 2)`` has the file's two
decimals) and sends an entry's own fields with its first line only; the counterparts' names
come from one read of the pole's members in the same snapshot (repeatable read); PostgreSQL
reads the next chunk while this one is formatted.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import anyio
from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import ColumnElement, Select, Text, case, cast, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

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
CURSOR = "fec_lines"
ZERO_AMOUNT = "0,00"
DEFAULT_TIME_ZONE = "Europe/Paris"
"""For ValidDate, when the pole's copy has not arrived yet (the catalog's default)."""

_UUID = re.compile(r"([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
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
    if "\t" in value or "\n" in value or "\r" in value:
        value = _BLANKS.sub(" ", value)
    return value.strip()


def piece_ref(source: str) -> str:
    """The entry's source, shortened: every UUID to its first 8 hex digits, then at most
    :data:`PIECE_REF_LENGTH` characters (``exchange:1a2b3c4d:completed:v3:EX``)."""
    # Split on the UUIDs, keeping their first 8 digits (the pattern's group): a substitution,
    # without a Python call per UUID.
    return free_text("".join(_UUID.split(source)))[:PIECE_REF_LENGTH]


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
    """The lines of one book (or, ``book_id`` None, of every book of the pole) in FEC order.

    An entry's own fields come with its first line only (null on the others: as many values
    fewer to send and decode), the lines of an entry being numbered from 1
    (:func:`ledger.journal.post`) and coming one after the other; the counterpart only on the
    lines of a third-party account (:data:`THIRD_PARTY_ACCOUNTS`), the only ones that show
    it. The amounts come written: ``Debit``, a tab, ``Credit``, as PostgreSQL writes a
    ``numeric(14, 2)`` (two decimals, as the file wants them) with a decimal comma. The columns
    are the same for a book and for the whole pole (see :func:`_chunks`)."""
    first_line = entry_line.c.line_no == 1
    account = entry_line.c.account

    def of_entry(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return case((first_line, column)).label(column.key or "")

    def written(amount: ColumnElement[Any]) -> ColumnElement[str]:
        return func.replace(cast(amount, Text), ".", ",")

    third_party = or_(*(account.like(f"{prefix}%") for prefix in THIRD_PARTY_ACCOUNTS))
    statement = (
        select(
            of_entry(entry.c.book_id),
            of_entry(entry.c.journal),
            of_entry(entry.c.number),
            of_entry(entry.c.entry_date),
            of_entry(entry.c.label),
            of_entry(entry.c.source),
            of_entry(entry.c.posted_at),
            account,
            written(entry_line.c.debit)
            .op("||")(SEPARATOR)
            .op("||")(written(entry_line.c.credit))
            .label("amounts"),
            entry_line.c.currency,
            case((third_party, entry_line.c.counterpart_id)).label("counterpart_id"),
        )
        .select_from(entry)
        .join(entry_line, entry_line.c.entry_id == entry.c.id)
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


class LineFormatter:
    """Turns rows of :func:`fec_statement` into lines of the file (CRLF included), a batch at
    a time. What an entry's lines share (journal, number, dates, piece, label) is formatted
    once per entry, an account's label and a counterpart's columns once per file.

    ``names``: the legal names of the pole's members (``CompAuxLib``), by id."""

    def __init__(self, *, time_zone: str, prefix_book: bool, names: dict[uuid.UUID, str]) -> None:
        self.zone = ZoneInfo(time_zone)
        self.prefix_book = prefix_book
        self.names = names
        self.days: dict[date, str] = {}
        self.accounts: dict[str, str] = {}
        self.third_parties: dict[uuid.UUID, str] = {}
        self.book_codes: dict[uuid.UUID, str] = {}
        # The columns of the last line's entry (its lines may straddle two batches).
        self.before_account = self.after_third_party = self.after_amounts = ""

    def day(self, value: date) -> str:
        text = self.days.get(value)
        if text is None:
            text = self.days[value] = fec_date(value)
        return text

    def book_code(self, book_id: uuid.UUID) -> str:
        code = self.book_codes[book_id] = short_code(book_id)
        return code

    def account(self, account: str) -> str:
        """``CompteNum`` and ``CompteLib``, and the tab after them."""
        columns = self.accounts.get(account)
        if columns is None:
            label = account_label(account)
            columns = self.accounts[account] = f"{account}{SEPARATOR}{label}{SEPARATOR}"
        return columns

    def third_party(self, counterpart_id: uuid.UUID) -> str:
        """``CompAuxNum`` and ``CompAuxLib``."""
        columns = self.third_parties.get(counterpart_id)
        if columns is None:
            code = short_code(counterpart_id)
            name = free_text(self.names.get(counterpart_id) or f"Membre {code}")
            columns = self.third_parties[counterpart_id] = f"{code}{SEPARATOR}{name}"
        return columns

    def __call__(self, rows: Sequence[Any]) -> str:
        tab = SEPARATOR
        no_third_party = tab  # CompAuxNum and CompAuxLib empty
        in_euros = tab + END_OF_LINE  # Montantdevise and Idevise empty
        before_account, after_third_party = self.before_account, self.after_third_party
        after_amounts = self.after_amounts
        days, accounts, third_parties = self.days, self.accounts, self.third_parties
        codes = self.book_codes
        zone, prefix_book = self.zone, self.prefix_book
        lines: list[str] = []
        add = lines.append
        for (
            book_id,
            journal,
            number,
            entry_date,
            label,
            source,
            posted_at,
            account,
            amounts,
            currency,
            counterpart_id,
        ) in rows:
            if journal is not None:  # the entry's first line
                day = days.get(entry_date) or self.day(entry_date)
                number_text = f"{journal}-{number}"
                if prefix_book:
                    book_code = codes.get(book_id) or self.book_code(book_id)
                    number_text = f"{book_code}-{number_text}"
                journal_label = JOURNALS.get(journal, journal)
                # JournalCode … EcritureDate; PieceRef … EcritureLib; EcritureLet … ValidDate.
                before_account = f"{journal}{tab}{journal_label}{tab}{number_text}{tab}{day}{tab}"
                after_third_party = (
                    f"{tab}{piece_ref(source)}{tab}{day}{tab}{free_text(label)}{tab}"
                )
                valid_on = posted_at.astimezone(zone).date()
                valid_on_text = days.get(valid_on) or self.day(valid_on)
                after_amounts = f"{tab}{tab}{tab}{valid_on_text}{tab}"
            if counterpart_id is None:
                third_party = no_third_party
            else:
                third_party = third_parties.get(counterpart_id) or self.third_party(counterpart_id)
            if currency == BOOK_CURRENCY:
                other_currency = in_euros
            else:
                debit, credit = amounts.split(tab)
                amount = credit if debit == ZERO_AMOUNT else debit
                other_currency = f"{amount}{tab}{currency}{END_OF_LINE}"
            add(
                f"{before_account}{accounts.get(account) or self.account(account)}{third_party}"
                f"{after_third_party}{amounts}{after_amounts}{other_currency}"
            )
        self.before_account, self.after_third_party = before_account, after_third_party
        self.after_amounts = after_amounts
        return "".join(lines)


async def _chunks(
    connection: AsyncConnection, statement: Select[Any], format_lines: LineFormatter
) -> AsyncGenerator[bytes, None]:
    """The lines of ``statement``, :data:`YIELD_PER` at a time, from a cursor declared in SQL
    in the connection's transaction (begun already), formatted.

    PostgreSQL plans a declared cursor for its first rows (``cursor_tuple_fraction``): the
    lines come in order from an index, joined one by one, from the first chunk on. A statement
    fetched in parts through the protocol would be planned for all of its rows: the year
    joined and sorted before the first line. The statement's columns are always the same:
    the ``FETCH``, prepared once per connection, keeps its row type from one file to the
    next.

    Each batch is formatted while PostgreSQL reads the next one, which is in hand before the
    chunk is handed over: when a client goes away (the answer is cancelled, or left where it
    stands), no statement is under way and the connection goes back to the pool idle."""
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    parameters = [compiled.params[name] for name in compiled.positiontup or ()]
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.execute(f"DECLARE {CURSOR} NO SCROLL CURSOR FOR {compiled.string}", *parameters)
    fetch = f"FETCH {YIELD_PER} FROM {CURSOR}"
    rows = await driver.fetch(fetch)
    following: asyncio.Future[list[Any]] | None = None
    try:
        while rows:
            following = asyncio.ensure_future(driver.fetch(fetch))
            await asyncio.sleep(0)  # the FETCH goes out
            chunk = format_lines(rows).encode()
            rows = await asyncio.shield(following)
            yield chunk
    finally:
        if following is not None and not following.done():
            # Cancelled while PostgreSQL reads: wait for that batch (shielded from Starlette's
            # cancel scope too), so that the session rolls back on an idle connection.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await following


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
    a cursor (one statement: one snapshot, even for the whole pole; the members' names are
    read in the same snapshot)."""
    yield HEADER.encode()
    statement = fec_statement(pole_id=pole_id, year=year, journals=journals, book_id=book_id)
    async with session_factory() as session:
        connection = await session.connection(
            execution_options={"isolation_level": "REPEATABLE READ"}
        )
        # A slow client may leave this read-only transaction idle between chunks for long:
        # it holds no lock that would stall anyone, so it is not ended.
        await connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        names = {
            member_id: legal_name
            for member_id, legal_name in await connection.execute(
                select(member.c.id, member.c.legal_name).where(member.c.pole_id == pole_id)
            )
        }
        format_lines = LineFormatter(time_zone=time_zone, prefix_book=book_id is None, names=names)
        # Closed before the session, even when the answer stops early.
        async with contextlib.aclosing(_chunks(connection, statement, format_lines)) as chunks:
            async for chunk in chunks:
                yield chunk


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
        max_length=100,
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
