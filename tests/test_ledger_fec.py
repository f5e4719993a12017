"""The FEC export (fichier des écritures comptables): one book or the whole pole for a fiscal
year, 18 columns, gap-free numbers per journal, streamed; who may read it. And
`ptce ledger verify`, which recomputes every pole's hash chain."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select, text
from typer.testing import CliRunner

from ledger.fec import fec_chunks
from ledger.journal import Line, Posting, post
from ledger.models import entry, member
from ptce.cli import app as cli
from ptce.testing.api import Caller
from ptce.testing.exchange import at, next_monday, parties
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books

COLUMNS = [
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
]
AMOUNT = re.compile(r"^\d+,\d{2}$")
DAY = re.compile(r"^\d{8}$")
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \[")


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    """The file's lines as dicts, after checking its shape: header, 18 columns, CRLF."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    lines = response.content.decode("utf-8").split("\r\n")
    assert lines[-1] == ""  # every line ends with CRLF, the last one too
    header, *body = lines[:-1]
    assert header.split("\t") == COLUMNS
    rows = []
    for line in body:
        fields = line.split("\t")
        assert len(fields) == 18, line
        rows.append(dict(zip(COLUMNS, fields, strict=True)))
    for row in rows:
        assert DAY.match(row["EcritureDate"]), row
        assert row["PieceDate"] == row["EcritureDate"]
        assert DAY.match(row["ValidDate"]), row
        assert AMOUNT.match(row["Debit"]), row
        assert AMOUNT.match(row["Credit"]), row
        assert (row["EcritureLet"], row["DateLet"]) == ("", "")
        assert all(row[name] for name in ("JournalLib", "CompteLib", "EcritureLib", "PieceRef"))
    return rows


def _amount(value: str) -> Decimal:
    return Decimal(value.replace(",", "."))


def _balanced(rows: list[dict[str, str]]) -> Decimal:
    debit = sum((_amount(row["Debit"]) for row in rows), Decimal(0))
    credit = sum((_amount(row["Credit"]) for row in rows), Decimal(0))
    assert debit == credit
    return debit


def _numbers(rows: list[dict[str, str]], *, prefix: str = "") -> dict[str, list[int]]:
    """Per journal, the entry numbers in the order of the file (one per entry)."""
    numbers: dict[str, list[int]] = {}
    for row in rows:
        num = row["EcritureNum"]
        assert num.startswith(prefix), num
        journal, number = num.removeprefix(prefix).split("-")
        assert journal == row["JournalCode"]
        numbers.setdefault(journal, []).append(int(number))
    return {journal: list(dict.fromkeys(found)) for journal, found in numbers.items()}


def _gap_free_by_journal(rows: list[dict[str, str]], *, prefix: str = "") -> dict[str, int]:
    journals = [row["JournalCode"] for row in rows]
    assert journals == sorted(journals)  # by journal (each one block), then number
    numbers = _numbers(rows, prefix=prefix)
    for found in numbers.values():
        assert found == list(range(1, len(found) + 1))
    return {journal: len(found) for journal, found in numbers.items()}


async def _copied(books: Books, *callers: Caller) -> dict[uuid.UUID, Any]:
    """Wait for the ledger's copies of these members; their rows."""

    async def probe() -> dict[uuid.UUID, Any]:
        ids = [caller.member_id for caller in callers]
        async with books.runtime.session_factory() as session:
            rows = (await session.execute(select(member).where(member.c.id.in_(ids)))).all()
        return {row.id: row for row in rows} if len(rows) == len(ids) else {}

    return await eventually(probe)


async def _completed_booking(books: Books) -> tuple[Caller, Caller, Caller, int]:
    """A pole, a room booked and completed, its three entries posted; and their year."""
    market = books.market
    coordinator, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    made = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    request_id = made.json()["id"]
    await market.shift_period(request_id, start_in=timedelta(hours=-10), length=timedelta(hours=9))
    done = await market.on_exchange(provider).post(f"/requests/{request_id}/complete")
    assert done.json()["state"] == "completed", done.text

    async def posted() -> list[Any]:
        async with books.runtime.session_factory() as session:
            rows = list((await session.execute(select(entry))).all())
        return rows if len(rows) == 3 else []

    rows = await eventually(posted)
    (year,) = {row.fiscal_year for row in rows}
    return coordinator, provider, requester, year


