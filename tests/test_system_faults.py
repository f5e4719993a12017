"""Faults on the three services running as separate processes (``ptce serve``, as ``make run``
runs them): whatever is killed, the ledger ends equal to what the exchange says happened —
nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from ledger.trust import reconcile
from ptce.embedded import EmbeddedPostgres, free_port
from ptce.testing.api import room
from ptce.testing.exchange import at, next_monday
from ptce.testing.helpers import eventually
from ptce.testing.plugin import (
    Infra,
    create_database,
    new_topic_prefix,
    settings_factory,
    template_of,
)
from ptce.testing.system import SERVICES, System, running_system
from shared.migrations import upgrade

BOOKINGS = 120
AT_ONCE = 8


async def _until_answered(
    call: Callable[[], Awaitable[httpx.Response]], failed: list[str | httpx.Response]
) -> httpx.Response:
    """Retry through a service's death and restart: a client sees errors (kept in ``failed``:
    the connection's, or the 5xx answers), then an answer."""
    for _ in range(600):
        try:
            response = await call()
        except httpx.TransportError as error:
            failed.append(type(error).__name__)
        else:
            if response.status_code < 500:
                return response
            failed.append(response)
        await asyncio.sleep(0.1)
    raise AssertionError("no answer after a minute")


async def _in_turns(
    items: list[Any],
    act: Callable[[Any], Awaitable[None]],
    *,
    midway: Callable[[], Awaitable[None]],
) -> None:
    """``act`` on every item, ``AT_ONCE`` at a time; ``midway`` runs once a third are done,
    while the others are in flight."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    done = 0
    killed = asyncio.Event()

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            await act(queue.get_nowait())
            done += 1
            if done == len(items) // 3 and not killed.is_set():
                killed.set()
                await midway()

    await asyncio.gather(*(worker() for _ in range(AT_ONCE)))


async def _restart(system: System, service: str) -> None:
    system.kill(service)  # SIGKILL: no shutdown, no flush, no goodbye to the broker
    system.start(service)
    await system.ready(service)


async def test_killing_each_service_mid_stream_loses_nothing_and_doubles_nothing(
    system: System,
) -> None:
    catalog = system.catalog()
    coordinator = await catalog.new_pole("Pôle des pannes")
    provider = await catalog.new_member(coordinator)
    requesters = [await catalog.new_member(coordinator) for _ in range(3)]
    created = await provider.post("/offers", json=room(booking_mode="instant", capacity=1000))
    published = await provider.post(f"/offers/{created.json()['id']}/publish")
    offer = published.json()
    monday = next_monday(weeks=2)
    slot = {"offer_id": offer["id"], "start": at(monday, 9), "end": at(monday, 18)}

    async def known() -> bool:
        answer = await system.on("exchange", requesters[0]).get(
            f"/offers/{offer['id']}/availability",
            params={"start": at(monday, 0), "end": at(monday, 23)},
        )
        return answer.status_code == 200

    await eventually(known)

    # A stream of bookings, each with its Idempotency-Key; the exchange is killed mid-stream.
    request_ids: list[str] = []
    failed: list[str | httpx.Response] = []

    async def book(n: int) -> None:
        requester = system.on("exchange", requesters[n % len(requesters)])
        key = str(uuid.uuid4())
        answer = await _until_answered(
            lambda: requester.post("/requests", json=slot, headers={"Idempotency-Key": key}),
            failed,
        )
        assert answer.status_code == 201, answer.text
        request_ids.append(answer.json()["id"])

    await _in_turns(list(range(BOOKINGS)), book, midway=lambda: _restart(system, "exchange"))
    assert len(set(request_ids)) == BOOKINGS
    assert failed  # the exchange died under traffic
    failed.clear()

    exchange_db = create_async_engine(system.settings["exchange"].database_url)
    ledger_db = create_async_engine(system.settings["ledger"].database_url)
    try:
        async with exchange_db.begin() as conn:
            held = await conn.scalar(
                text("SELECT count(*) FROM booking_request WHERE offer_id = :offer"),
                {"offer": uuid.UUID(offer["id"])},
            )
            assert held == BOOKINGS  # not one more: the retried posts were replays
            await conn.execute(
                text(
                    "UPDATE booking_request SET period = tstzrange(now() - interval '10 hours', "
                    "now() - interval '1 hour', '[)') WHERE offer_id = :offer"
                ),
                {"offer": uuid.UUID(offer["id"])},
            )

        # The provider completes them all; the ledger, then the catalog, are killed meanwhile.
        on_exchange = system.on("exchange", provider)

        async def complete(request_id: str) -> None:
            answer = await _until_answered(
                lambda: on_exchange.post(f"/requests/{request_id}/complete"), failed
            )
            # A retry after a lost answer finds it completed already: a 409 naming that state.
            assert answer.status_code in (200, 409), answer.text
            assert answer.json().get("state") == "completed", answer.text

        async def kill_the_ledger_then_the_catalog() -> None:
            await _restart(system, "ledger")
            await _restart(system, "catalog")

        await _in_turns(request_ids, complete, midway=kill_the_ledger_then_the_catalog)
        # Completions went on while the ledger and the catalog were down: the exchange alone
        # answers them, its events wait in its outbox and the broker.
        assert not failed

        # The ledger ends equal to the exchange: every completed exchange posted, once.
        async def reconciled() -> bool:
            async with (
                async_sessionmaker(exchange_db)() as on_exchange_db,
                async_sessionmaker(ledger_db)() as on_ledger_db,
            ):
                outcome = await reconcile(on_exchange_db, on_ledger_db, coordinator.pole_id)
            return outcome.exchanges == BOOKINGS and not outcome.differences

        await eventually(reconciled, timeout=90)
        async with ledger_db.connect() as conn:
            entries = await conn.scalar(
                text(
                    "SELECT count(*) FROM entry WHERE pole_id = :pole AND source LIKE 'exchange:%'"
                ),
                {"pole": coordinator.pole_id},
            )
        # Each completed room: EX in both books and CVN in the requester's.
        assert entries == 3 * BOOKINGS
    finally:
        await exchange_db.dispose()
        await ledger_db.dispose()


@pytest.fixture
async def own_postgres(infra: Infra, data_dir: Path) -> AsyncIterator[Infra]:
    """A PostgreSQL of the test's own (the session's is shared: not to be stopped), with the
    services' migrated templates; the session's broker. Configured as in production: the
    session's runs with ``synchronous_commit=off``, which acknowledges commits a crash then
    loses (this test saw it)."""
    postgres = EmbeddedPostgres(data_dir / "postgres", free_port())
    await asyncio.to_thread(postgres.start)
    own = Infra(
        f"postgresql://postgres@127.0.0.1:{postgres.port}",
        infra.kafka_bootstrap_servers,
        postgres,
        None,
    )
    try:
        for service in SERVICES:
            await create_database(own, template_of(service))
            await asyncio.to_thread(upgrade, service, own.database_url(template_of(service)))
        yield own
    finally:
        await asyncio.to_thread(postgres.stop)


async def test_postgresql_crashing_under_traffic_loses_no_acknowledged_booking(
    own_postgres: Infra, data_dir: Path
) -> None:
    """``pg_ctl stop -m immediate`` under a stream of bookings, and a restart: while it is down
    the services answer 503 with problem details; they recover by themselves; every booking
    acknowledged before, during or after is there, once."""
    assert own_postgres.postgres is not None
    postgres = own_postgres.postgres
    async with (
        settings_factory(own_postgres, new_topic_prefix()) as make_settings,
        running_system(make_settings, data_dir) as system,
    ):
        catalog = system.catalog()
        coordinator = await catalog.new_pole("Pôle de la panne")
        provider = await catalog.new_member(coordinator)
        requester = system.on("exchange", await catalog.new_member(coordinator))
        created = await provider.post("/offers", json=room(booking_mode="instant", capacity=1000))
        offer = (await provider.post(f"/offers/{created.json()['id']}/publish")).json()
        monday = next_monday(weeks=2)

        async def known() -> bool:
            answer = await requester.get(
                f"/offers/{offer['id']}/availability",
                params={"start": at(monday, 0), "end": at(monday, 23)},
            )
            return answer.status_code == 200

        await eventually(known)

        acknowledged: set[str] = set()
        failed: list[str | httpx.Response] = []
        stop = asyncio.Event()

        async def stream() -> None:
            slot = {"offer_id": offer["id"], "start": at(monday, 9), "end": at(monday, 18)}
            while not stop.is_set():
                key = str(uuid.uuid4())  # the same key until answered: a retry is a replay
                answer = await _until_answered(
                    lambda key=key: requester.post(  # type: ignore[misc]
                        "/requests", json=slot, headers={"Idempotency-Key": key}
                    ),
                    failed,
                )
                assert answer.status_code == 201, answer.text
                acknowledged.add(answer.json()["id"])

        streams = [asyncio.create_task(stream()) for _ in range(4)]
        try:
            await asyncio.sleep(2)
            before = len(acknowledged)
            assert before > 0
            await asyncio.to_thread(postgres.stop, immediate=True)
            await asyncio.sleep(3)
            await asyncio.to_thread(postgres.start)

            async def recovered() -> bool:
                return len(acknowledged) > before + 20

            await eventually(recovered, timeout=60)
        finally:
            stop.set()
            await asyncio.gather(*streams)

        # While it was down: 503 (never a 500), problem details, with a hint of when to retry.
        unavailable = [answer for answer in failed if isinstance(answer, httpx.Response)]
        assert unavailable
        for answer in unavailable:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "retry-after" in answer.headers
        # Every service is ready again without being restarted.
        for service in SERVICES:
            assert (await system.http[service].get("/readyz")).status_code == 200
            assert system.processes[service].poll() is None
        # Every acknowledged booking is there, once.
        exchange_db = create_async_engine(system.settings["exchange"].database_url)
        try:
            async with exchange_db.connect() as conn:
                stored = set(
                    str(found)
                    for found in await conn.scalars(
                        text("SELECT id FROM booking_request WHERE offer_id = :offer"),
                        {"offer": uuid.UUID(offer["id"])},
                    )
                )
        finally:
            await exchange_db.dispose()
        assert stored == acknowledged
