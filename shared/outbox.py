"""The outbox relay: publishes what the units of work wrote to the outbox, in order, once sent.

- Woken by PostgreSQL ``LISTEN/NOTIFY`` (an insert trigger on the outbox), so an event
  goes out as soon as its transaction commits; a slow safety poll covers a missed
  notification (for example while the listening connection was being re-opened).
- One relay per service publishes at a time (a session-level advisory lock), so the
  outbox order — and with it each aggregate's order on its Kafka partition — is kept.
  Other replicas stand by and take over when the lock is released.
- A batch is marked sent only after the broker acknowledged every message of it.
  While the broker is unreachable rows simply wait; every broker call is bounded.
- Published rows are kept for a retention period, with the partition and offset the broker
  gave them. The relay notices a broker that lost its data (restarted empty, as the
  embedded one does): its topic missing or the partitions it had sent to empty when a new
  producer starts, a send acknowledged at an offset it had already seen acknowledged, a
  consumer group reading its topic whose committed offset fell back, or, where no group has
  committed, a partition it had sent to whose end fell back or stayed at nothing. It
  then sends again what the consumer groups reading its topic had not confirmed (committed
  past), in outbox order; consumers ignore what they had already applied.
  (:func:`republish_since` re-sends everything since a time: the operator's tool.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import OUTBOX_NOTIFY_CHANNEL, asyncpg_dsn
from shared.events.envelope import from_structured_json, to_kafka
from shared.events.registry import consumer_groups_of, dead_letter_topic, topic_name
from shared.kafka import bounded, create_topics, new_producer, stop_quietly
from shared.logging import get_logger
from shared.settings import ServiceSettings

log = get_logger(__name__)

SAFETY_POLL_SECONDS = 5.0
WATCH_SECONDS = 2.0
PURGE_EVERY_SECONDS = 600.0
MAX_BACKOFF_SECONDS = 5.0

_CLAIM = text(
    "SELECT id, topic, key, cloudevent FROM outbox WHERE published_at IS NULL "
    "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
_MARK_SENT = text(
    "UPDATE outbox SET published_at = now(), kafka_partition = sent.kafka_partition, "
    "kafka_offset = sent.kafka_offset FROM unnest(CAST(:ids AS bigint[]), "
    "CAST(:partitions AS integer[]), CAST(:offsets AS bigint[])) "
    "AS sent(id, kafka_partition, kafka_offset) WHERE outbox.id = sent.id"
)
_LAST_ACKNOWLEDGED = text(
    "SELECT kafka_partition, max(kafka_offset) FROM outbox "
    "WHERE topic = :topic AND kafka_offset IS NOT NULL GROUP BY kafka_partition"
)
# Sent again: what no longer is on the broker and a group had not confirmed. The positions of
# the other rows belong to the lost log: forgotten, so that they are never compared with the
# new log's.
_SEND_AGAIN = text(
    "UPDATE outbox SET published_at = NULL WHERE topic = :topic AND published_at IS NOT NULL "
    "AND kafka_offset >= COALESCE((CAST(:confirmed AS jsonb) ->> kafka_partition::text)::bigint, 0)"
)
_FORGET_POSITIONS = text(
    "UPDATE outbox SET kafka_partition = NULL, kafka_offset = NULL "
    "WHERE topic = :topic AND kafka_offset IS NOT NULL"
)
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
        self._watch = BrokerWatch(service, settings)
        self._loss: BrokerLostEvents | None = None
        self.is_leader = False
        self.published_total = 0
        self.failures_total = 0
        self.broker_losses_total = 0

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
                    if self._loss is not None and self.is_leader:
                        await self._send_again(self._loss)
                        self._loss = None
                    if not self.is_leader:
                        self._watch.forget()
                        await self._sleep_or_wake(SAFETY_POLL_SECONDS)
                        continue
                    await self._watch.load(self._engine)
                    await self._ensure_producer()
                    await self._watch.check()
                    sent = await self.publish_batch()
                    backoff = 0.1
                    await self._purge_if_due()
                    if sent < self._settings.outbox_batch_size:
                        await self._sleep_or_wake(WATCH_SECONDS)
                        await self._linger()
                except asyncio.CancelledError:
                    raise
                except BrokerLostEvents as lost:
                    # Handled at the top of the loop, where a failure is retried like others.
                    self._loss = lost
                except Exception as exc:
                    self.failures_total += 1
                    log.warning("outbox_relay_retry", error=repr(exc), backoff_s=backoff)
                    await self._reset_producer()
                    await self._sleep_or_wake(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            await self._reset_producer()
            await self._watch.close()
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
            sent: list[RecordMetadata] = await bounded(
                asyncio.gather(*futures), timeout, "publishing a batch"
            )
            # Raised before the rows are marked: they stay unpublished and go again after
            # the older events the loss calls back, in outbox order.
            self._watch.acknowledged(sent)
            await conn.execute(
                _MARK_SENT,
                {
                    "ids": [row.id for row in rows],
                    "partitions": [metadata.partition for metadata in sent],
                    "offsets": [metadata.offset for metadata in sent],
                },
            )
        self.published_total += len(rows)
        return len(rows)

    async def _send_again(self, lost: BrokerLostEvents) -> None:
        """Mark for sending again what the broker lost before the groups confirmed it."""
        self.broker_losses_total += 1
        topic = topic_name(self.service, self._settings.kafka_topic_prefix)
        confirmed = json.dumps({str(p): offset for p, offset in lost.confirmed.items()})
        async with self._engine.begin() as conn:
            again = await conn.execute(_SEND_AGAIN, {"topic": topic, "confirmed": confirmed})
            await conn.execute(_FORGET_POSITIONS, {"topic": topic})
        log.warning("broker_lost_events", reason=str(lost), sent_again=again.rowcount)
        self._watch.forget()
        # A new producer: it creates the topic again before its first send.
        await self._reset_producer()
        self._wake.set()

    async def _sleep_or_wake(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        self._wake.clear()

    async def _linger(self) -> None:
        # Each publication is a produce request and a record batch per partition; on the
        # embedded broker every batch held makes the later ones cost more (docs/events.md).
        if self._settings.outbox_linger_ms:
            await asyncio.sleep(self._settings.outbox_linger_ms / 1000)

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
            created = await self._ensure_topic()
            await self._watch.before_first_send(topic_created=self._watch.topic in created)

    async def _ensure_topic(self) -> list[str]:
        """Create the service's topic before the first send of a new producer; return the
        topics that had to be created.

        A broker that lost its data (the embedded one, restarted) would otherwise create the
        topic itself on the first send, with its own partition count.
        """
        topic = topic_name(self.service, self._settings.kafka_topic_prefix)
        try:
            return await create_topics(self._settings, topics=[topic, dead_letter_topic(topic)])
        except Exception as exc:
            # Not fatal: where topics are provisioned by operators, the client may not create.
            log.warning("outbox_topic_check_failed", topic=topic, error=repr(exc))
            return []

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


class BrokerLostEvents(Exception):
    """The broker no longer holds events it acknowledged (restarted empty, or lost a log).

    ``confirmed``: by partition, the lowest offset a reading group had committed (what
    every group had surely applied is below it).
    """

    def __init__(self, reason: str, confirmed: dict[int, int]) -> None:
        super().__init__(reason)
        self.confirmed = confirmed


class BrokerWatch:
    """What the relay knows of its topic on the broker, to notice when the broker lost it.

    Offsets in a Kafka partition only grow, and so does a group's committed offset: seeing
    one fall back means the broker lost its data. What the relay remembers is the highest
    offset acknowledged per partition (kept in the outbox rows, so a new leader knows it)
    and the offsets the reading groups had committed when last looked at (in memory: a new
    leader, not knowing them, sends again everything still retained after a loss).
    """

    def __init__(self, service: str, settings: ServiceSettings) -> None:
        self._settings = settings
        self.topic = topic_name(service, settings.kafka_topic_prefix)
        self.groups = consumer_groups_of(service, settings.kafka_topic_prefix)
        self.partitions = [
            TopicPartition(self.topic, p) for p in range(settings.kafka_topic_partitions)
        ]
        self._acknowledged: dict[int, int] | None = None
        self._committed: dict[tuple[str, int], int] = {}
        # For the partitions no group guards (none committed on them): each one's end as last
        # read, and which of them had an acknowledged send at the last look.
        self._ends: dict[int, int] = {}
        self._sent_to: set[int] = set()
        self._last_check = 0.0
        self._admin: AIOKafkaAdminClient | None = None
        self._reader: AIOKafkaConsumer | None = None

    def forget(self) -> None:
        self._acknowledged = None
        self._committed.clear()
        self._ends.clear()
        self._sent_to.clear()

    async def load(self, engine: AsyncEngine) -> None:
        if self._acknowledged is not None:
            return
        async with engine.connect() as conn:
            rows = (await conn.execute(_LAST_ACKNOWLEDGED, {"topic": self.topic})).all()
        self._acknowledged = {int(p): int(offset) for p, offset in rows}

    def confirmed(self) -> dict[int, int]:
        """By partition, the offset below which every reading group had committed."""
        lowest: dict[int, int] = {}
        for tp in self.partitions:
            seen = [self._committed.get((group, tp.partition), 0) for group in self.groups]
            lowest[tp.partition] = max(min(seen, default=0), 0)
        return lowest

    def acknowledged(self, sent: list[RecordMetadata]) -> None:
        assert self._acknowledged is not None
        known = self._acknowledged
        for metadata in sent:
            if metadata.topic != self.topic:
                continue
            if metadata.offset <= known.get(metadata.partition, -1):
                raise BrokerLostEvents(
                    f"{self.topic}[{metadata.partition}] acknowledged at {metadata.offset}, "
                    f"after {known[metadata.partition]}",
                    self.confirmed(),
                )
        for metadata in sent:
            if metadata.topic == self.topic:
                known[metadata.partition] = max(metadata.offset, known.get(metadata.partition, -1))

    async def before_first_send(self, *, topic_created: bool) -> None:
        """A new producer (at start, or after the broker failed): the broker must still hold
        the partitions this relay had sent to. A restarted empty broker has no topic, or
        partitions that are empty; the readers' offsets may not tell, if the relay never saw
        them commit, nor the next acks, if they go to partitions it had not used."""
        assert self._acknowledged is not None
        used = sorted(p for p, offset in self._acknowledged.items() if offset >= 0)
        if not used:
            return
        if topic_created:
            raise BrokerLostEvents(f"{self.topic} had to be created again", self.confirmed())
        try:
            ends = await self._read_ends(used)
        except Exception as exc:
            log.info("broker_watch_skipped", topic=self.topic, error=repr(exc))
            await self.close()
            return
        # Empty, not merely behind: Tansu's ends can lag a few offsets behind its acks.
        emptied = [p for p, end in ends.items() if end == 0]
        if emptied:
            raise BrokerLostEvents(
                f"{self.topic} partitions {emptied} are empty; offsets up to "
                f"{[self._acknowledged[p] for p in emptied]} were acknowledged",
                self.confirmed(),
            )

    async def check(self) -> None:
        """Every few seconds: the committed offsets of the groups that read the topic, and
        the ends of the partitions sent to that no group guards by its commits.

        A group's offsets are the cheaper sign (Tansu reads a partition's end in time
        proportional to the batches it holds) and the surer one (its ends can lag behind
        what it acknowledged). But a partition no group has committed on (nobody read it
        yet, or the topic has no reader) shows a loss only by its end: fallen back, or
        still nothing a whole look after a send was acknowledged.
        """
        now = asyncio.get_running_loop().time()
        if now - self._last_check < WATCH_SECONDS:
            return
        self._last_check = now
        try:
            committed = await self._read_committed()
            unguarded = self._unguarded(committed)
            topic_gone = bool(unguarded) and self.topic not in await self._list_topics()
            ends = await self._read_ends(unguarded) if unguarded and not topic_gone else {}
        except Exception as exc:
            # The broker is unreachable or busy: the sends will tell, and so will the next look.
            log.info("broker_watch_skipped", topic=self.topic, error=repr(exc))
            await self.close()
            return
        for key, offset in committed.items():
            before = self._committed.get(key, -1)
            if offset < before:
                raise BrokerLostEvents(
                    f"{key[0]} committed {before} on {self.topic}[{key[1]}], now {offset}",
                    self.confirmed(),
                )
        self._committed.update(committed)
        if topic_gone:
            raise BrokerLostEvents(
                f"{self.topic} is gone; offsets up to "
                f"{[self._acknowledged_at(p) for p in unguarded]} were acknowledged",
                self.confirmed(),
            )
        for partition, end in ends.items():
            before = self._ends.get(partition, 0)
            if end < before or (end == 0 and partition in self._sent_to):
                raise BrokerLostEvents(
                    f"{self.topic}[{partition}] ends at {end}, after {before}; offsets up to "
                    f"{self._acknowledged_at(partition)} were acknowledged",
                    self.confirmed(),
                )
            self._ends[partition] = end
        self._sent_to = set(unguarded)

    def _unguarded(self, committed: dict[tuple[str, int], int]) -> list[int]:
        """Partitions this relay had sends acknowledged on that no group committed on."""
        assert self._acknowledged is not None
        return sorted(
            partition
            for partition, offset in self._acknowledged.items()
            if offset >= 0
            and not any(committed.get((group, partition), -1) >= 0 for group in self.groups)
        )

    def _acknowledged_at(self, partition: int) -> int:
        assert self._acknowledged is not None
        return self._acknowledged.get(partition, -1)

    async def _list_topics(self) -> list[str]:
        admin = await self._admin_client()
        topics: list[str] = await bounded(
            admin.list_topics(), self._settings.kafka_timeout_seconds, "listing the topics"
        )
        return topics

    async def _read_ends(self, partitions: list[int]) -> dict[int, int]:
        seconds = self._settings.kafka_timeout_seconds
        if self._reader is None:
            reader = AIOKafkaConsumer(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                group_id=None,
                request_timeout_ms=int(seconds * 1000),
            )
            self._reader = reader
            await bounded(reader.start(), seconds, "connecting the offsets reader")
        ends = await bounded(
            self._reader.end_offsets([TopicPartition(self.topic, p) for p in partitions]),
            seconds,
            "reading the ends",
        )
        return {tp.partition: int(end) for tp, end in ends.items()}

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            seconds = self._settings.kafka_timeout_seconds
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                request_timeout_ms=int(seconds * 1000),
            )
            self._admin = admin
            await bounded(admin.start(), seconds, "connecting the admin client")
        return self._admin

    async def _read_committed(self) -> dict[tuple[str, int], int]:
        seconds = self._settings.kafka_timeout_seconds
        admin = await self._admin_client()
        committed: dict[tuple[str, int], int] = {}
        for group in self.groups:
            found = await bounded(
                admin.list_consumer_group_offsets(group, partitions=self.partitions),
                seconds,
                "reading a group's offsets",
            )
            for tp, position in found.items():
                # -1: nothing committed (a group the broker forgot reads as one that never
                # committed: lower than what it had, which is how the loss shows).
                committed[(group, tp.partition)] = max(position.offset, -1)
        return committed

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        reader, self._reader = self._reader, None
        if admin is not None:
            try:
                await bounded(admin.close(), self._settings.kafka_timeout_seconds, "closing")
            except Exception as exc:
                log.info("admin_close_failed", error=repr(exc))
        await stop_quietly(reader, self._settings.kafka_timeout_seconds)
