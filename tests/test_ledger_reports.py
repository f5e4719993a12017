"""Reports: a member's activity attributable to the pole, the pole's activity, the annex of
contributions in kind, statements of account, and the fewest payments that settle balances."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from ledger.journal import Line, Posting, post, reversal_of
from ledger.models import entry, entry_line
from ledger.settlement import settle, zero_sum_groups
from ledger.valuation import Context, Reference, value_completed
from ptce.testing.api import Caller, problem
from ptce.testing.exchange import at, next_monday
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books
from shared.contracts.catalog import ExchangeRules
from shared.contracts.exchange import FrozenTerms, RequestCompleted

# --- The settlement algorithm, without a database ---------------------------------------------


def _applied(balances: dict[str, Decimal], plan: Any) -> dict[str, Decimal]:
    after = dict(balances)
    for payment in plan.payments:
        assert payment.amount > 0
        assert payment.amount == payment.amount.quantize(Decimal("0.01"))
        after[payment.payer] += payment.amount
        after[payment.payee] -= payment.amount
    return after


def _euros(**balances: str) -> dict[str, Decimal]:
    return {key: Decimal(value) for key, value in balances.items()}


def test_two_pairs_settle_with_two_payments_not_three() -> None:
    balances = _euros(A="10", B="-10", C="5", D="-5")
    plan = settle(balances)
    assert plan.exact
    assert {(p.payer, p.payee, p.amount) for p in plan.payments} == {
        ("B", "A", Decimal("10.00")),
        ("D", "C", Decimal("5.00")),
    }
    assert set(_applied(balances, plan).values()) == {0}


def test_a_chain_of_debts_is_one_payment() -> None:
    # A owes B 25.50 and B owes C 25.50: B is even, A pays C directly.
    balances = _euros(A="-25.50", B="0", C="25.50")
    plan = settle(balances)
    assert [(p.payer, p.payee, p.amount) for p in plan.payments] == [("A", "C", Decimal("25.50"))]
    assert plan.members == 2


def test_the_exact_search_beats_largest_debtor_pays_largest_creditor() -> None:
    # No two opposite balances; two zero-sum groups: {A, D, F} and {B, C, E}.
    balances = _euros(A="16", B="6", C="2", D="-9", E="-8", F="-7")
    exact = settle(balances)
    greedy = settle(balances, exact_limit=0)
    assert (len(exact.payments), exact.exact) == (4, True)
    assert (len(greedy.payments), greedy.exact) == (5, False)
    for plan in (exact, greedy):
        assert set(_applied(balances, plan).values()) == {0}
    groups = zero_sum_groups([1600, 600, 200, -900, -800, -700])
    assert sorted(sorted(group) for group in groups) == [[0, 3, 5], [1, 2, 4]]


def test_amounts_are_cents_and_balances_sum_to_zero() -> None:
    balances = _euros(A="0.01", B="0.02", C="-0.03")
    plan = settle(balances)
    assert sorted((p.payer, p.payee, p.amount) for p in plan.payments) == [
        ("C", "A", Decimal("0.01")),
        ("C", "B", Decimal("0.02")),
    ]
    with pytest.raises(ValueError, match="sum to zero"):
        settle(_euros(A="10", B="-9.99"))
    with pytest.raises(ValueError, match="to the cent"):
        settle(_euros(A="0.005", B="-0.005"))
    assert settle({}).payments == ()


def test_beyond_the_exact_limit_the_greedy_fallback_still_settles_everyone() -> None:
    amounts = [Decimal(n) + Decimal("0.37") * n for n in range(1, 19)]
    balances = {f"M{n:02}": amount for n, amount in enumerate(amounts)}
    balances["Z"] = -sum(amounts, Decimal(0))
    plan = settle(balances)
    assert not plan.exact
    assert len(plan.payments) <= len(balances) - 1
    assert set(_applied(balances, plan).values()) == {0}
    # Up to 16 members left, the search is exact (and quick enough for a request).
    sixteen = {f"M{n:02}": Decimal(n * 3 + 1) for n in range(15)}
    sixteen["Z"] = -sum(sixteen.values(), Decimal(0))
    assert settle(sixteen).exact


# --- A small pole, its exchanges and direct postings ------------------------------------------


@dataclasses.dataclass
class Pole:
    coordinator: Caller
    auditor: Caller
    a: Caller
    b: Caller
    c: Caller
    day: date
    """The day of the exchanges (the completed booking's)."""

    @property
    def year(self) -> dict[str, str]:
        return {"from": f"{self.day.year}-01-01", "to": f"{self.day.year + 1}-01-01"}


async def _members(books: Books) -> tuple[Caller, Caller, Caller, Caller, Caller]:
    catalog = books.market.catalog
    coordinator = await catalog.new_pole()
    a = await catalog.new_member(
        coordinator, legal_name="Atelier A", category="association", annual_turnover="80000.00"
    )
    b = await catalog.new_member(
        coordinator,
        legal_name="Bureau B",
        category="company",
        is_ess=False,
        annual_turnover="120000.00",
    )
    c = await catalog.new_member(
        coordinator, legal_name="Coopérative C", category="cooperative", annual_turnover=None
    )
    auditor = await catalog.new_client(coordinator, coordinator.member_id, role="auditor")
    await books.knows(coordinator, a, b, c)
    on = books.on_ledger
    return on(coordinator), on(auditor), on(a), on(b), on(c)


def _completed(
    pole: Pole, *, provider: Caller, requester: Caller, kind: str, terms: FrozenTerms, used: str
) -> RequestCompleted:
    end = datetime.combine(pole.day, time(12), tzinfo=UTC)
    return RequestCompleted(
        request_id=uuid.uuid4(),
        pole_id=pole.coordinator.pole_id,
        offer_id=uuid.uuid4(),
        offer_kind=kind,
        provider_id=provider.member_id,
        requester_id=requester.member_id,
        state="completed",
        start=end - timedelta(hours=2),
        end=end,
        quantity=Decimal(used),
        quantity_used=Decimal(used),
        terms=terms,
        version=3,
        changed_at=end,
    )


def _terms(**values: Any) -> FrozenTerms:
    return FrozenTerms(**{"currency": "EUR", "offer_version": 1, **values})


def _two(account_debit: str, account_credit: str, amount: str, **common: Any) -> tuple[Line, Line]:
    return (
        Line(account=account_debit, debit=Decimal(amount), **common),
        Line(account=account_credit, credit=Decimal(amount), **common),
    )


async def _post_all(books: Books, pole_id: uuid.UUID, postings: list[Posting]) -> list[uuid.UUID]:
    posted = []
    async with books.runtime.session_factory() as session, session.begin():
        for posting in postings:
            entry_id = await post(session, pole_id, posting, now=datetime.now(UTC))
            assert entry_id is not None
            posted.append(entry_id)
    return posted


async def _reverse(books: Books, pole_id: uuid.UUID, entry_ids: list[uuid.UUID], day: date) -> None:
    reversals = []
    async with books.runtime.session_factory() as session:
        for entry_id in entry_ids:
            original = (await session.execute(select(entry).where(entry.c.id == entry_id))).one()
            lines = (
                await session.execute(
                    select(entry_line)
                    .where(entry_line.c.entry_id == entry_id)
                    .order_by(entry_line.c.line_no)
                )
            ).all()
            reversals.append(
                reversal_of(original, lines, source=f"{original.source}:reversed", entry_date=day)
            )
    await _post_all(books, pole_id, reversals)


async def _booked_room(books: Books, provider: Caller, requester: Caller) -> date:
    """The worked example through the exchange: a room worth 200 € a day, lent at 80 €, for
    two days (the quantity used); returns the day it was posted."""
    market = books.market
    offer = await market.published(
        dataclasses.replace(provider, http=market.catalog.http), booking_mode="instant"
    )
    day = next_monday()
    made = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    await market.shift_period(request_id, start_in=timedelta(hours=-10), length=timedelta(hours=9))
    done = await market.on_exchange(provider).post(
        f"/requests/{request_id}/complete", json={"quantity_used": "2"}
    )
    assert done.json()["state"] == "completed", done.text

    async def posted() -> list[Any]:
        async with books.runtime.session_factory() as session:
            rows = (
                await session.execute(
                    select(entry.c.entry_date).where(entry.c.pole_id == provider.pole_id)
                )
            ).all()
        return list(rows) if len(rows) == 3 else []

    rows = await eventually(posted)
    posted_on: date = rows[0].entry_date
    return posted_on


async def _pole(books: Books) -> Pole:
    """Three members A, B, C and the pole's coordinator:
    - A lends B its room for two days through the exchange: 160 € and 240 € in kind;
    - C lends A ten hours of staff at cost, 30 €/h, worth 45 €/h: 300 € and 150 € in kind;
    - B gives C three hours at volunteer time (12.50 €/h since 1 January): 37.50 € in kind;
    - A invoiced C a service of 999 € by mistake, reversed the same day;
    - C served B for 50 € the year before (outside the period);
    - the pole received a grant (15 000 €, public), A's dues (120 €, ess) and ten hours of
      volunteering (175 €, individuals); B paid A 100 € to settle part of its debt.
    """
    coordinator, auditor, a, b, c = await _members(books)
    day = await _booked_room(books, a, b)
    pole = Pole(coordinator, auditor, a, b, c, day)
    pole_id = coordinator.pole_id
    volunteer_hour = Reference("volunteer_hour", Decimal("12.50"), date(day.year, 1, 1))
    context = Context("Europe/Paris", ExchangeRules(), volunteer_hour=volunteer_hour)
    staff = _terms(
        unit="hour",
        quantity=Decimal(10),
        internal_price=Decimal(30),
        reference_value=Decimal(45),
        valuation_basis="cost_price",
        staff_regime="direct_loan",
    )
    volunteering = _terms(
        unit="hour",
        quantity=Decimal(3),
        internal_price=Decimal(0),
        reference_value=Decimal(30),
        valuation_basis="volunteer_time",
    )
    service = _terms(
        unit="unit",
        quantity=Decimal(1),
        internal_price=Decimal(999),
        reference_value=Decimal(999),
        valuation_basis="market_price",
    )
    cheap = _terms(
        unit="unit",
        quantity=Decimal(1),
        internal_price=Decimal(50),
        reference_value=Decimal(50),
        valuation_basis="market_price",
    )
    await _post_all(
        books,
        pole_id,
        [
            *value_completed(
                _completed(
                    pole, provider=c, requester=a, kind="staff_time", terms=staff, used="10"
                ),
                context,
            ),
            *value_completed(
                _completed(
                    pole, provider=b, requester=c, kind="staff_time", terms=volunteering, used="3"
                ),
                context,
            ),
        ],
    )
    mistake = await _post_all(
        books,
        pole_id,
        value_completed(
            _completed(pole, provider=a, requester=c, kind="service", terms=service, used="1"),
            context,
        ),
    )
    await _reverse(books, pole_id, mistake, day)
    last_year = dataclasses.replace(pole, day=date(day.year - 1, 12, 15))
    await _post_all(
        books,
        pole_id,
        value_completed(
            _completed(last_year, provider=c, requester=b, kind="service", terms=cheap, used="1"),
            context,
        ),
    )
    direct: dict[str, Any] = {"entry_date": day, "currency": "EUR", "label": "Opération directe"}
    dues: dict[str, Any] = {"flow": "monetary", "resource": "dues", "origin": "ess"}
    settlement: dict[str, Any] = {"flow": "monetary", "resource": "settlement"}
    await _post_all(
        books,
        pole_id,
        [
            Posting(
                book_id=pole_id,
                journal="OD",
                source="test:grant",
                lines=_two(
                    "512", "74", "15000", flow="monetary", resource="grant", origin="public"
                ),
                **direct,
            ),
            Posting(
                book_id=a.member_id,
                journal="OD",
                source="test:dues",
                lines=_two("6281", "401", "120", counterpart_id=pole_id, **dues),
                **direct,
            ),
            Posting(
                book_id=pole_id,
                journal="OD",
                source="test:dues",
                lines=_two("411", "756", "120", counterpart_id=a.member_id, **dues),
                **direct,
            ),
            Posting(
                book_id=pole_id,
                journal="CVN",
                source="test:volunteering",
                lines=_two(
                    "864",
                    "875",
                    "175",
                    flow="in_kind",
                    resource="volunteering",
                    origin="individuals",
                    quantity=Decimal(10),
                    unit="hour",
                    valuation_method="volunteer_time_reference",
                ),
                **direct,
            ),
            Posting(
                book_id=b.member_id,
                journal="OD",
                source="test:settlement",
                lines=(
                    Line(
                        account="401",
                        debit=Decimal(100),
                        counterpart_id=a.member_id,
                        **settlement,
                    ),
                    Line(account="512", credit=Decimal(100), **settlement),
                ),
                **direct,
            ),
            Posting(
                book_id=a.member_id,
                journal="OD",
                source="test:settlement",
                lines=(
                    Line(account="512", debit=Decimal(100), **settlement),
                    Line(
                        account="411",
                        credit=Decimal(100),
                        counterpart_id=b.member_id,
                        **settlement,
                    ),
                ),
                **direct,
            ),
        ],
    )
    return pole


def D(value: Any) -> Decimal:
    return Decimal(str(value))


def _figures(body: dict[str, Any], *names: str) -> tuple[Decimal, ...]:
    return tuple(D(body[name]) for name in names)


FOUR = ("provided_monetary", "provided_in_kind", "received_monetary", "received_in_kind")


# --- The reports ------------------------------------------------------------------------------


async def test_the_reports_value_the_pole_in_money_and_in_kind(books: Books) -> None:
    pole = await _pole(books)
    a, b, c = pole.a, pole.b, pole.c
    names = {a.member_id: "Atelier A", b.member_id: "Bureau B", c.member_id: "Coopérative C"}
    year = pole.year

    # 1. A's activity: it provided the room (160 € + 240 € in kind), received staff time.
    activity = await a.get(f"/members/{a.member_id}/activity", params=year)
    assert activity.status_code == 200, activity.text
    body = activity.json()
    assert body["period"] == year
    assert _figures(body["totals"], *FOUR, "provided", "received", "total") == (
        D(160),
        D(240),
        D(300),
        D(150),
        D(400),
        D(450),
        D(850),
    )
    by_resource = {row["resource"]: row for row in body["by_resource"]}
    assert set(by_resource) == {"premises", "staff_time"}  # the reversed service is gone
    assert _figures(by_resource["premises"], *FOUR) == (D(160), D(240), D(0), D(0))
    assert {
        (q["direction"], q["flow"], q["unit"], D(q["quantity"]))
        for q in by_resource["premises"]["quantities"]
    } == {("provided", "monetary", "day", D(2)), ("provided", "in_kind", "day", D(2))}
    assert {
        (q["direction"], q["flow"], q["unit"], D(q["quantity"]))
        for q in by_resource["staff_time"]["quantities"]
    } == {("received", "monetary", "hour", D(10)), ("received", "in_kind", "hour", D(10))}
    counterparts = {row["legal_name"]: row for row in body["by_counterpart"]}
    assert set(counterparts) == {"Bureau B", "Coopérative C"}
    assert _figures(counterparts["Bureau B"], *FOUR) == (D(160), D(240), D(0), D(0))
    assert counterparts["Coopérative C"]["category"] == "cooperative"
    assert _figures(counterparts["Coopérative C"], *FOUR) == (D(0), D(0), D(300), D(150))
    categories = {row["category"]: row for row in body["by_counterpart_category"]}
    assert set(categories) == {"company", "cooperative"}
    assert body["turnover"] == {
        "annual_turnover": "80000.00",
        "years": "1.000000",
        "turnover_of_period": "80000.00",
        "provided_monetary_share": "0.002000",  # 160 / 80 000
        "activity_share": "0.010625",  # 850 / 80 000
    }

    # The detail lines on request (the CSV is made of them, below).
    assert body["lines"] is None
    detailed = await a.get(f"/members/{a.member_id}/activity", params={**year, "lines": "true"})
    assert {**detailed.json(), "lines": None} == body
    assert {
        (line["direction"], line["flow"], line["resource"], line["counterpart"], line["amount"])
        for line in detailed.json()["lines"]
    } == {
        ("provided", "monetary", "premises", "Bureau B", "160.00"),
        ("provided", "in_kind", "premises", "Bureau B", "240.00"),
        ("received", "monetary", "staff_time", "Coopérative C", "300.00"),
        ("received", "in_kind", "staff_time", "Coopérative C", "150.00"),
    }

    # B received the room and gave three volunteer hours; C's turnover is unknown.
    b_totals = (await b.get(f"/members/{b.member_id}/activity", params=year)).json()["totals"]
    assert _figures(b_totals, *FOUR) == (D(0), D("37.50"), D(160), D(240))
    c_body = (await pole.auditor.get(f"/members/{c.member_id}/activity", params=year)).json()
    assert _figures(c_body["totals"], *FOUR) == (D(300), D(150), D(0), D("37.50"))
    assert c_body["turnover"] is None

    # The reports add up: over the members, what was provided is what was received, per
    # resource and per nature (money, in kind).
    sums: dict[tuple[str, str], Decimal] = {}
    for member in (a, b, c):
        report = await pole.coordinator.get(f"/members/{member.member_id}/activity", params=year)
        for row in report.json()["by_resource"]:
            for measure in FOUR:
                key = (row["resource"], measure)
                sums[key] = sums.get(key, Decimal(0)) + Decimal(row[measure])
    assert {resource for resource, _ in sums} == {"premises", "staff_time"}
    for resource in ("premises", "staff_time"):
        for nature in ("monetary", "in_kind"):
            provided = sums.get((resource, f"provided_{nature}"), Decimal(0))
            assert provided == sums.get((resource, f"received_{nature}"), Decimal(0)), resource

    # 2. The pole's activity.
    pole_body = (await pole.coordinator.get("/pole/activity", params=year)).json()
    month = f"{pole.day:%Y-%m}"
    months = {row["month"]: row for row in pole_body["by_month"]}
    assert len(months) == 12
    assert _figures(months[month], "monetary", "in_kind", "total", "in_kind_share") == (
        D(460),
        D("427.50"),
        D("887.50"),
        D("0.481690"),
    )
    assert all(D(row["total"]) == 0 for key, row in months.items() if key != month)
    assert _figures(pole_body["totals"], "monetary", "in_kind") == (D(460), D("427.50"))
    resources = {row["resource"]: row for row in pole_body["by_resource"]}
    assert set(resources) == {"premises", "staff_time"}
    assert _figures(resources["staff_time"], "monetary", "in_kind") == (D(300), D("187.50"))
    assert {
        (q["flow"], q["unit"], D(q["quantity"])) for q in resources["staff_time"]["quantities"]
    } == {("monetary", "hour", D(10)), ("in_kind", "hour", D(13))}
    reciprocity = {row["legal_name"]: row for row in pole_body["reciprocity"]}
    assert set(reciprocity) == {"Atelier A", "Bureau B", "Coopérative C", "Cellule d'animation"}
    assert _figures(reciprocity["Atelier A"], "given", "received", "ratio") == (
        D(400),
        D(450),
        D("0.888889"),
    )
    assert _figures(reciprocity["Bureau B"], "given_in_kind", "received", "ratio") == (
        D("37.50"),
        D(400),
        D("0.093750"),
    )
    assert _figures(reciprocity["Coopérative C"], "given", "received", "balance") == (
        D(450),
        D("37.50"),
        D("412.50"),
    )
    assert reciprocity["Cellule d'animation"]["ratio"] is None
    assert {
        (row["provider"], row["beneficiary"], D(row["monetary"]), D(row["in_kind"]))
        for row in pole_body["flows"]
    } == {
        ("Atelier A", "Bureau B", D(160), D(240)),
        ("Coopérative C", "Atelier A", D(300), D(150)),
        ("Bureau B", "Coopérative C", D(0), D("37.50")),
    }
    pole_resources = pole_body["resources"]
    assert {
        (row["type"], row["origin"], row["book"], D(row["total"]))
        for row in pole_resources["lines"]
    } == {
        ("grant", "public", "pole", D(15000)),
        ("dues", "ess", "pole", D(120)),
        ("voluntary_contribution", "individuals", "pole", D(175)),
    }
    assert {row["key"]: D(row["amount"]) for row in pole_resources["by_origin"]} == {
        "public": D(15000),
        "ess": D(120),
        "individuals": D(175),
    }
    levels = pole_body["levels"]
    assert _figures(levels["animation_cell"], "monetary", "in_kind", "total") == (
        D(15120),
        D(175),
        D(15295),
    )
    assert _figures(levels["mobilised_by_the_pole"], "total") == (D("887.50"),)
    assert levels["common_projects"] is None

    # 3. The annex of contributions in kind, with the Cerfa numbers (870 and 875 swapped).
    annex = (
        await c.get(f"/members/{c.member_id}/contributions-in-kind", params={"year": pole.day.year})
    ).json()
    assert [
        (row["account"], row["cerfa_account"], row["side"], D(row["amount"]))
        for row in annex["accounts"]
    ] == [("864", "864", "use", D("37.50")), ("875", "870", "source", D("37.50"))]
    volunteering = annex["accounts"][0]
    assert volunteering["label"] == "Personnel bénévole"
    assert volunteering["quantities"] == [{"unit": "hour", "quantity": "3.00"}]
    assert volunteering["valuation_methods"] == ["volunteer_time_reference"]
    assert volunteering["reference_dates"] == [f"{pole.day.year}-01-01"]
    assert volunteering["counterparts"] == [{"id": str(b.member_id), "legal_name": "Bureau B"}]
    assert (annex["total_uses"], annex["total_sources"]) == ("37.50", "37.50")
    b_annex = (
        await b.get(f"/members/{b.member_id}/contributions-in-kind", params={"year": pole.day.year})
    ).json()
    assert [(row["account"], row["amount"]) for row in b_annex["accounts"]] == [
        ("8611", "240.00"),
        ("871", "240.00"),
    ]
    assert b_annex["accounts"][0]["valuation_methods"] == ["market_reference"]
    last_year = await b.get(
        f"/members/{b.member_id}/contributions-in-kind", params={"year": pole.day.year - 1}
    )
    assert last_year.json()["accounts"] == []

    # 4. Statements of account: running balances per counterpart, positive when owed.
    statement = (await a.get(f"/members/{a.member_id}/statement", params=year)).json()
    per = {row["legal_name"]: row for row in statement["counterparts"]}
    assert [D(line["balance"]) for line in per["Bureau B"]["lines"]] == [D(160), D(60)]
    # Staff time owed to C, then the mistaken invoice to C and its reversal.
    assert [D(line["balance"]) for line in per["Coopérative C"]["lines"]] == [
        D(-300),
        D(699),
        D(-300),
    ]
    pole_name = next(name for name in per if name not in names.values())
    assert D(per[pole_name]["closing_balance"]) == D(-120)  # A's dues, owed to the pole
    assert {name: D(row["closing_balance"]) for name, row in per.items()} == {
        "Bureau B": D(60),
        "Coopérative C": D(-300),
        pole_name: D(-120),
    }
    assert _figures(statement, "receivable", "payable", "net") == (D(60), D(420), D(-360))
    b_statement = (await b.get(f"/members/{b.member_id}/statement", params=year)).json()
    b_per = {row["legal_name"]: row for row in b_statement["counterparts"]}
    assert _figures(b_per["Coopérative C"], "opening_balance", "closing_balance") == (
        D(-50),
        D(-50),
    )
    assert b_per["Coopérative C"]["lines"] == []
    assert [D(line["balance"]) for line in b_per["Atelier A"]["lines"]] == [D(-160), D(-60)]

    # 5. Settlement: A owes 240 (−300 + 60), B owes 60, C is owed 300: two payments.
    proposal = (await pole.coordinator.get("/pole/settlement", params=year)).json()
    assert {row["legal_name"]: D(row["balance"]) for row in proposal["balances"]} == {
        "Atelier A": D(-240),
        "Bureau B": D(-60),
        "Coopérative C": D(300),
    }
    assert proposal["exact"] is True
    assert sorted((p["from_name"], p["to_name"], D(p["amount"])) for p in proposal["payments"]) == [
        ("Atelier A", "Coopérative C", D(240)),
        ("Bureau B", "Coopérative C", D(60)),
    ]
    assert {p["from"] for p in proposal["payments"]} == {str(a.member_id), str(b.member_id)}
    two_years = {"from": f"{pole.day.year - 1}-01-01", "to": year["to"]}
    earlier = (await pole.auditor.get("/pole/settlement", params=two_years)).json()
    assert {row["legal_name"]: D(row["balance"]) for row in earlier["balances"]} == {
        "Atelier A": D(-240),
        "Bureau B": D(-110),
        "Coopérative C": D(350),
    }

    # The CSV forms, for French spreadsheets.
    as_csv = await a.get(f"/members/{a.member_id}/activity", params={**year, "format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    rows = _csv(as_csv.text)
    assert rows[0][:3] == ["direction", "flow", "resource"]
    assert {
        (row["direction"], row["flow"], row["resource"], row["counterpart"], row["amount"])
        for row in _records(rows)
    } == {
        ("provided", "monetary", "premises", "Bureau B", "160,00"),
        ("provided", "in_kind", "premises", "Bureau B", "240,00"),
        ("received", "monetary", "staff_time", "Coopérative C", "300,00"),
        ("received", "in_kind", "staff_time", "Coopérative C", "150,00"),
    }
    accepted = await pole.coordinator.get(
        "/pole/settlement", params=year, headers={"Accept": "text/csv"}
    )
    assert accepted.headers["content-type"] == "text/csv; charset=utf-8"
    payments = [row for row in _records(_csv(accepted.text)) if row["section"] == "payment"]
    assert sorted((row["member"], row["to_member"], row["amount"]) for row in payments) == [
        ("Atelier A", "Coopérative C", "240,00"),
        ("Bureau B", "Coopérative C", "60,00"),
    ]
    long = _records(
        _csv((await pole.auditor.get("/pole/activity", params={**year, "format": "csv"})).text)
    )
    assert {
        "section": "month",
        "key": month,
        "name": "",
        "other_key": "",
        "other_name": "",
        "measure": "in_kind",
        "value": "427,50",
    } in long
    annex_csv = _records(
        _csv(
            (
                await c.get(
                    f"/members/{c.member_id}/contributions-in-kind",
                    params={"year": pole.day.year, "format": "csv"},
                )
            ).text
        )
    )
    assert [(row["account"], row["cerfa_account"], row["amount"]) for row in annex_csv] == [
        ("864", "864", "37,50"),
        ("875", "870", "37,50"),
    ]
    statement_csv = _records(
        _csv(
            (
                await a.get(f"/members/{a.member_id}/statement", params={**year, "format": "csv"})
            ).text
        )
    )
    closing = [row for row in statement_csv if row["label"] == "closing balance"]
    assert {row["counterpart"]: row["balance"] for row in closing}["Bureau B"] == "60,00"
    # Asking for JSON wins over the Accept header.
    json_anyway = await a.get(
        f"/members/{a.member_id}/activity",
        params={**year, "format": "json"},
        headers={"Accept": "text/csv"},
    )
    assert json_anyway.headers["content-type"] == "application/json"


def _csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))


def _records(rows: list[list[str]]) -> list[dict[str, str]]:
    header, *lines = rows
    return [dict(zip(header, line, strict=True)) for line in lines]


# --- Who reads what ---------------------------------------------------------------------------


async def test_reports_are_read_by_the_member_and_its_pole_only(books: Books) -> None:
    coordinator, auditor, a, b, _ = await _members(books)
    stranger = books.on_ledger(await books.market.catalog.new_pole("Autre pôle"))
    period = {"from": "2026-01-01", "to": "2027-01-01"}
    member_reports = [
        (f"/members/{a.member_id}/activity", period),
        (f"/members/{a.member_id}/contributions-in-kind", {"year": "2026"}),
        (f"/members/{a.member_id}/statement", period),
    ]
    for url, params in member_reports:
        for reader in (a, coordinator, auditor):
            assert (await reader.get(url, params=params)).status_code == 200, (url, reader)
        for outsider in (b, stranger):
            assert problem(await outsider.get(url, params=params), 404)
        assert problem(await books.http.get(url, params=params), 401)
        # The pole's own book is no member.
        pole_url = url.replace(str(a.member_id), str(a.pole_id))
        assert problem(await coordinator.get(pole_url, params=params), 404)
        unknown = url.replace(str(a.member_id), str(uuid.uuid4()))
        assert problem(await coordinator.get(unknown, params=params), 404)
    for url in ("/pole/activity", "/pole/settlement"):
        for reader in (coordinator, auditor):
            assert (await reader.get(url, params=period)).status_code == 200
        assert problem(await a.get(url, params=period), 403)
        assert problem(await books.http.get(url, params=period), 401)
        assert problem(await books.http.get(url), 401)
        # Another pole's coordinator reads its own pole: nothing of this one.
        theirs = (await stranger.get(url, params=period)).json()
        assert str(a.member_id) not in str(theirs)


async def test_a_period_is_bounded(books: Books) -> None:
    coordinator = books.on_ledger(await books.market.catalog.new_pole())
    await books.knows(coordinator)
    for period in (
        {"from": "2026-01-01", "to": "2026-01-01"},  # empty
        {"from": "2026-02-01", "to": "2026-01-01"},  # backwards
        {"from": "2020-01-01", "to": "2025-01-02"},  # more than five years
        {"from": "2026-01-01"},  # no end
        {"from": "2026-13-01", "to": "2027-01-01"},  # not a date
    ):
        for url in (
            f"/members/{coordinator.member_id}/activity",
            f"/members/{coordinator.member_id}/statement",
            "/pole/activity",
            "/pole/settlement",
        ):
            assert problem(await coordinator.get(url, params=period), 422), (url, period)
    five_years = {"from": "2020-01-01", "to": "2025-01-01"}
    assert (await coordinator.get("/pole/settlement", params=five_years)).status_code == 200
    leap = {"from": "2024-02-29", "to": "2029-02-28"}
    assert (await coordinator.get("/pole/activity", params=leap)).status_code == 200