async def test_a_members_fec_after_a_completed_booking(books: Books) -> None:
    _, provider, requester, year = await _completed_booking(books)
    copies = await _copied(books, provider, requester)
    on_ledger = books.on_ledger(requester)

    response = await on_ledger.get(f"/books/{requester.member_id}/fec", params={"year": year})
    rows = _rows(response)
    siren = copies[requester.member_id].siret[:9]
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{siren}FEC{year}1231.txt"'
    )
    assert "content-length" not in response.headers  # streamed, not built then sent
    # The requester's book: a day at 80 € in money (EX), 200 − 80 = 120 € in kind (CVN).
    assert [(r["EcritureNum"], r["CompteNum"], r["Debit"], r["Credit"]) for r in rows] == [
        ("CVN-1", "8611", "120,00", "0,00"),
        ("CVN-1", "871", "0,00", "120,00"),
        ("EX-1", "6132", "80,00", "0,00"),
        ("EX-1", "401", "0,00", "80,00"),
    ]
    assert _balanced(rows) == Decimal("200.00")
    assert _gap_free_by_journal(rows) == {"CVN": 1, "EX": 1}
    by_account = {row["CompteNum"]: row for row in rows}
    assert by_account["401"]["CompteLib"] == "Fournisseurs"
    assert by_account["401"]["JournalLib"] == "Échanges entre membres"
    assert by_account["871"]["JournalLib"] == "Contributions volontaires en nature"
    # The supplier's auxiliary account: the provider, by its short code and its legal name.
    assert by_account["401"]["CompAuxNum"] == provider.member_id.hex[:8].upper()
    assert by_account["401"]["CompAuxLib"] == copies[provider.member_id].legal_name
    for account in ("6132", "8611", "871"):
        assert (by_account[account]["CompAuxNum"], by_account[account]["CompAuxLib"]) == ("", "")
    assert {row["EcritureDate"][:4] for row in rows} == {str(year)}
    assert {(row["Montantdevise"], row["Idevise"]) for row in rows} == {("", "")}
    assert all(row["PieceRef"].startswith("exchange:") for row in rows)
    assert all(len(row["PieceRef"]) <= 40 for row in rows)

    # The accountant leaves out the contributions in kind.
    only_money = _rows(
        await on_ledger.get(
            f"/books/{requester.member_id}/fec", params={"year": year, "journals": "EX"}
        )
    )
    assert {row["JournalCode"] for row in only_money} == {"EX"}
    assert len(only_money) == 2
    both = await on_ledger.get(
        f"/books/{requester.member_id}/fec", params={"year": year, "journals": "ex,CVN"}
    )
    assert len(_rows(both)) == 4
    unknown = await on_ledger.get(
        f"/books/{requester.member_id}/fec", params={"year": year, "journals": "EX,XX"}
    )
    assert unknown.status_code == 422
    # Another year: the header alone.
    assert _rows(await on_ledger.get(f"/books/{requester.member_id}/fec?year={year - 1}")) == []

    # The provider's book: the client's auxiliary account is the requester.
    provider_rows = _rows(
        await books.on_ledger(provider).get(
            f"/books/{provider.member_id}/fec", params={"year": year}
        )
    )
    client = next(row for row in provider_rows if row["CompteNum"] == "411")
    assert client["CompAuxNum"] == requester.member_id.hex[:8].upper()
    assert client["CompAuxLib"] == copies[requester.member_id].legal_name
    assert _balanced(provider_rows) == Decimal("80.00")


async def test_who_may_download_a_fec(books: Books) -> None:
    coordinator, provider, requester, year = await _completed_booking(books)
    market = books.market
    auditor = await market.catalog.new_client(coordinator, provider.member_id, role="auditor")
    stranger = await market.catalog.new_pole("Pôle voisin")
    stranger_member = await market.catalog.new_member(stranger)
    await _copied(books, provider, requester, stranger_member)
    book = f"/books/{requester.member_id}/fec?year={year}"

    async def status(caller: Caller, url: str) -> int:
        return (await books.on_ledger(caller).get(url)).status_code

    assert await status(requester, book) == 200
    assert await status(coordinator, book) == 200
    assert await status(auditor, book) == 200
    assert await status(provider, book) == 404  # another member of the same pole
    assert await status(stranger, book) == 404  # another pole's coordinator
    assert await status(stranger_member, book) == 404
    assert (await books.http.get(book)).status_code == 401
    assert await status(requester, f"/books/{uuid.uuid4()}/fec?year={year}") == 404

    # The pole's own book (book id = pole id): coordinator and auditors only.
    own = f"/books/{coordinator.pole_id}/fec?year={year}"
    response = await books.on_ledger(coordinator).get(own)
    assert _rows(response) == []  # nothing posted to the pole's own book in this test
    assert f'filename="000000000FEC{year}1231.txt"' in response.headers["content-disposition"]
    assert await status(auditor, own) == 200
    assert await status(requester, own) == 404
    assert await status(stranger, own) == 404

    # The whole pole: coordinator and auditors; a member is refused (403), another pole sees
    # only its own (empty) books.
    whole = f"/fec?year={year}"
    assert await status(requester, whole) == 403
    assert await status(auditor, whole) == 200
    assert _rows(await books.on_ledger(stranger).get(whole)) == []
    assert (await books.http.get(whole)).status_code == 401


