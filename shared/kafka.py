"""Broker clients with the project's defaults, and a bound on every call.

aiokafka's ``send_and_wait``, ``start`` and ``stop`` can wait forever when the broker
is gone; every call here goes through :func:`bounded`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.events.registry import all_topics
from shared.logging import get_logger
from shared.settings import KernelSettings

T = TypeVar("T")
log = get_logger(__name__)


class BrokerTimeout(Exception):
    """A call to the broker took longer than its bound."""


async def bounded(call: Awaitable[T], seconds: float, what: str) -> T:
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
    # that races with completion, and a cancelled worker would then never stop.
    try:
        async with asyncio.timeout(seconds):
            return await call
    except TimeoutError as exc:
        raise BrokerTimeout(f"{what} took more than {seconds}s") from exc


def new_producer(settings: KernelSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=0,
        request_timeout_ms=int(settings.kafka_timeout_seconds * 1000),
        retry_backoff_ms=100,
    )


def new_consumer(settings: KernelSettings, *, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        # A new group, or one whose committed offsets vanished with an in-memory broker,
        # starts from the beginning: the consumers deduplicate by event id.
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=500,
        request_timeout_ms=int(max(settings.kafka_timeout_seconds, 5.0) * 1000 + 5000),
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        retry_backoff_ms=100,
    )


async def stop_quietly(client: AIOKafkaProducer | AIOKafkaConsumer | None, seconds: float) -> None:
    """Stop a client without ever hanging on a broker that is gone."""
    if client is None:
        return
    try:
        await bounded(client.stop(), seconds, "stopping a Kafka client")
    except Exception as exc:
        log.warning("kafka_client_stop_failed", error=repr(exc))


async def create_topics(settings: KernelSettings, *, topics: list[str] | None = None) -> list[str]:
    """Create the project's topics (idempotent); return those that were created."""
    wanted = topics if topics is not None else all_topics(settings.kafka_topic_prefix)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        request_timeout_ms=int(settings.kafka_timeout_seconds * 1000),
    )
    await bounded(admin.start(), settings.kafka_timeout_seconds, "connecting the admin client")
    try:
        existing = set(
            await bounded(admin.list_topics(), settings.kafka_timeout_seconds, "listing topics")
        )
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await bounded(
                    admin.create_topics(
                        [NewTopic(t, settings.kafka_topic_partitions, 1) for t in missing]
                    ),
                    settings.kafka_timeout_seconds,
                    "creating topics",
                )
        return missing
    finally:
        await bounded(admin.close(), settings.kafka_timeout_seconds, "closing the admin client")


async def broker_reachable(settings: KernelSettings) -> bool:
    """True when the broker answers a metadata request within a short bound."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=2000
    )
    try:
        await bounded(admin.start(), 2.0, "connecting the admin client")
        await bounded(admin.list_topics(), 2.0, "listing topics")
        return True
    except Exception:
        return False
    finally:
        try:
            await bounded(admin.close(), 2.0, "closing the admin client")
        except Exception as exc:
            log.debug("admin_close_failed", error=repr(exc))
