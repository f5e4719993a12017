"""The running totals the reports read (``activity_total``, kept by a trigger: migration 0007)
are the sums of the journal's lines, whatever the period: whole years, whole months and the
days around them."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, get_args

from sqlalchemy import select, text

from ledger.chart import Resource
from ledger.journal import Line, Posting, post, reversal_of
from ledger.models import entry, entry_line
from ledger.reports import (
    Period,
    Slices,
    _member_breakdown,
    _pole_by_month_and_resource,
    _pole_pairs,
    member_breakdown_values,
    pole_breakdown_values,
)
from ledger.trust import totals_differences
from ptce.testing.ledger import Books

FIRST_DAY, LAST_DAY = date(2025, 11, 1), date(2027, 2, 28)
SPANS = [
    Period(date(2026, 1, 1), date(2027, 1, 1)),  # a calendar year
    Period(date(2025, 11, 15), date(2027, 2, 10)),  # days, months, a year, months, days
    Period(date(2025, 12, 1), date(2026, 3, 1)),  # whole months across a year's end
    Period(date(2026, 3, 1), date(2026, 3, 20)),  # days of one month
    Period(date(2026, 2, 10), date(2026, 5, 1)),  # days then months
    Period(date(2025, 12, 31), date(2026, 1, 2)),  # two days across a year's end
    Period(date(2025, 1, 1), date(2030, 1, 1)),  # five years, most of them empty
]


def _exchange(
    rng: random.Random, *, pole_id: uuid.UUID, provider: uuid.UUID, requester: uuid.UUID
) -> list[Posting]:
    """An exchange as the ledger posts it: money in both books, kind in the requester's."""
    day = FIRST_DAY + timedelta(days=rng.randrange((LAST_DAY - FIRST_DAY).days + 1))
    resource = rng.choice([*get_args(Resource)[:4], "volunteering"])
    unit = rng.choice(["hour", "day", None])
    quantity = Decimal(rng.randint(1, 8)) if unit else None
    price, in_kind = Decimal(rng.randint(0, 300)), Decimal(rng.randint(0, 200))
    common: dict[str, Any] = {"resource": resource, "quantity": quantity, "unit": unit}
    source = f"test:{uuid.uuid4()}"
    postings = []
    if price:
        postings += [
            Posting(
                book_id=provider,
                journal="EX",
                entry_date=day,
                label="Prestation",
                source=source,
                currency="EUR",
                lines=(
                    Line("411", "monetary", debit=price, counterpart_id=requester, **common),
                    Line("706", "monetary", credit=price, counterpart_id=requester, **common),
                ),
            ),
            Posting(
                book_id=requester,
                journal="EX",
                entry_date=day,
                label="Prestation reçue",
                source=source,
                currency="EUR",
                lines=(
                    Line("604", "monetary", debit=price, counterpart_id=provider, **common),
                    Line("401", "monetary", credit=price, counterpart_id=provider, **common),
                ),
            ),
        ]
    if in_kind:
        postings.append(
            Posting(
                book_id=requester,
                journal="CVN",
                entry_date=day,
                label="Contribution en nature",
                source=f"{source}:cvn",
                currency="EUR",
                lines=(
                    Line("8611", "in_kind", debit=in_kind, counterpart_id=provider, **common),
                    Line("871", "in_kind", credit=in_kind, counterpart_id=provider, **common),
                ),
            )
        )
    return postings


