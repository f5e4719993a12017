"""Helpers for tests over the real servers: wait for a condition, read a topic, check progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.consumer import IdempotentConsumer
from shared.settings import KernelSettings

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 30.0, interval: float = 0.05
) -> T:
    """Call ``probe`` until it returns something truthy; after ``timeout``, fail with its value."""
    deadline = time.monotonic() + timeout
    last: T = await probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout}s (last value: {last!r})")
        await asyncio.sleep(interval)
        last = await probe()
    return last


async def end_offsets(settings: KernelSettings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(
            [TopicPartition(topic, p) for p in partitions]
        )
        return offsets
    finally:
        await consumer.stop()


async def unpublished(engine: AsyncEngine) -> int:
    """Events a service committed (its database: ``engine``) and has not handed to the broker."""
    async with engine.connect() as conn:
        count = await conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    return int(count or 0)


async def caught_up(consumer: IdempotentConsumer, settings: KernelSettings) -> bool:
    """True when ``consumer`` committed every message its topics hold right now."""
    for topic in consumer.topics:
        for tp, end in (await end_offsets(settings, topic)).items():
            if end > 0 and consumer.committed.get(tp, 0) < end:
                return False
    return True


async def read_topic(
    settings: KernelSettings, topic: str, *, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord]:
    """Read ``expected`` messages from the start of ``topic`` (no consumer group)."""
    consumer = await _reader(settings, topic)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


async def read_until_quiet(
    settings: KernelSettings, topic: str, *, quiet_seconds: float = 2.0
) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until nothing more comes for ``quiet_seconds`` (Tansu's
    end offsets can lag behind what it serves: they cannot say when all was read)."""
    consumer = await _reader(settings, topic)
    records: list[ConsumerRecord] = []
    try:
        last_news = time.monotonic()
        while time.monotonic() - last_news < quiet_seconds:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(messages)
            if batch:
                last_news = time.monotonic()
    finally:
        await consumer.stop()
    return records


async def _reader(settings: KernelSettings, topic: str) -> AIOKafkaConsumer:
    """A started consumer of ``topic`` from its start, in no group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    return consumer
