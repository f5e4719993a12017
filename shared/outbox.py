"""The outbox relay: publishes what the units of work wrote to the outbox, in order, once sent.

- Woken by PostgreSQL ``LISTEN/NOTIFY`` (an insert trigger on the outbox), so an event
  goes out as soon as its transaction commits; a slow safety poll covers a missed
  notification (for example while the listening connection was being re-opened).
- One relay per service publishes at a time (a session-level advisory lock), so the
  outbox order — and with it each aggregate's order on its Kafka partition — is kept.
  Other replicas stand by and take over when the lock is released.
- A batch is marked sent only after the broker acknowledged every message of it.
  While the broker is unreachable rows simply wait; every broker call is bounded.
- Published rows are kept for a retention period, so that a service's events can be
  re-published after an in-memory broker lost them (:func:`republish_since`).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import OUTBOX_NOTIFY_CHANNEL, asyncpg_dsn
from shared.events.envelope import from_structured_json, to_kafka
from shared.events.registry import dead_letter_topic, topic_name
from shared.kafka import bounded, create_topics, new_producer, stop_quietly
from shared.logging import get_logger
from shared.settings import ServiceSettings

log = get_logger(__name__)

SAFETY_POLL_SECONDS = 5.0
PURGE_EVERY_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 5.0

_CLAIM = text(
    "SELECT id, topic, key, cloudevent FROM outbox WHERE published_at IS NULL "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = text("UPDATE outbox SET published_at = now() WHERE id = ANY(:ids)")
_PURGE = text("DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < :before")


class OutboxRelay:
    def __init__(self, *, service: str, engine: AsyncEngine, settings: ServiceSettings) -> None:
        self.service = service
        self._engine = engine
        self._settings = settings
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._listener: asyncpg.Connection | None = None
        self._last_purge = 0.0
        self.is_leader = False
        self.published_total = 0
        self.failures_total = 0

    @property
    def _lock_key(self) -> int:
        return zlib.crc32(f"ptce-outbox-relay:{self.service}".encode())

    async def run(self) -> None:
        """Publish until cancelled; never gives up on the database or the broker."""
        backoff = 0.1
        try:
            while True:
                try:
                    await self._ensure_listener()
                    if not self.is_leader:
                        await self._sleep_or_wake(SAFETY_POLL_SECONDS)
                        continue
                    await self._ensure_producer()
                    sent = await self.publish_batch()
                    backoff = 0.1
                    await self._purge_if_due()
                    if sent < self._settings.outbox_batch_size:
                        await self._sleep_or_wake(SAFETY_POLL_SECONDS)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.failures_total += 1
                    log.warning("outbox_relay_retry", error=repr(exc), backoff_s=backoff)
                    await self._reset_producer()
                    await self._sleep_or_wake(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            await self._reset_producer()
            await self._close_listener()

    async def publish_batch(self) -> int:
        """Publish one batch of unpublished rows in outbox order; return how many were sent."""
        assert self._producer is not None
        timeout = self._settings.kafka_timeout_seconds
        async with self._engine.begin() as conn:
            rows = (await conn.execute(_CLAIM, {"limit": self._settings.outbox_batch_size})).all()
            if not rows:
                return 0
            futures = []
            for row in rows:
                key, value, headers = to_kafka(from_structured_json(row.cloudevent))
                futures.append(
                    await bounded(
                        self._producer.send(row.topic, value=value, key=key, headers=headers),
                        timeout,
                        "queueing an event",
                    )
                )
            await bounded(asyncio.gather(*futures), timeout, "publishing a batch")
            await conn.execute(_MARK_SENT, {"ids": [row.id for row in rows]})
        self.published_total += len(rows)
        return len(rows)

    async def _sleep_or_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            if not self.is_leader:
                self.is_leader = await self._listener.fetchval(
                    "SELECT pg_try_advisory_lock($1)", self._lock_key
                )
            return
        self.is_leader = False
        self._listener = await asyncpg.connect(asyncpg_dsn(self._settings.database_url), timeout=5)
        await self._listener.add_listener(OUTBOX_NOTIFY_CHANNEL, self._on_notify)
        self.is_leader = await self._listener.fetchval(
            "SELECT pg_try_advisory_lock($1)", self._lock_key
        )
        log.info("outbox_relay_listening", leader=self.is_leader)
        # Anything committed while nobody listened is picked up right away.
        self._wake.set()

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._listener.close()
        self._listener = None
        self.is_leader = False

    async def _ensure_producer(self) -> None:
        if self._producer is None:
            producer = new_producer(self._settings)
            try:
                await bounded(producer.start(), self._settings.kafka_timeout_seconds, "connecting")
            except BaseException:
                await stop_quietly(producer, self._settings.kafka_timeout_seconds)
                raise
            self._producer = producer
            await self._ensure_topic()

    async def _ensure_topic(self) -> None:
        """Create the service's topic before the first send of a new producer.

        A broker that lost its data (the embedded one, restarted) would otherwise create the
        topic itself on the first send, with its own partition count.
        """
        topic = topic_name(self.service, self._settings.kafka_topic_prefix)
        try:
            await create_topics(self._settings, topics=[topic, dead_letter_topic(topic)])
        except Exception as exc:
            # Not fatal: where topics are provisioned by operators, the client may not create.
            log.warning("outbox_topic_check_failed", topic=topic, error=repr(exc))

    async def _reset_producer(self) -> None:
        # A producer that timed out may still hold queued messages; a new one starts clean.
        # Whatever it sends late is a duplicate the consumers ignore.
        producer, self._producer = self._producer, None
        await stop_quietly(producer, self._settings.kafka_timeout_seconds)

    async def _purge_if_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        before = datetime.now(UTC) - timedelta(hours=self._settings.outbox_retention_hours)
        async with self._engine.begin() as conn:
            result = await conn.execute(_PURGE, {"before": before})
        log.info("outbox_purged", rows=result.rowcount)


async def republish_since(engine: AsyncEngine, since: datetime) -> int:
    """Mark the events created since ``since`` as unpublished; the relay sends them again.

    Unpublished rows are updated too, on purpose: a row the relay is sending right now is
    locked and still unpublished, and would be marked sent once its batch commits, though it
    may have gone to the broker that is being replaced. Matching it makes this update wait
    for that batch and then mark the row unpublished again.
    """
    async with engine.begin() as conn:
        result = await conn.execute(
            text("UPDATE outbox SET published_at = NULL WHERE created_at >= :since"),
            {"since": since},
        )
        await conn.execute(text(f"NOTIFY {OUTBOX_NOTIFY_CHANNEL}"))
    return int(result.rowcount)
