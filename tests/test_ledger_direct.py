"""Postings by the coordinator: grants, volunteering, settlements, dues from the pole's rule."""

from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from ledger.direct import Bracket, DuesRule, dues_for
from ledger.models import entry, entry_line, valuation_reference
from ptce.testing.api import Caller, problem
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books


@pytest.fixture
def books(module_books: Books) -> Books:
    """One set of books for the module: each test keeps to poles of its own, which see nothing
    else (journals are numbered per book, idempotency keys per client)."""
    return module_books


def test_dues_fall_in_the_bracket_of_the_members_turnover() -> None:
    rule = DuesRule(
        basis="turnover",
        brackets=[
            Bracket(up_to=Decimal(100_000), amount=Decimal(50)),
            Bracket(up_to=Decimal(1_000_000), amount=Decimal(200)),
            Bracket(amount=Decimal(500)),
        ],
    )
    assert dues_for(rule, Decimal(99_999)) == 50
    assert dues_for(rule, Decimal(100_000)) == 200  # a bound is excluded from its bracket
    assert dues_for(rule, Decimal(5_000_000)) == 500
    assert dues_for(rule, None) == 50  # unknown turnover: the first bracket


@pytest.mark.parametrize(
    "brackets",
    [
        [{"up_to": 10, "amount": 1}],  # the last bracket must be unbounded
        [{"amount": 1}, {"amount": 2}],  # only the last is unbounded
        [{"up_to": 10, "amount": 1}, {"up_to": 5, "amount": 2}, {"amount": 3}],  # increasing
    ],
)
def test_a_dues_rule_is_well_formed(brackets: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError):
        DuesRule.model_validate({"basis": "turnover", "brackets": brackets})


async def _lines(books: Books, book_id: uuid.UUID) -> list[tuple[str, str, Decimal, Decimal]]:
    async with books.runtime.session_factory() as session:
        rows = await session.execute(
            select(entry.c.journal, entry_line.c.account, entry_line.c.debit, entry_line.c.credit)
            .join(entry_line, entry_line.c.entry_id == entry.c.id)
            .where(entry.c.book_id == book_id)
            .order_by(entry.c.position, entry_line.c.line_no)
        )
        return [tuple(row) for row in rows]


async def _pole(books: Books) -> tuple[Caller, Caller, Caller]:
    coordinator = await books.market.catalog.new_pole()
    small = await books.market.catalog.new_member(coordinator, annual_turnover="80000.00")
    large = await books.market.catalog.new_member(coordinator, annual_turnover="2500000.00")
    await books.knows(coordinator, small, large)
    return books.on_ledger(coordinator), books.on_ledger(small), books.on_ledger(large)