async def test_the_whole_poles_fec_goes_book_by_book(books: Books) -> None:
    coordinator, provider, requester, year = await _completed_booking(books)
    response = await books.on_ledger(coordinator).get("/fec", params={"year": year})
    rows = _rows(response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="000000000FEC{year}1231.txt"'
    )
    codes = {
        provider.member_id.hex[:8].upper(): provider.member_id,
        requester.member_id.hex[:8].upper(): requester.member_id,
    }
    in_order = [row["EcritureNum"].split("-")[0] for row in rows]
    assert in_order == sorted(in_order)  # one book after the other, in the codes' order
    by_book: dict[str, list[dict[str, str]]] = {}
    for code, row in zip(in_order, rows, strict=True):
        by_book.setdefault(code, []).append(row)
    assert set(by_book) == set(codes)
    for code, book_rows in by_book.items():
        _gap_free_by_journal(book_rows, prefix=f"{code}-")
        _balanced(book_rows)
    assert [r["EcritureNum"] for r in by_book[requester.member_id.hex[:8].upper()]] == [
        f"{requester.member_id.hex[:8].upper()}-{n}" for n in ("CVN-1", "CVN-1", "EX-1", "EX-1")
    ]
    only_money = _rows(
        await books.on_ledger(coordinator).get("/fec", params={"year": year, "journals": "EX"})
    )
    assert len(only_money) == 4  # two EX entries of two lines, one per member


def _posting(n: int, *, book: uuid.UUID, counterpart: uuid.UUID, day: date) -> Posting:
    journal = ("EX", "CVN", "OD")[n % 3]
    amount = Decimal(1000 + n) + Decimal("0.05")  # over a thousand: no thousands separator
    first, second = {
        "EX": ("411", "706"),
        "CVN": ("8611", "871"),
        "OD": ("512", "758"),
    }[journal]
    return Posting(
        book_id=book,
        journal=journal,
        entry_date=day,
        label=f"Écriture\tnuméro {n}\n",  # a tab and a line end must not break the file
        source=f"test:{uuid.uuid4()}:{n}",
        currency="EUR",
        lines=(
            Line(
                account=first,
                flow="monetary",
                resource="service",
                debit=amount,
                counterpart_id=counterpart,
            ),
            Line(
                account=second,
                flow="monetary",
                resource="service",
                credit=amount,
                counterpart_id=counterpart,
            ),
        ),
    )