async def _journal(books: Books, pole_id: uuid.UUID, members: list[uuid.UUID]) -> None:
    rng = random.Random(2026)  # noqa: S311 - test data
    now = datetime.now(UTC)
    posted: list[uuid.UUID] = []
    # Several transactions, several postings in each: the trigger adds each statement's lines.
    for _ in range(6):
        async with books.runtime.session_factory() as session, session.begin():
            for _ in range(25):
                provider, requester = rng.sample(members, 2)
                for posting in _exchange(
                    rng, pole_id=pole_id, provider=provider, requester=requester
                ):
                    entry_id = await post(session, pole_id, posting, now=now)
                    assert entry_id is not None
                    posted.append(entry_id)
            # Dues: the pole is the counterpart (a received service from the pole's book).
            await post(
                session,
                pole_id,
                Posting(
                    book_id=members[0],
                    journal="EX",
                    entry_date=date(2026, 1, 1),
                    label="Cotisation",
                    source=f"test:{uuid.uuid4()}:dues",
                    currency="EUR",
                    lines=(
                        Line(
                            "6281", "monetary", "dues", debit=Decimal(120), counterpart_id=pole_id
                        ),
                        Line(
                            "401", "monetary", "dues", credit=Decimal(120), counterpart_id=pole_id
                        ),
                    ),
                ),
                now=now,
            )
    # Corrections: some entries reversed, in a later month (some across a year's end).
    async with books.runtime.session_factory() as session, session.begin():
        for entry_id in rng.sample(posted, 30):
            original = (await session.execute(select(entry).where(entry.c.id == entry_id))).one()
            lines = (
                await session.execute(
                    select(entry_line)
                    .where(entry_line.c.entry_id == entry_id)
                    .order_by(entry_line.c.line_no)
                )
            ).all()
            day = min(original.entry_date + timedelta(days=rng.randint(0, 60)), LAST_DAY)
            reversal = reversal_of(original, lines, source=f"{original.source}:r", entry_date=day)
            assert await post(session, pole_id, reversal, now=now) is not None


def _sorted(rows: Any) -> list[tuple[str, ...]]:
    return sorted(tuple(str(value) for value in row) for row in rows)


async def test_the_running_totals_are_the_sums_of_the_lines_for_any_period(books: Books) -> None:
    pole_id = uuid.uuid4()
    members = [uuid.uuid4() for _ in range(5)]
    await _journal(books, pole_id, members)

    async with books.runtime.session_factory() as session:
        assert await totals_differences(session, pole_id) == 0
        await session.execute(text("SET plan_cache_mode = force_custom_plan"))
        compared = 0
        for span in SPANS:
            for member_id in members:
                values = member_breakdown_values(pole_id, member_id, Slices.of(span))
                from_totals = (await session.execute(_member_breakdown(), values)).all()
                values = member_breakdown_values(pole_id, member_id, Slices.from_lines(span))
                from_lines = (await session.execute(_member_breakdown(), values)).all()
                assert _sorted(from_totals) == _sorted(from_lines), (span, member_id)
                compared += len(from_lines)
            for statement, slices in (
                (_pole_by_month_and_resource(), Slices.of(span, years=False)),
                (_pole_pairs(), Slices.of(span)),
            ):
                values = pole_breakdown_values(pole_id, slices)
                from_totals = (await session.execute(statement, values)).all()
                values = pole_breakdown_values(pole_id, Slices.from_lines(span))
                from_lines = (await session.execute(statement, values)).all()
                # The same rows, in the same order.
                assert [tuple(row) for row in from_totals] == [tuple(row) for row in from_lines]
                compared += len(from_lines)
        # Not a comparison of nothing with nothing.
        assert compared > 500


def test_slices_cut_a_period_into_years_months_and_days() -> None:
    span = Period(date(2025, 11, 15), date(2027, 2, 10))
    assert Slices.of(span) == Slices(
        years=Period(date(2026, 1, 1), date(2027, 1, 1)),
        months=(
            Period(date(2025, 12, 1), date(2026, 1, 1)),
            Period(date(2027, 1, 1), date(2027, 2, 1)),
        ),
        days=(
            Period(date(2025, 11, 15), date(2025, 12, 1)),
            Period(date(2027, 2, 1), date(2027, 2, 10)),
        ),
    )
    by_month = Slices.of(span, years=False)
    assert by_month.years.start == by_month.years.end  # empty
    assert by_month.months[0] == Period(date(2025, 12, 1), date(2027, 2, 1))
    inside = Period(date(2026, 3, 2), date(2026, 3, 30))
    assert Slices.of(inside) == Slices.from_lines(inside)
    assert Slices.from_lines(inside).days[0] == inside


async def test_the_exchange_resources_of_the_database_are_the_charts(books: Books) -> None:
    """The totals tell an exchange's flows in kind from other contributions with a function
    of migration 0007: it knows the resources ``ledger.chart.Resource`` lists."""
    async with books.runtime.session_factory() as session:
        for resource in (*get_args(Resource), "volunteering", "donation", "dues"):
            known = await session.scalar(
                text("SELECT ledger_is_exchange_resource(:resource)"), {"resource": resource}
            )
            assert known is (resource in get_args(Resource)), resource