async def test_a_grant_is_posted_once_per_idempotency_key(books: Books) -> None:
    coordinator, member, _ = await _pole(books)
    grant = {
        "kind": "grant",
        "on": "2026-03-01",
        "label": "Subvention régionale d'animation",
        "amount": "15000.00",
        "origin": "public",
    }
    headers = {"Idempotency-Key": "subvention-region-2026"}
    first = await coordinator.post("/postings", json=grant, headers=headers)
    assert first.status_code == 201, first.text
    again = await coordinator.post("/postings", json=grant, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    (posted,) = first.json()["entries"]
    assert (posted["journal"], posted["number"]) == ("OD", 1)
    assert await _lines(books, coordinator.pole_id) == [
        ("OD", "512", Decimal("15000.00"), Decimal("0.00")),
        ("OD", "74", Decimal("0.00"), Decimal("15000.00")),
    ]
    assert problem(await member.post("/postings", json=grant), 403)


async def test_volunteering_hours_are_valued_at_the_reference_of_their_day(books: Books) -> None:
    coordinator, _, _ = await _pole(books)
    await _record_reference(books, coordinator)

    volunteering = {
        "kind": "volunteering",
        "on": "2026-05-14",
        "label": "Animation du forum des membres",
        "quantity": "10",
        "origin": "individuals",
    }
    posted = await coordinator.post("/postings", json=volunteering)
    assert posted.status_code == 201, posted.text
    assert posted.json()["entries"][0]["journal"] == "CVN"
    assert await _lines(books, coordinator.pole_id) == [
        ("CVN", "864", Decimal("175.00"), Decimal("0.00")),
        ("CVN", "875", Decimal("0.00"), Decimal("175.00")),
    ]
    before = await coordinator.post("/postings", json={**volunteering, "on": "2025-12-31"})
    assert "body.amount" in {p["name"] for p in problem(before, 422)["invalid-params"]}


async def _record_reference(books: Books, coordinator: Caller) -> None:
    on_catalog = dataclasses.replace(coordinator, http=books.market.catalog.http)
    recorded = await on_catalog.post(
        "/pole/references",
        json={
            "code": "volunteer_hour",
            "label": "Heure de bénévolat (SMIC chargé)",
            "amount": "17.50",
            "unit": "hour",
            "valid_from": "2026-01-01",
        },
    )
    assert recorded.status_code == 201, recorded.text

    async def copied() -> bool:
        async with books.runtime.session_factory() as session:
            found = await session.scalar(
                select(valuation_reference.c.amount).where(
                    valuation_reference.c.pole_id == coordinator.pole_id
                )
            )
        return found == Decimal("17.50")

    await eventually(copied)


async def test_a_settlement_moves_money_in_both_books(books: Books) -> None:
    coordinator, payer, payee = await _pole(books)
    paid = await coordinator.post(
        "/postings",
        json={
            "kind": "settlement",
            "on": "2026-06-30",
            "label": "Règlement du premier semestre",
            "amount": "420.00",
            "member_id": str(payer.member_id),
            "to_member_id": str(payee.member_id),
        },
    )
    assert paid.status_code == 201, paid.text
    assert await _lines(books, payer.member_id) == [
        ("OD", "401", Decimal("420.00"), Decimal("0.00")),
        ("OD", "512", Decimal("0.00"), Decimal("420.00")),
    ]
    assert await _lines(books, payee.member_id) == [
        ("OD", "512", Decimal("420.00"), Decimal("0.00")),
        ("OD", "411", Decimal("0.00"), Decimal("420.00")),
    ]


async def test_bad_postings_are_refused_with_the_field_named(books: Books) -> None:
    coordinator, member, _ = await _pole(books)
    other_pole = books.on_ledger(await books.market.catalog.new_pole("Autre pôle"))
    base = {"kind": "grant", "on": "2026-03-01", "label": "x", "amount": "10", "origin": "public"}
    for bad in (
        {"amount": "0"},
        {"origin": None},
        {"kind": "settlement", "member_id": str(member.member_id)},
        {"kind": "dues"},
        {"pole_id": str(uuid.uuid4())},
    ):
        assert problem(await coordinator.post("/postings", json={**base, **bad}), 422), bad
    stranger = await other_pole.post("/postings", json={**base, "member_id": str(member.member_id)})
    assert problem(stranger, 404)


async def test_dues_are_computed_from_the_rule_and_posted_once(books: Books) -> None:
    coordinator, small, large = await _pole(books)
    rule = {
        "basis": "turnover",
        "brackets": [{"up_to": "100000", "amount": "50"}, {"amount": "300"}],
    }
    assert (await coordinator.put("/dues-rules/2026", json=rule)).status_code == 200
    assert (await small.get("/dues-rules/2026")).json()["basis"] == "turnover"
    assert problem(await small.put("/dues-rules/2026", json=rule), 403)

    posted = await coordinator.post("/dues/2026")
    assert posted.status_code == 200, posted.text
    amounts = {row["member_id"]: Decimal(row["amount"]) for row in posted.json()}
    assert amounts[str(small.member_id)] == 50
    assert amounts[str(large.member_id)] == 300
    assert await _lines(books, small.member_id) == [
        ("OD", "6281", Decimal("50.00"), Decimal("0.00")),
        ("OD", "401", Decimal("0.00"), Decimal("50.00")),
    ]
    again = await coordinator.post("/dues/2026")
    assert not any(row["newly_posted"] for row in again.json())
    assert problem(await coordinator.put("/dues-rules/2026", json=rule), 409)
    assert problem(await coordinator.post("/dues/2025"), 404)


async def test_a_book_is_read_by_its_member_and_by_the_pole_only(books: Books) -> None:
    coordinator, member, other = await _pole(books)
    auditor = books.on_ledger(
        await books.market.catalog.new_client(
            dataclasses.replace(coordinator, http=books.market.catalog.http),
            other.member_id,
            role="auditor",
        )
    )
    stranger = books.on_ledger(await books.market.catalog.new_pole("Autre pôle"))
    paid = await coordinator.post(
        "/postings",
        json={
            "kind": "settlement",
            "on": "2026-06-30",
            "label": "Règlement",
            "amount": "42.00",
            "member_id": str(member.member_id),
            "to_member_id": str(other.member_id),
        },
    )
    assert paid.status_code == 201
    url = f"/books/{member.member_id}/entries"
    own = await member.get(url)
    assert own.status_code == 200, own.text
    ((posted,),) = [own.json()["items"]]
    assert [line["account"] for line in posted["lines"]] == ["401", "512"]
    for reader in (coordinator, auditor):
        assert (await reader.get(url)).json()["items"] == own.json()["items"]
    for outsider in (other, stranger):
        assert problem(await outsider.get(url), 404)
    assert problem(await member.get(f"/books/{member.pole_id}/entries"), 404)
    assert (await coordinator.get("/pole/chain")).json() == {
        "entries": 2,
        "intact": True,
        "broken_at": None,
    }
    assert problem(await member.get("/pole/chain"), 403)