async def test_a_large_book_is_numbered_ordered_and_streamed_in_chunks(books: Books) -> None:
    market = books.market
    coordinator, provider, requester = await parties(market)
    await _copied(books, provider, requester)
    count, year = 3000, 2026
    now = datetime.now(UTC)
    async with books.runtime.session_factory() as session, session.begin():
        for n in range(count):
            day = date(year, 1, 1) + timedelta(days=n * 364 // count)
            posting = _posting(n, book=provider.member_id, counterpart=requester.member_id, day=day)
            await post(session, provider.pole_id, posting, now=now)
        # The year before, and another currency: kept apart from, or shown in, the file.
        parties_ = {"book": provider.member_id, "counterpart": requester.member_id}
        earlier = _posting(0, **parties_, day=date(year - 1, 12, 31))
        await post(session, provider.pole_id, earlier, now=now)
        od = _posting(2, **parties_, day=date(year, 12, 31))
        francs = Posting(**{**od.__dict__, "currency": "CHF", "source": "test:chf"})
        await post(session, provider.pole_id, francs, now=now)

    url = f"/books/{provider.member_id}/fec"
    response = await books.on_ledger(provider).get(url, params={"year": year})
    assert "content-length" not in response.headers
    rows = _rows(response)
    assert len(rows) == 2 * (count + 1)
    assert _gap_free_by_journal(rows) == {"CVN": 1000, "EX": 1000, "OD": 1001}
    assert {row["EcritureDate"][:4] for row in rows} == {str(year)}
    assert _balanced(rows) == sum(
        (Decimal(1000 + n) + Decimal("0.05") for n in range(count)), Decimal(0)
    ) + Decimal(1002) + Decimal("0.05")
    assert rows[0]["Debit"] == "1001,05"  # CVN-1 is entry n = 1
    assert rows[0]["EcritureLib"] == "Écriture numéro 1"
    # Within a journal, numbers follow the posting order, and so do the dates here.
    ex_dates = [row["EcritureDate"] for row in rows if row["JournalCode"] == "EX"]
    assert ex_dates == sorted(ex_dates)
    # 411 lines carry the auxiliary account; 706 lines do not.
    assert {row["CompAuxNum"] for row in rows if row["CompteNum"] == "411"} == {
        requester.member_id.hex[:8].upper()
    }
    assert {row["CompAuxNum"] for row in rows if row["CompteNum"] == "706"} == {""}
    francs_rows = [row for row in rows if row["Idevise"]]
    assert [
        (row["EcritureNum"], row["Idevise"], row["Montantdevise"], row["Debit"], row["Credit"])
        for row in francs_rows
    ] == [
        ("OD-1001", "CHF", "1002,05", "1002,05", "0,00"),
        ("OD-1001", "CHF", "1002,05", "0,00", "1002,05"),
    ]

    # The same file, as the route's generator makes it: many chunks, never the whole at once.
    chunks = [
        chunk
        async for chunk in fec_chunks(
            books.runtime.session_factory,
            pole_id=provider.pole_id,
            year=year,
            journals=("CVN", "EX", "OD"),
            book_id=provider.member_id,
            time_zone="Europe/Paris",
        )
    ]
    assert len(chunks) > 5
    assert max(len(chunk) for chunk in chunks) < len(response.content) / 5
    assert b"".join(chunks) == response.content

    # Without CVN, as an accountant may want it: EX and OD numbers are unchanged.
    no_cvn = _rows(
        await books.on_ledger(coordinator).get(url, params={"year": year, "journals": "EX,OD"})
    )
    assert _gap_free_by_journal(no_cvn) == {"EX": 1000, "OD": 1001}


def _verify(books: Books, *args: str, command: str = "verify") -> tuple[int, str]:
    """``ptce ledger verify`` (or another ``ledger`` command) against the test's ledger
    database (in a thread: it runs its own event loop)."""
    result = CliRunner().invoke(
        cli,
        ["ledger", command, *args],
        env={"LEDGER_DATABASE_URL": books.runtime.settings.database_url},
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    # The services of the test log to the same stdout meanwhile: keep the command's lines.
    printed = [line for line in result.output.splitlines() if not LOG_LINE.match(line)]
    return result.exit_code, "".join(f"{line}\n" for line in printed)


async def test_ptce_ledger_verify_tells_an_intact_chain_from_a_broken_one(books: Books) -> None:
    empty = await asyncio.to_thread(_verify, books)
    assert empty == (0, "no journal to verify\n")
    poles = sorted(uuid.uuid4() for _ in range(2))
    book = uuid.uuid4()
    now = datetime.now(UTC)
    async with books.runtime.session_factory() as session, session.begin():
        for pole_id in poles:
            for n in range(3):
                posting = _posting(n, book=book, counterpart=book, day=date(2026, 3, 1))
                await post(session, pole_id, posting, now=now)

    agree = "running totals agree"
    code, output = await asyncio.to_thread(_verify, books)
    assert (code, output.splitlines()) == (
        0,
        [f"{pole_id}: 3 entries, intact; {agree}" for pole_id in poles],
    )

    # Someone with the database's superuser rights changes an amount after the fact: the
    # chain breaks, and the running totals no longer are the sums of the lines.
    broken = poles[1]
    async with books.runtime.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE entry_line DISABLE TRIGGER entry_line_append_only"))
        await conn.execute(
            text(
                "UPDATE entry_line SET debit = debit * 10, credit = credit * 10 WHERE entry_id = "
                "(SELECT id FROM entry WHERE position = 2 AND pole_id = :pole)"
            ),
            {"pole": broken},
        )
        await conn.execute(text("ALTER TABLE entry_line ENABLE TRIGGER entry_line_append_only"))

    differ = "running totals differ from the lines (ptce ledger rebuild-totals)"
    code, output = await asyncio.to_thread(_verify, books)
    assert code == 1
    intact, broken_line = output.splitlines()
    assert intact == f"{poles[0]}: 3 entries, intact; {agree}"
    assert broken_line.startswith(f"{broken}: 3 entries, broken at position 2; ")
    assert broken_line.endswith(differ)
    assert await asyncio.to_thread(_verify, books, "--pole", str(poles[0])) == (
        0,
        f"{poles[0]}: 3 entries, intact; {agree}\n",
    )
    code, output = await asyncio.to_thread(_verify, books, "--pole", str(broken))
    assert code == 1
    assert output.startswith(f"{broken}: 3 entries, broken at position 2; ")

    # The totals computed again from the (altered) lines agree with them; the chain stays
    # broken: the hashes tell the alteration, whatever the totals say.
    rebuilt = await asyncio.to_thread(
        _verify, books, "--pole", str(broken), command="rebuild-totals"
    )
    assert rebuilt == (0, f"{broken}: running totals rebuilt\n")
    assert await asyncio.to_thread(_verify, books, "--pole", str(broken)) == (
        1,
        f"{broken}: 3 entries, broken at position 2; {agree}\n",
    )
