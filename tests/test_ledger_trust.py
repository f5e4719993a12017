"""Trusting the ledger: it reconciles with the exchange, and replaying the topics into an
empty ledger rebuilds the same journal."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, text
from typer.testing import CliRunner

from exchange.models import booking_request
from ledger.journal import Line, Posting, post
from ledger.models import entry
from ledger.postings import EXCHANGE_VALUATION
from ledger.service import CATALOG_COPY
from ledger.service import DEFINITION as LEDGER
from ledger.trust import journal_checksum, reconcile
from ptce.cli import app
from ptce.testing.api import Caller
from ptce.testing.exchange import at, next_monday, parties
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books
from ptce.testing.plugin import SettingsFactory
from shared.consumer import IdempotentConsumer
from shared.runtime import ServiceRuntime


async def _completed(books: Books, provider: Caller, requester: Caller, used: str) -> str:
    market = books.market
    offer = await market.published(provider, booking_mode="instant", title=f"Salle {used}")
    day = next_monday()
    made = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    request_id = str(made.json()["id"])
    await market.shift_period(request_id, start_in=timedelta(hours=-10), length=timedelta(hours=9))
    done = await market.on_exchange(provider).post(
        f"/requests/{request_id}/complete", json={"quantity_used": used}
    )
    assert done.json()["state"] == "completed", done.text
    return request_id


async def _posted(books: Books, count: int) -> None:
    async def enough() -> bool:
        async with books.runtime.session_factory() as session:
            found = await session.scalar(select(func.count()).select_from(entry))
        return found == count

    await eventually(enough)


async def test_the_journal_reconciles_with_the_exchange_and_differences_are_named(
    books: Books,
) -> None:
    _, provider, requester = await parties(books.market)
    await _completed(books, provider, requester, "1")
    await _completed(books, provider, requester, "0.5")
    await _posted(books, 6)  # two books in money, one in kind, for each
    exchange_sessions = books.market.runtime.session_factory
    async with exchange_sessions() as on_exchange, books.runtime.session_factory() as on_ledger:
        clean = await reconcile(on_exchange, on_ledger)
    assert (clean.exchanges, clean.differences) == (2, [])
    # The command runs its own event loop: in a thread, beside the test's.
    assert await asyncio.to_thread(_cli, books) == (0, "2 completed exchanges, 0 differences")

    # A completion the journal never heard of, and a posting for no completed exchange.
    unheard = await _accepted(books, provider, requester)
    async with books.market.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE booking_request SET state = 'completed', quantity_used = 1 WHERE id = :id"
            ),
            {"id": uuid.UUID(unheard)},
        )
    stray = uuid.uuid4()
    async with books.runtime.session_factory() as session, session.begin():
        await post(
            session,
            provider.pole_id,
            Posting(
                book_id=provider.member_id,
                journal="EX",
                entry_date=date(2026, 11, 2),
                label="?",
                source=f"exchange:{stray}:completed:v3:EX",
                currency="EUR",
                lines=(
                    Line(account="411", flow="monetary", resource="premises", debit=Decimal(5)),
                    Line(account="7083", flow="monetary", resource="premises", credit=Decimal(5)),
                ),
            ),
            now=datetime.now(UTC),
        )
    async with exchange_sessions() as on_exchange, books.runtime.session_factory() as on_ledger:
        found = await reconcile(on_exchange, on_ledger)
    assert {(str(d.request_id), d.problem) for d in found.differences} == {
        (unheard, "completed but not in the journal"),
        (str(stray), "in the journal but not completed"),
    }
    code, output = await asyncio.to_thread(_cli, books)
    assert code == 1
    assert output.endswith("3 completed exchanges, 2 differences")


async def _accepted(books: Books, provider: Caller, requester: Caller) -> str:
    offer = await books.market.published(provider, booking_mode="instant", title="Salle B")
    day = next_monday(weeks=1)
    made = await books.market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    return str(made.json()["id"])


def _cli(books: Books) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["ledger", "reconcile"],
        env={
            "EXCHANGE_DATABASE_URL": books.market.runtime.settings.database_url,
            "LEDGER_DATABASE_URL": books.runtime.settings.database_url,
        },
    )
    lines = [line for line in result.output.splitlines() if "differences" in line or ": " in line]
    return result.exit_code, lines[-1] if lines else result.output


async def test_replaying_the_topics_into_an_empty_ledger_rebuilds_the_same_journal(
    books: Books, service_settings: SettingsFactory
) -> None:
    coordinator, provider, requester = await parties(books.market)
    for used in ("1", "0.5", "1"):
        await _completed(books, provider, requester, used)
    await _posted(books, 9)
    async with books.runtime.session_factory() as session:
        original = await journal_checksum(session, coordinator.pole_id)
    assert original[0] == 9

    rebuilt_settings = await service_settings("ledger")
    rebuilt = ServiceRuntime(LEDGER, rebuilt_settings)
    consumers = [
        IdempotentConsumer(
            service="ledger",
            spec=spec,
            unit_of_work=rebuilt.uow,
            processed_event=LEDGER.processed_event,
            settings=rebuilt_settings,
            group_suffix=".rebuild",
        )
        for spec in (CATALOG_COPY, EXCHANGE_VALUATION)
    ]
    tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
    try:

        async def same() -> bool:
            async with rebuilt.session_factory() as session:
                return await journal_checksum(session, coordinator.pole_id) == original

        await eventually(same)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rebuilt.stop()
    assert await _requests_completed(books) == 3


async def _requests_completed(books: Books) -> int:
    async with books.market.runtime.session_factory() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(booking_request)
                .where(booking_request.c.state == "completed")
            )
            or 0
        )
