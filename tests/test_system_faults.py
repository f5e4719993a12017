"""Faults on the three services running as separate processes (``ptce serve``, as ``make run``
runs them): whatever is killed or frozen, the ledger ends equal to what the exchange says
happened — nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

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
from ptce.testing.traffic import Failures, Stream, open_scene, until_answered
from shared.migrations import upgrade

EXCHANGES_BETWEEN_FAULTS = 250
PAST_SESSION_TIMEOUT_SECONDS = 16  # the consumers' session timeout is 10 s (shared.kafka)


async def test_killing_each_service_mid_stream_loses_nothing_and_doubles_nothing(
    system: System,
) -> None:
    """``kill -9`` of the exchange, then the ledger, then the catalog, each in the middle of a
    stream of bookings and completions (a thousand of each), each restarted."""
    async with open_scene(system, "Pôle des pannes") as scene:
        async with Stream(scene).running() as stream:
            for service in ("exchange", "ledger", "catalog"):
                await stream.goes_on(EXCHANGES_BETWEEN_FAULTS)
                await system.restart(service)
            await stream.goes_on(EXCHANGES_BETWEEN_FAULTS)
            exchanges = await stream.stop()
        assert exchanges >= 4 * EXCHANGES_BETWEEN_FAULTS
        assert scene.failed  # the clients saw the exchange die under traffic
        # Not one booking more than the clients were given: the retried posts were replays.
        assert await scene.held() == exchanges
        await scene.ledger_equals_exchange(exchanges)


async def test_a_paused_consumer_and_a_killed_replica_lose_nothing_and_double_nothing(
    system: System,
) -> None:
    """Two ledgers in the same consumer groups. One is frozen (SIGSTOP) past its session
    timeout: the group moves its partitions to the other, which goes on posting; when it
    resumes, its late commit fails harmlessly. Then the other is killed: the partitions come
    back. The ledger ends equal to the exchange."""
    system.start("ledger#2")
    await system.ready("ledger#2")
    async with open_scene(system, "Pôle des répliques") as scene:
        async with Stream(scene).running() as stream:
            await stream.goes_on(100)
            system.send_signal("ledger", signal.SIGSTOP)
            try:
                await asyncio.sleep(PAST_SESSION_TIMEOUT_SECONDS)
                posted = await scene.posted_entries()
                await stream.goes_on(100)
                # The replica took the frozen one's partitions: postings go on meanwhile.
                await eventually(lambda: _is_more(scene.posted_entries(), posted + 30))
            finally:
                system.send_signal("ledger", signal.SIGCONT)
            await stream.goes_on(100)
            system.kill("ledger#2")
            await stream.goes_on(100)
            exchanges = await stream.stop()
        await scene.ledger_equals_exchange(exchanges)


async def _is_more(count: Awaitable[int], than: int) -> bool:
    return await count > than


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
        failed: Failures = []
        stop = asyncio.Event()

        async def stream() -> None:
            slot = {"offer_id": offer["id"], "start": at(monday, 9), "end": at(monday, 18)}
            while not stop.is_set():
                key = str(uuid.uuid4())  # the same key until answered: a retry is a replay
                answer = await until_answered(
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
