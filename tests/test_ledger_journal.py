"""The journal: exchanges valued from the exchange's events, double entry guaranteed by the
database, gap-free numbers, a hash chain that shows any alteration, one posting per source."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger.journal import Journal, Line, Posting, post, verify_chain
from ledger.models import entry, entry_line
from ledger.valuation import Context, Reference, value_completed, value_fee
from ptce.testing.exchange import at, next_monday, parties
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books
from shared.contracts.catalog import ExchangeRules
from shared.contracts.exchange import FrozenTerms, RequestCompleted, RequestNoShow

PROVIDER, REQUESTER, EMPLOYER, POLE = (uuid.uuid4() for _ in range(4))
PARIS_CONTEXT = Context(time_zone="Europe/Paris", rules=ExchangeRules())


def _terms(**overrides: Any) -> FrozenTerms:
    values: dict[str, Any] = {
        "unit": "day",
        "quantity": Decimal(2),
        "internal_price": Decimal("80.00"),
        "reference_value": Decimal("200.00"),
        "valuation_basis": "market_price",
        "currency": "EUR",
        "offer_version": 1,
    }
    return FrozenTerms(**{**values, **overrides})


def _completed(terms: FrozenTerms, *, kind: str = "premises", used: str = "2") -> RequestCompleted:
    end = datetime(2026, 11, 20, 17, tzinfo=UTC)
    return RequestCompleted(
        request_id=uuid.uuid4(),
        pole_id=POLE,
        offer_id=uuid.uuid4(),
        offer_kind=kind,
        provider_id=PROVIDER,
        requester_id=REQUESTER,
        state="completed",
        start=end - timedelta(days=2),
        end=end,
        quantity=terms.quantity,
        quantity_used=Decimal(used),
        terms=terms,
        version=3,
        changed_at=end,
    )


def _sides(postings: list[Posting]) -> dict[tuple[uuid.UUID, str], dict[str, Decimal]]:
    """Per (book, journal): the balance of each account (debit positive)."""
    sides: dict[tuple[uuid.UUID, str], dict[str, Decimal]] = {}
    for posting in postings:
        accounts = sides.setdefault((posting.book_id, posting.journal), {})
        for line in posting.lines:
            accounts[line.account] = (
                accounts.get(line.account, Decimal(0)) + line.debit - line.credit
            )
    return sides


def test_the_worked_example_a_room_lent_below_its_market_value() -> None:
    # A room worth 200 € a day, lent at 80 € a day, for two days.
    postings = value_completed(_completed(_terms()), PARIS_CONTEXT)
    assert _sides(postings) == {
        (PROVIDER, "EX"): {"411": Decimal("160.00"), "7083": Decimal("-160.00")},
        (REQUESTER, "EX"): {"6132": Decimal("160.00"), "401": Decimal("-160.00")},
        (REQUESTER, "CVN"): {"8611": Decimal("240.00"), "871": Decimal("-240.00")},
    }
    in_kind = next(p for p in postings if p.journal == "CVN")
    assert {line.counterpart_id for line in in_kind.lines} == {PROVIDER}
    assert {line.valuation_method for line in in_kind.lines} == {"market_reference"}
    assert {line.quantity for line in in_kind.lines} == {Decimal(2)}


def test_the_quantity_used_is_what_is_valued() -> None:
    postings = value_completed(_completed(_terms(), used="1"), PARIS_CONTEXT)
    assert _sides(postings)[(REQUESTER, "CVN")]["8611"] == Decimal("120.00")


def test_volunteer_time_is_valued_at_the_reference_in_effect_that_day() -> None:
    terms = _terms(
        unit="hour",
        quantity=Decimal(3),
        internal_price=Decimal(0),
        reference_value=Decimal("30.00"),
        valuation_basis="volunteer_time",
    )
    reference = Reference("volunteer_hour", Decimal("12.50"), date(2026, 1, 1))
    context = Context("Europe/Paris", ExchangeRules(), volunteer_hour=reference)
    postings = value_completed(_completed(terms, kind="staff_time", used="3"), context)
    assert _sides(postings) == {
        (REQUESTER, "CVN"): {"864": Decimal("37.50"), "875": Decimal("-37.50")}
    }
    (line, _) = postings[0].lines
    assert line.valuation_method == "volunteer_time_reference"
    assert line.reference_date == date(2026, 1, 1)


def test_an_employers_group_fee_goes_to_the_employer_of_record() -> None:
    terms = _terms(
        unit="hour",
        quantity=Decimal(10),
        internal_price=Decimal("30.00"),
        reference_value=Decimal("30.00"),
        valuation_basis="cost_price",
        staff_regime="employers_group",
        management_fee_percent=Decimal(10),
        employer_member_id=EMPLOYER,
    )
    sides = _sides(value_completed(_completed(terms, kind="staff_time", used="10"), PARIS_CONTEXT))
    assert sides[(PROVIDER, "EX")] == {"411": Decimal("300.00"), "7084": Decimal("-300.00")}
    assert sides[(EMPLOYER, "EX")] == {"411": Decimal("30.00"), "706": Decimal("-30.00")}
    assert sides[(REQUESTER, "EX")] == {
        "6214": Decimal("300.00"),
        "622": Decimal("30.00"),
        "401": Decimal("-330.00"),
    }
    assert (REQUESTER, "CVN") not in sides  # priced at its reference: nothing in kind


def test_a_no_show_costs_what_the_pole_rule_says_and_nothing_by_default() -> None:
    completed = _completed(_terms())
    missed = RequestNoShow(**{**completed.model_dump(), "state": "no_show", "quantity_used": None})
    assert value_fee(missed, PARIS_CONTEXT) == []
    ruled = Context("Europe/Paris", ExchangeRules(no_show_fee_percent=50))
    assert _sides(value_fee(missed, ruled)) == {
        (PROVIDER, "EX"): {"411": Decimal("80.00"), "758": Decimal("-80.00")},
        (REQUESTER, "EX"): {"658": Decimal("80.00"), "401": Decimal("-80.00")},
    }


def test_a_fee_is_valued_by_the_rule_the_exchange_recorded_not_by_the_rule_now() -> None:
    completed = _completed(_terms())
    recorded = {**completed.model_dump(), "state": "no_show", "quantity_used": None}
    ruled_now = Context("Europe/Paris", ExchangeRules(no_show_fee_percent=50))
    at_the_time = RequestNoShow(**{**recorded, "fee_percent": 25})
    assert _sides(value_fee(at_the_time, ruled_now))[(PROVIDER, "EX")] == {
        "411": Decimal("40.00"),
        "758": Decimal("-40.00"),
    }
    # An event from before the exchange carried the rule: the ledger's copy of it.
    before = RequestNoShow(**{**recorded, "fee_percent": None})
    assert _sides(value_fee(before, ruled_now))[(PROVIDER, "EX")]["411"] == Decimal("80.00")


async def _entries(books: Books) -> list[Any]:
    async with books.runtime.session_factory() as session:
        return list((await session.execute(select(entry).order_by(entry.c.position))).all())


async def test_a_completed_booking_is_posted_once_numbered_and_chained(books: Books) -> None:
    market = books.market
    _, provider, requester = await parties(market)
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
        rows = await _entries(books)
        return rows if len(rows) == 3 else []

    rows = await eventually(posted)
    assert {(row.book_id, row.journal) for row in rows} == {
        (provider.member_id, "EX"),
        (requester.member_id, "EX"),
        (requester.member_id, "CVN"),
    }
    assert {row.number for row in rows} == {1}  # each book's journal starts at 1
    async with books.runtime.session_factory() as session:
        check = await verify_chain(session, provider.pole_id)
        totals = (
            await session.execute(
                select(entry_line.c.flow, func.sum(entry_line.c.debit)).group_by(entry_line.c.flow)
            )
        ).all()
    assert check.intact
    assert check.entries == 3
    # One day at 80 € (in both books: 2 × 80) and 200 − 80 = 120 € in kind.
    assert dict(totals) == {"monetary": Decimal("160.00"), "in_kind": Decimal("120.00")}


async def test_the_database_refuses_unbalanced_changed_or_deleted_entries(books: Books) -> None:
    pole_id, book = uuid.uuid4(), uuid.uuid4()
    posting = Posting(
        book_id=book,
        journal="OD",
        entry_date=date(2026, 11, 2),
        label="Essai",
        source="test:1",
        currency="EUR",
        lines=(
            Line(account="512", flow="monetary", resource="service", debit=Decimal(10)),
            Line(account="706", flow="monetary", resource="service", credit=Decimal(10)),
        ),
    )
    now = datetime.now(UTC)
    async with books.runtime.session_factory() as session, session.begin():
        assert await post(session, pole_id, posting, now=now) is not None
    async with books.runtime.session_factory() as session, session.begin():
        assert await post(session, pole_id, posting, now=now) is None  # one source, once
        second = await post(session, pole_id, _with(posting, source="test:2"), now=now)
    assert second is not None

    unbalanced = _with(
        posting,
        source="test:3",
        lines=(
            Line(account="512", flow="monetary", resource="service", debit=Decimal(10)),
            Line(account="706", flow="monetary", resource="service", credit=Decimal(9)),
        ),
    )
    with pytest.raises(DBAPIError, match="not balanced"):
        async with books.runtime.session_factory() as session, session.begin():
            await post(session, pole_id, unbalanced, now=now)
    single = _with(posting, source="test:4", lines=posting.lines[:1])
    with pytest.raises(DBAPIError, match="two at least"):
        async with books.runtime.session_factory() as session, session.begin():
            await post(session, pole_id, single, now=now)
    for statement in ("UPDATE entry_line SET debit = 11 WHERE debit = 10", "DELETE FROM entry"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with books.runtime.engine.begin() as conn:
                await conn.execute(text(statement))
    rows = await _entries(books)
    assert [(row.source, row.number) for row in rows] == [("test:1", 1), ("test:2", 2)]


async def test_an_entry_altered_behind_the_triggers_breaks_the_chain(books: Books) -> None:
    pole_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with books.runtime.session_factory() as session, session.begin():
        for n in range(3):
            base = value_completed(_completed(_terms()), PARIS_CONTEXT)[0]
            await post(session, pole_id, _with(base, source=f"test:{n}"), now=now)
    async with books.runtime.session_factory() as session:
        assert (await verify_chain(session, pole_id)).intact
    # Someone with the database's superuser rights changes an amount after the fact.
    async with books.runtime.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE entry_line DISABLE TRIGGER entry_line_append_only"))
        await conn.execute(
            text(
                "UPDATE entry_line SET debit = debit * 10, credit = credit * 10 WHERE entry_id = "
                "(SELECT id FROM entry WHERE position = 2 AND pole_id = :pole)"
            ),
            {"pole": pole_id},
        )
        await conn.execute(text("ALTER TABLE entry_line ENABLE TRIGGER entry_line_append_only"))
    async with books.runtime.session_factory() as session:
        check = await verify_chain(session, pole_id)
    assert check.broken_at == 2


async def test_entries_cut_off_the_end_of_the_chain_are_noticed(books: Books) -> None:
    pole_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with books.runtime.session_factory() as session, session.begin():
        for n in range(3):
            base = value_completed(_completed(_terms()), PARIS_CONTEXT)[0]
            await post(session, pole_id, _with(base, source=f"test:{n}"), now=now)
    async with books.runtime.engine.begin() as conn:
        for table in ("entry", "entry_line"):
            await conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        last = "(SELECT id FROM entry WHERE position = 3 AND pole_id = :pole)"
        await conn.execute(
            text(f"DELETE FROM entry_line WHERE entry_id = {last}"), {"pole": pole_id}
        )
        await conn.execute(text(f"DELETE FROM entry WHERE id = {last}"), {"pole": pole_id})
        for table in ("entry", "entry_line"):
            await conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))
    async with books.runtime.session_factory() as session:
        check = await verify_chain(session, pole_id)
    assert (check.entries, check.broken_at) == (2, 3)


def _with(posting: Posting, **changes: Any) -> Posting:
    return Posting(**{**posting.__dict__, **changes})


async def test_a_corrected_exchange_is_reversed_and_posted_again(books: Books) -> None:
    market = books.market
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    made = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    request_id = made.json()["id"]
    await market.shift_period(request_id, start_in=timedelta(hours=-10), length=timedelta(hours=9))
    await market.on_exchange(provider).post(f"/requests/{request_id}/complete")
    corrected = await market.on_exchange(provider).post(
        f"/requests/{request_id}/correct",
        json={"quantity_used": "0.5", "reason": "La salle n'a servi que le matin"},
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["quantity_used"] == "0.50"
    again = await market.on_exchange(provider).post(
        f"/requests/{request_id}/correct", json={"quantity_used": "0.5", "reason": "x"}
    )
    assert again.status_code == 422

    async def reposted() -> list[Any]:
        rows = await _entries(books)
        return rows if len(rows) == 9 else []  # 3 posted, 3 reversed, 3 posted again

    rows = await eventually(reposted)
    assert sum(1 for row in rows if row.reverses_id is not None) == 3
    async with books.runtime.session_factory() as session:
        totals = dict(
            (
                await session.execute(
                    select(entry_line.c.flow, func.sum(entry_line.c.debit - entry_line.c.credit))
                    .where(entry_line.c.account.in_(["411", "8611"]))
                    .group_by(entry_line.c.flow)
                )
            ).all()
        )
    async with books.runtime.session_factory() as session:
        assert (await verify_chain(session, provider.pole_id)).intact
    # Half a day: 40 € in money and 60 € in kind, each counted once.
    assert totals == {"monetary": Decimal("40.00"), "in_kind": Decimal("60.00")}


async def test_a_batch_of_postings_is_chained_in_order_and_numbered_once_per_source(
    books: Books,
) -> None:
    # What the ledger's consumer writes for a batch of events: several poles, books and
    # journals in one transaction, a source already posted and a source twice in the batch.
    poles = [uuid.uuid4(), uuid.uuid4()]
    now = datetime.now(UTC)

    def posting(n: int) -> Posting:
        base = value_completed(_completed(_terms()), PARIS_CONTEXT)[n % 3]
        return _with(base, source=f"batch:{n}")

    async with books.runtime.session_factory() as session, session.begin():
        assert await post(session, poles[0], posting(0), now=now) is not None
    async with books.runtime.session_factory() as session, session.begin():
        journal = Journal(session, now=now)
        for n in (0, 1, 2, 3, 1, 4, 5):  # 0 posted already, 1 twice
            journal.add(poles[n % 2], posting(n))
        ids = await journal.flush()
    assert [entry_id is not None for entry_id in ids] == [
        False, True, True, True, False, True, True
    ]  # fmt: skip
    async with books.runtime.session_factory() as session:
        rows = (
            await session.execute(
                select(entry.c.pole_id, entry.c.position, entry.c.source, entry.c.book_id,
                       entry.c.journal, entry.c.number)
                .where(entry.c.pole_id.in_(poles))
                .order_by(entry.c.pole_id, entry.c.position)
            )
        ).all()  # fmt: skip
    checks = []
    for pole_id in poles:
        async with books.runtime.session_factory() as session:
            checks.append(await verify_chain(session, pole_id))
    by_pole = {pole_id: [row.source for row in rows if row.pole_id == pole_id] for pole_id in poles}
    assert by_pole == {
        poles[0]: ["batch:0", "batch:2", "batch:4"],
        poles[1]: ["batch:1", "batch:3", "batch:5"],
    }
    assert all(check.intact for check in checks)
    assert [check.entries for check in checks] == [3, 3]
    numbers: dict[tuple[uuid.UUID, str], list[int]] = {}
    for row in rows:
        numbers.setdefault((row.book_id, row.journal), []).append(row.number)
    # Each book's journal numbered 1, 2, … without a gap.
    assert all(sorted(found) == list(range(1, len(found) + 1)) for found in numbers.values())
    assert sum(len(found) for found in numbers.values()) == 6
