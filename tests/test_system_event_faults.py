"""Faults of the event backbone under the three services running as separate processes: the
broker cut, the broker restarted empty, a service killed between its commit and the
publication of its event, and events duplicated, reordered or malformed. Each time the ledger
ends equal to what the exchange says happened — nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import create_async_engine

from ptce.embedded import EmbeddedBroker, free_port
from ptce.testing.helpers import eventually, read_topic, read_until_quiet
from ptce.testing.plugin import Infra, new_topic_prefix, settings_factory
from ptce.testing.system import System, running_system
from ptce.testing.traffic import Stream, open_scene
from shared.events.registry import dead_letter_topic, topic_name
from shared.settings import ServiceSettings

BROKER_CUT_SECONDS = 20


@pytest.fixture
async def own_broker(infra: Infra, data_dir: Path) -> AsyncIterator[Infra]:
    """A broker of the test's own (the session's is shared: not to be cut or restarted)."""
    broker = EmbeddedBroker(free_port(), data_dir / "own-broker.log")
    broker.start()
    try:
        yield Infra(infra.postgres_url, broker.bootstrap_servers, infra.postgres, broker)
    finally:
        broker.stop()


async def test_the_broker_cut_then_restarted_empty_under_traffic_loses_nothing(
    own_broker: Infra, data_dir: Path
) -> None:
    """The broker frozen for tens of seconds, its data kept: bookings and completions are
    still taken, and the exchange, killed meanwhile with events committed but not sent, sends
    them when it is back. Then the broker restarted empty: the services notice by themselves
    and send again what their readers had not confirmed. (Short broker timeouts, so that the
    outages outlast them, as in tests/test_backbone.py.)"""
    broker = own_broker.broker
    assert broker is not None
    async with (
        settings_factory(own_broker, new_topic_prefix()) as make_settings,
        running_system(
            make_settings, data_dir, kafka_timeout_seconds=2.0, consumer_rejoin_timeout_seconds=10.0
        ) as system,
        open_scene(system, "Pôle sans courant") as scene,
    ):
        async with Stream(scene).running() as stream:
            await stream.goes_on(50)
            broker.pause()
            cut_at = time.monotonic()
            try:
                await stream.goes_on(50)
                # Killed between its commits and their publication: they wait in its outbox.
                assert await scene.unpublished() > 0
                await system.restart("exchange")
                await stream.goes_on(50)
                await asyncio.sleep(max(0.0, BROKER_CUT_SECONDS - (time.monotonic() - cut_at)))
            finally:
                broker.resume()
            await stream.goes_on(50)

            broker.stop()
            # Down longer than the relays' send timeout (the Tansu caveat in docs/events.md).
            await asyncio.sleep(4)
            broker.start()
            await stream.goes_on(100, timeout=120)
            exchanges = await stream.stop()
        await scene.ledger_equals_exchange(exchanges, timeout=180)
        assert await scene.unpublished() == 0
    # The exchange noticed the loss by itself (nobody re-published by hand).
    assert "broker_lost_events" in (data_dir / "exchange.log").read_text(errors="replace")


async def test_duplicated_reordered_and_malformed_events_change_nothing(
    system: System, infra: Infra, data_dir: Path
) -> None:
    """Every event a ledger reads, from the catalog's and the exchange's topics, delivered to a
    fresh ledger twice, out of order (the exchange's before the catalog's pole they depend on,
    requests interleaved differently, each request's own events in order, as Kafka keeps them
    by key) and mixed with malformed messages. The duplicates change nothing, the early events
    wait until they apply, the malformed go to the dead-letter topic, and this ledger ends equal
    to the exchange like the first."""
    async with open_scene(system, "Pôle rejoué") as scene:
        async with Stream(scene, clients=4).running() as stream:
            await stream.goes_on(40)
            exchanges = await stream.stop()
        await scene.ledger_equals_exchange(exchanges)
        prefix = system.settings["ledger"].kafka_topic_prefix
        read = {
            service: await read_until_quiet(system.settings["ledger"], topic_name(service, prefix))
            for service in ("catalog", "exchange")
        }

        replay_prefix = new_topic_prefix()
        async with settings_factory(infra, replay_prefix) as make_settings:
            replayed = (await make_settings("ledger")).model_copy(update={"http_port": free_port()})
            logs = data_dir / "replay"
            logs.mkdir()
            replay = System({"catalog": system.settings["catalog"], "ledger": replayed}, logs)
            replay.start("ledger")
            replayed_db = create_async_engine(replayed.database_url, pool_size=2)
            try:
                await replay.ready("ledger")
                log = logs / "ledger.log"

                async def waits_for_the_pole() -> bool:
                    return "event_waits" in log.read_text(errors="replace")

                malformed = await _deliver_disordered(
                    replayed, replay_prefix, read, before_the_catalog=waits_for_the_pole
                )
                await scene.ledger_equals_exchange(exchanges, ledger_db=replayed_db)
                dead = await read_topic(
                    replayed,
                    dead_letter_topic(topic_name("exchange", replay_prefix)),
                    expected=malformed,
                )
                assert len(dead) == malformed
            finally:
                await replayed_db.dispose()
                replay.kill("ledger")


async def _deliver_disordered(
    settings: ServiceSettings,
    prefix: str,
    read: dict[str, list[ConsumerRecord]],
    *,
    before_the_catalog: Callable[[], Awaitable[bool]],
) -> int:
    """Send the exchange's events then, once ``before_the_catalog`` (the ledger waiting for
    the pole they depend on), the catalog's: each twice, requests interleaved in a new order,
    with malformed messages among them; return how many were malformed."""
    shuffle = random.Random(7)  # noqa: S311 - an order for a test, reproducible
    by_key: dict[bytes, list[ConsumerRecord]] = {}
    for record in read["exchange"]:
        by_key.setdefault(record.key, []).append(record)
    queues = list(by_key.values())
    exchange_order: list[ConsumerRecord] = []
    while queues:
        queue = shuffle.choice(queues)
        exchange_order.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    malformed: list[tuple[bytes, list[tuple[str, bytes]]]] = [
        (b"{not json", [("ce_id", b"garbage-1")]),
        (
            json.dumps({"pole_id": "not a uuid"}).encode(),
            [(k, v) for k, v in exchange_order[0].headers if k != "ce_id"]
            + [("ce_id", b"garbage-2")],
        ),
        (exchange_order[0].value, []),  # no CloudEvent headers at all
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        exchange_topic = topic_name("exchange", prefix)
        for n, record in enumerate(exchange_order):
            for _twice in range(2):
                await producer.send_and_wait(
                    exchange_topic, record.value, key=record.key, headers=list(record.headers)
                )
            if n % 10 == 0 and malformed:
                value, headers = malformed.pop()
                await producer.send_and_wait(exchange_topic, value, key=record.key, headers=headers)
        await eventually(before_the_catalog, timeout=60)
        catalog_topic = topic_name("catalog", prefix)
        for record in read["catalog"]:
            for _twice in range(2):
                await producer.send_and_wait(
                    catalog_topic, record.value, key=record.key, headers=list(record.headers)
                )
    finally:
        await producer.stop()
    assert not malformed
    return 3
