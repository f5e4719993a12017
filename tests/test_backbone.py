"""The event backbone over real servers: outbox, broker, idempotent consumer of another service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text

from catalog.models import Pole
from catalog.poles import RegisterPole, UpdatePole, register_pole, update_pole
from catalog.service import DEFINITION as CATALOG
from exchange.models import pole as exchange_pole
from exchange.service import DEFINITION as EXCHANGE
from ledger.models import pole as ledger_pole
from ledger.service import DEFINITION as LEDGER
from ptce.embedded import EmbeddedBroker, free_port
from ptce.testing.helpers import caught_up, eventually, read_topic, unpublished
from ptce.testing.plugin import Runtimes, SettingsFactory
from shared.consumer import ConsumerSpec, IdempotentConsumer, in_group
from shared.contracts.catalog import PoleRegistered
from shared.events.envelope import ReceivedEvent
from shared.events.registry import dead_letter_topic, topic_name
from shared.kafka import create_topics
from shared.logging import request_id_var
from shared.outbox import WATCH_SECONDS, republish_since
from shared.readmodels import pole_copy_handler
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings
from shared.uow import UnitOfWork


@dataclass
class PrivateSystem:
    """A catalog and an exchange on a broker of their own, that a test may cut or restart."""

    broker: EmbeddedBroker
    catalog: ServiceRuntime
    exchange: ServiceRuntime


@pytest.fixture
async def private_system(
    service_settings: SettingsFactory, runtimes: Runtimes, data_dir: Path
) -> AsyncIterator[PrivateSystem]:
    broker = EmbeddedBroker(free_port(), data_dir / "tansu.log")
    broker.start()
    try:
        catalog_settings = _on_broker(await service_settings("catalog"), broker)
        await create_topics(catalog_settings)
        yield PrivateSystem(
            broker=broker,
            catalog=await runtimes(CATALOG, catalog_settings),
            exchange=await runtimes(
                EXCHANGE, _on_broker(await service_settings("exchange"), broker)
            ),
        )
    finally:
        broker.stop()


async def pole_count(runtime: ServiceRuntime, pole_id: uuid.UUID) -> int:
    async with runtime.session_factory() as session:
        table = runtime.definition.metadata.tables["pole"]
        count = await session.scalar(
            select(func.count()).select_from(table).where(table.c.id == pole_id)
        )
        return int(count or 0)


async def test_state_change_and_its_event_reach_the_other_services(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    exchange = await runtimes(EXCHANGE, await service_settings("exchange"))
    ledger = await runtimes(LEDGER, await service_settings("ledger"))

    token = request_id_var.set("req-backbone-1")
    try:
        pole = await register_pole(catalog.uow(), RegisterPole(name="Pôle Sud Loire"))
    finally:
        request_id_var.reset(token)

    await eventually(lambda: pole_count(exchange, pole.id))
    await eventually(lambda: pole_count(ledger, pole.id))
    # The watchdog's view of group membership reads aiokafka internals: they are there.
    kafka_consumer = exchange.consumers[0]._consumer
    assert kafka_consumer is not None
    assert hasattr(kafka_consumer, "_coordinator")
    assert hasattr(kafka_consumer, "_subscription")
    assert in_group(kafka_consumer)
    async with exchange.session_factory() as session:
        row = (
            await session.execute(select(exchange_pole).where(exchange_pole.c.id == pole.id))
        ).one()
    assert (row.name, row.time_zone, row.currency, row.version) == (
        "Pôle Sud Loire",
        "Europe/Paris",
        "EUR",
        1,
    )
    assert await unpublished(catalog.engine) == 0
    # The request id of the action travelled with its event.
    async with catalog.engine.connect() as conn:
        stored = await conn.scalar(text("SELECT cloudevent FROM outbox"))
    assert stored["requestid"] == "req-backbone-1"
    assert stored["type"] == "ptce.catalog.pole.registered.v1"
    assert stored["source"] == "/catalog"

    # A later snapshot replaces the copy; its version says which is newer.
    async with catalog.uow() as uow:
        loaded = await uow.session.get(Pole, pole.id)
        assert loaded is not None
        update_pole(uow, loaded, UpdatePole(name="Pôle Sud Loire et Cher"))
        await uow.commit()

    async def renamed() -> bool:
        async with ledger.session_factory() as session:
            name = await session.scalar(
                select(ledger_pole.c.name).where(ledger_pole.c.id == pole.id)
            )
        return name == "Pôle Sud Loire et Cher"

    await eventually(renamed)


async def test_a_failed_transaction_publishes_nothing(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))

    async def change_that_fails_after_its_event() -> None:
        async with catalog.uow() as uow:
            uow.publish(
                PoleRegistered(
                    pole_id=uuid.uuid4(),
                    name="never",
                    time_zone="Europe/Paris",
                    currency="EUR",
                    version=1,
                    registered_at="2026-01-01T00:00:00Z",
                )
            )
            await uow.flush_events()
            raise RuntimeError("the state change failed after the event was written")

    with pytest.raises(RuntimeError):
        await change_that_fails_after_its_event()
    async with catalog.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 0


async def test_a_lingering_relay_publishes_what_was_committed_meanwhile_together(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    settings = await service_settings("catalog")
    catalog = await runtimes(CATALOG, settings.model_copy(update={"outbox_linger_ms": 1000}))
    await register_pole(catalog.uow(), RegisterPole(name="Pôle d'avant"))
    await eventually(lambda: _none_unpublished(catalog))

    for number in range(5):
        await register_pole(catalog.uow(), RegisterPole(name=f"Pôle {number}"))
    await eventually(lambda: _none_unpublished(catalog))

    async with catalog.engine.connect() as conn:
        publications = await conn.scalar(
            text(
                "SELECT count(DISTINCT published_at) FROM outbox"
                " WHERE id > (SELECT min(id) FROM outbox)"
            )
        )
    # One publication, so one produce request and one record batch per partition.
    assert publications == 1


async def test_a_consumer_that_stops_fetching_is_reported_then_rebuilt(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    quick = {"consumer_watchdog_interval_seconds": 0.2, "consumer_stall_seconds": 2.0}
    exchange = await runtimes(
        EXCHANGE, (await service_settings("exchange")).model_copy(update=quick)
    )
    before = await register_pole(catalog.uow(), RegisterPole(name="Pôle d'avant"))
    await eventually(lambda: pole_count(exchange, before.id))
    consumer = next(c for c in exchange.consumers if topic_name("catalog", "") in str(c.topics))
    check = f"consumer {consumer.spec.name}"
    assert (await exchange.readiness())[check] == "ok"

    # Its fetches stop (as when the broker answers them all empty): no error, only its
    # position, behind the partition's end, tells.
    kafka_consumer = consumer._consumer
    assert kafka_consumer is not None
    kafka_consumer.pause(*kafka_consumer.assignment())
    after = await register_pole(catalog.uow(), RegisterPole(name="Pôle d'après"))

    async def reported() -> str:
        return str((await exchange.readiness())[check])

    stalled = await eventually(lambda: _starting_with(reported, "stalled: "))
    assert "catalog.events[" in stalled
    # Rebuilt, it fetches again: the event is applied and the report clears. (Tansu lets the
    # rebuilt consumer back into its group some 20 s later.)
    await eventually(lambda: pole_count(exchange, after.id), timeout=90)
    await eventually(lambda: _starting_with(reported, "ok"))
    assert consumer.stalls_total >= 1


async def _starting_with(probe: Callable[[], Awaitable[str]], start: str) -> str:
    value = await probe()
    return value if value.startswith(start) else ""


async def test_duplicate_deliveries_change_nothing(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    exchange_settings = await service_settings("exchange")
    exchange = await runtimes(EXCHANGE, exchange_settings)
    consumer = exchange.consumers[0]

    pole = await register_pole(catalog.uow(), RegisterPole(name="Pôle des Deux Rives"))
    await eventually(lambda: pole_count(exchange, pole.id))
    assert consumer.applied_total == 1

    # The relay sends the same events again (as after a broker lost its data) ...
    since = (await _first_event_time(catalog)) - 1
    assert await republish_since(catalog.engine, _epoch(since)) == 1
    await eventually(lambda: _is(consumer.duplicates_total, 1))
    await eventually(lambda: caught_up(consumer, exchange_settings))

    assert consumer.applied_total == 1
    assert await pole_count(exchange, pole.id) == 1
    async with exchange.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM processed_event")) == 1


async def test_an_older_snapshot_never_overwrites_a_newer_one(
    service_settings: SettingsFactory,
) -> None:
    exchange = ServiceRuntime(EXCHANGE, await service_settings("exchange"))
    handler = pole_copy_handler(exchange_pole)
    pole_id = uuid.uuid4()
    try:
        for version, name in [(2, "Nouveau nom"), (1, "Ancien nom")]:
            event = _received(pole_id, version=version, name=name)
            async with exchange.uow() as uow:
                await handler(uow, event)
                await uow.commit()
        async with exchange.session_factory() as session:
            row = (
                await session.execute(select(exchange_pole).where(exchange_pole.c.id == pole_id))
            ).one()
        assert (row.version, row.name) == (2, "Nouveau nom")
    finally:
        await exchange.stop()


async def test_events_committed_while_the_broker_is_unreachable_are_delivered_after(
    private_system: PrivateSystem,
) -> None:
    broker, catalog, exchange = (
        private_system.broker,
        private_system.catalog,
        private_system.exchange,
    )
    first = await register_pole(catalog.uow(), RegisterPole(name="Avant la coupure"))
    await eventually(lambda: pole_count(exchange, first.id))

    broker.pause()
    try:
        during = [
            await register_pole(catalog.uow(), RegisterPole(name=f"Pendant la coupure {i}"))
            for i in range(3)
        ]
        await asyncio.sleep(3)
        # Committed, waiting in the outbox: the broker cannot take them.
        assert await unpublished(catalog.engine) == 3
        assert all([await pole_count(exchange, p.id) == 0 for p in during])
    finally:
        broker.resume()

    for pole in during:
        await eventually(partial(pole_count, exchange, pole.id), timeout=60)
    # A batch the broker took but acknowledged too late is sent again: the outbox drains.
    await eventually(lambda: _none_unpublished(catalog), timeout=30)
    assert exchange.consumers[0].applied_total == 4


async def test_a_broker_restarted_empty_loses_nothing_and_doubles_nothing(
    private_system: PrivateSystem, runtimes: Runtimes
) -> None:
    """The relay notices by itself that the broker lost what it had acknowledged, and sends
    again what the reading groups had not confirmed; nobody re-publishes by hand."""
    broker, catalog = private_system.broker, private_system.catalog
    exchange_settings = private_system.exchange.settings
    read = await register_pole(catalog.uow(), RegisterPole(name="Lu avant la panne"))
    await eventually(lambda: pole_count(private_system.exchange, read.id))
    # The exchange stops reading; an event is acknowledged by the broker but not yet read.
    await private_system.exchange.stop()
    sent = await register_pole(catalog.uow(), RegisterPole(name="Envoyé, pas encore lu"))
    await eventually(lambda: _none_unpublished(catalog))

    # The in-memory broker dies and comes back empty: topics, messages, offsets all gone.
    broker.stop()
    failures = catalog.relay.failures_total
    during = await register_pole(catalog.uow(), RegisterPole(name="Pendant la panne"))
    # The outage outlasts the relay's send timeout: the send is abandoned, not left in flight.
    # (Tansu acknowledges a batch left in flight across its restart, before the topic is
    # created, and then serves it inconsistently; Apache Kafka keeps its data anyway.)
    await eventually(lambda: _is_more(catalog.relay.failures_total, failures + 1), timeout=30)
    broker.start()
    after = await register_pole(catalog.uow(), RegisterPole(name="Après le redémarrage"))

    exchange = await runtimes(EXCHANGE, exchange_settings)
    for pole in (sent, during, after):
        await eventually(partial(pole_count, exchange, pole.id), timeout=90)
    assert catalog.relay.broker_losses_total >= 1
    # What the exchange had read and committed before the loss was not needed again; each
    # event took effect exactly once whatever was sent twice.
    assert await pole_count(exchange, read.id) == 1
    async with exchange.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM processed_event")) == 4


async def test_a_loss_of_events_nobody_had_read_is_noticed_without_a_new_send(
    private_system: PrivateSystem, runtimes: Runtimes
) -> None:
    """No group has committed on the catalog's topic yet, and the relay has nothing more to
    send after the broker came back empty: only the partitions' ends tell it, and it reads
    them by itself."""
    broker, catalog = private_system.broker, private_system.catalog
    exchange_settings = private_system.exchange.settings
    await private_system.exchange.stop()
    unread = [
        await register_pole(catalog.uow(), RegisterPole(name=f"Jamais lu {i}")) for i in range(3)
    ]
    await eventually(lambda: _none_unpublished(catalog))
    # The relay looks at the ends of the partitions it sent to, and looks again.
    await asyncio.sleep(2 * WATCH_SECONDS + 1)
    assert catalog.relay.broker_losses_total == 0

    broker.stop()
    broker.start()
    # Another service created the topics again: there, and empty.
    await create_topics(catalog.settings)

    await eventually(lambda: _is_more(catalog.relay.broker_losses_total, 0), timeout=30)
    exchange = await runtimes(EXCHANGE, exchange_settings)
    for pole in unread:
        await eventually(partial(pole_count, exchange, pole.id), timeout=60)


async def _none_unpublished(runtime: ServiceRuntime) -> bool:
    return await unpublished(runtime.engine) == 0


class SimulatedCrash(BaseException):
    """The process dies: nothing after this point runs, not even the offset commit."""


async def test_a_consumer_killed_before_committing_its_offset_does_not_apply_twice(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    exchange_settings = await service_settings("exchange")
    calls: list[str] = []
    base_handler = pole_copy_handler(exchange_pole)

    async def counting_handler(uow: UnitOfWork, event: ReceivedEvent) -> None:
        calls.append(event.id)
        await base_handler(uow, event)

    spec = ConsumerSpec(
        name="catalog-copy", handlers={PoleRegistered.event_spec.type: counting_handler}
    )
    exchange = ServiceRuntime(EXCHANGE, exchange_settings)

    async def crash(_event: ReceivedEvent) -> None:
        raise SimulatedCrash

    doomed = _consumer(exchange, spec, after_apply=crash)
    doomed_task = asyncio.create_task(doomed.run())
    try:
        pole = await register_pole(catalog.uow(), RegisterPole(name="Pôle du Val"))
        with pytest.raises(SimulatedCrash):
            await asyncio.wait_for(doomed_task, 60)
        assert calls == [calls[0]]
        assert await pole_count(exchange, pole.id) == 1
        assert doomed.committed == {}

        survivor = _consumer(exchange, spec)
        survivor_task = asyncio.create_task(survivor.run())
        try:
            await eventually(lambda: _is(survivor.duplicates_total, 1), timeout=60)
            await eventually(lambda: caught_up(survivor, exchange_settings))
        finally:
            survivor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await survivor_task
        assert len(calls) == 1
        assert survivor.applied_total == 0
        assert await pole_count(exchange, pole.id) == 1
    finally:
        await exchange.stop()


async def test_a_batch_is_applied_in_one_transaction_and_its_offsets_committed_when_idle(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    # Offsets committed only when the consumer is idle, or it stops: never by the interval.
    exchange_settings = (await service_settings("exchange")).model_copy(
        update={"consumer_commit_interval_seconds": 3600.0}
    )
    exchange = ServiceRuntime(EXCHANGE, exchange_settings)
    spec = ConsumerSpec(
        name="catalog-copy",
        handlers={PoleRegistered.event_spec.type: pole_copy_handler(exchange_pole)},
    )
    batches: list[int] = []
    first = _consumer(exchange, spec)
    apply_batch = first.apply_batch

    async def counted(work: list[Any]) -> list[ReceivedEvent]:
        batches.append(len(work))
        return await apply_batch(work)

    first.apply_batch = counted  # type: ignore[method-assign]
    poles = [
        await register_pole(catalog.uow(), RegisterPole(name=f"Pôle en lot {n}")) for n in range(6)
    ]

    async def all_sent() -> bool:
        return await unpublished(catalog.engine) == 0

    await eventually(all_sent)
    task = asyncio.create_task(first.run())
    try:
        await eventually(lambda: _is(first.applied_total, 6), timeout=60)
        # Committed although the interval never came: the consumer was idle.
        await eventually(lambda: caught_up(first, exchange_settings))
        # Published before the consumer started: they came in polls of several events.
        assert max(batches, default=0) > 1
        assert all([await pole_count(exchange, pole.id) == 1 for pole in poles])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await exchange.stop()


async def test_an_event_that_cannot_be_processed_goes_to_the_dead_letter_topic(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    exchange_settings = await service_settings("exchange")
    exchange = await runtimes(EXCHANGE, exchange_settings)
    topic = topic_name("catalog", exchange_settings.kafka_topic_prefix)
    good_id, invalid_id = uuid.uuid4(), uuid.uuid4()

    producer = AIOKafkaProducer(bootstrap_servers=exchange_settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        key = b"same-partition"
        await producer.send_and_wait(topic, b"{not json", key=key, headers=_headers("bad-1"))
        invalid = _payload(invalid_id, 1, "x") | {"currency": "EURO"}
        await producer.send_and_wait(
            topic, json.dumps(invalid).encode(), key=key, headers=_headers("bad-2")
        )
        await producer.send_and_wait(
            topic,
            json.dumps(_payload(good_id, 1, "Pôle après les erreurs")).encode(),
            key=key,
            headers=_headers("good-1"),
        )
    finally:
        await producer.stop()

    await eventually(lambda: pole_count(exchange, good_id))
    assert await pole_count(exchange, invalid_id) == 0
    dead = await read_topic(exchange_settings, dead_letter_topic(topic), expected=2)
    reasons = {dict(m.headers)["ce_id"]: dict(m.headers)["dlq_reason"].decode() for m in dead}
    assert set(reasons) == {b"bad-1", b"bad-2"}
    assert reasons[b"bad-1"].startswith("malformed")
    assert "currency" in reasons[b"bad-2"]
    assert exchange.consumers[0].dead_lettered_total == 2


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_bounded_retries(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    catalog = await runtimes(CATALOG, await service_settings("catalog"))
    exchange_settings = await service_settings("exchange")
    exchange = ServiceRuntime(EXCHANGE, exchange_settings)
    attempts: list[str] = []
    base_handler = pole_copy_handler(exchange_pole)

    async def fails_for_one_pole(uow: UnitOfWork, event: ReceivedEvent) -> None:
        assert isinstance(event.payload, PoleRegistered)
        if event.payload.name == "Pôle maudit":
            attempts.append(event.id)
            raise ValueError("this pole cannot be copied")
        await base_handler(uow, event)

    spec = ConsumerSpec(
        name="catalog-copy", handlers={PoleRegistered.event_spec.type: fails_for_one_pole}
    )
    consumer = _consumer(exchange, spec)
    task = asyncio.create_task(consumer.run())
    try:
        cursed = await register_pole(catalog.uow(), RegisterPole(name="Pôle maudit"))
        fine = await register_pole(catalog.uow(), RegisterPole(name="Pôle serein"))
        await eventually(lambda: pole_count(exchange, fine.id))
        await eventually(lambda: _is(consumer.dead_lettered_total, 1))
        assert len(attempts) == exchange_settings.consumer_max_attempts
        assert await pole_count(exchange, cursed.id) == 0
        dead = await read_topic(
            exchange_settings,
            dead_letter_topic(topic_name("catalog", exchange_settings.kafka_topic_prefix)),
            expected=1,
        )
        assert [dict(m.headers)["dlq_reason"] for m in dead] == [
            b"ValueError: this pole cannot be copied"
        ]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await exchange.stop()


# --- helpers ---------------------------------------------------------------------------


def _consumer(runtime: ServiceRuntime, spec: ConsumerSpec, **kwargs: object) -> IdempotentConsumer:
    return IdempotentConsumer(
        service=runtime.name,
        spec=spec,
        unit_of_work=runtime.uow,
        processed_event=runtime.definition.processed_event,
        settings=runtime.settings,
        **kwargs,  # type: ignore[arg-type]
    )


def _on_broker(settings: ServiceSettings, broker: EmbeddedBroker) -> ServiceSettings:
    # Short timeouts, so that an outage outlasts them and a stuck consumer is rebuilt quickly.
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": broker.bootstrap_servers,
            "kafka_timeout_seconds": 2.0,
            "consumer_rejoin_timeout_seconds": 10.0,
        }
    )


async def _is(value: int, expected: int) -> bool:
    return value == expected


async def _is_more(value: int, than: int) -> bool:
    return value > than


async def _first_event_time(runtime: ServiceRuntime) -> float:
    async with runtime.engine.connect() as conn:
        epoch = await conn.scalar(text("SELECT extract(epoch FROM min(created_at)) FROM outbox"))
    return float(epoch)


def _epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _payload(pole_id: uuid.UUID, version: int, name: str) -> dict[str, object]:
    return {
        "pole_id": str(pole_id),
        "name": name,
        "time_zone": "Europe/Paris",
        "currency": "EUR",
        "version": version,
        "registered_at": "2026-11-23T10:00:00Z",
    }


def _received(pole_id: uuid.UUID, *, version: int, name: str) -> ReceivedEvent:
    data = _payload(pole_id, version, name)
    return ReceivedEvent(
        id=str(uuid.uuid4()),
        source="/catalog",
        type=PoleRegistered.event_spec.type,
        subject=str(pole_id),
        time=None,
        request_id=None,
        data=data,
        payload=PoleRegistered.model_validate(data),
    )


def _headers(event_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_id", event_id.encode()),
        ("ce_source", b"/catalog"),
        ("ce_type", PoleRegistered.event_spec.type.encode()),
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/json"),
    ]
