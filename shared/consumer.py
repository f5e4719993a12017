"""The idempotent consumer: each event applied once, in its own transaction,
whatever Kafka redelivers.

For each batch of messages a poll returns, in partition order:
1. parse each as a CloudEvent of a known type (a malformed message goes straight to
   ``<topic>.dlq``; an event of a type this consumer has no handler for is skipped);
2. in one database transaction (a unit of work), record each event's (source, id) in
   ``processed_event`` — a duplicate finds it there and changes nothing — and apply the
   handlers, in order; the events the handlers publish reach the outbox in that same
   transaction. Should anything in the batch fail, the transaction is rolled back and the
   batch is applied again one event per transaction, as below, so that one bad event
   cannot hold back or take down the others;
3. only after that commit, commit the Kafka offsets (manual commits), at most every
   ``CONSUMER_COMMIT_INTERVAL_SECONDS`` and whenever the consumer is idle: an offset commit
   costs the broker and the consumer a round trip or two, and a restart that re-reads a
   fraction of a second of events only finds duplicates. Before partitions move, a rebalance
   listener waits for the batch in progress and commits what is pending for them.

One transaction per batch rather than per event is what lets a consumer keep up with a
busy topic: one commit, and whatever a handler defers to the commit (the ledger's postings
take the pole's chain head once) done once for the batch.

A handler that fails is retried with exponential back-off a bounded number of times,
then the message goes to the dead-letter topic and the partition goes on. A database
that is unreachable is not the event's fault, nor is an event that arrived before a fact
it depends on (``NotApplicableYet``): those are retried without bound, so that an outage
or a reordering never sends good events to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.sql.dml import ReturningInsert

from shared.db import as_arrays, bulk_insert
from shared.events.envelope import MalformedEvent, ReceivedEvent, from_kafka
from shared.events.registry import dead_letter_topic, topic_name
from shared.kafka import bounded, new_consumer, new_producer, stop_quietly
from shared.logging import get_logger, request_id_var
from shared.settings import KernelSettings
from shared.uow import UnitOfWork

log = get_logger(__name__)

Handler = Callable[[UnitOfWork, ReceivedEvent], Awaitable[None]]
AfterApply = Callable[[ReceivedEvent], Awaitable[None]]
MAX_INFRA_BACKOFF_SECONDS = 5.0
FINAL_COMMIT_SECONDS = 1.0


class NotApplicableYet(RuntimeError):
    """Raised by a handler whose event depends on a fact that has not arrived yet (another
    partition's event): retried, without bound, until it applies; never dead-lettered."""


class HandlerFailed(RuntimeError):
    """The handler of ``item`` failed a batch (its error is the ``__cause__``)."""

    def __init__(self, item: Work) -> None:
        super().__init__(item.event.id)
        self.item = item


class ConsumerStuck(RuntimeError):
    """The consumer stopped making progress for a reason a fresh consumer does not have."""


class ConsumerStalled(ConsumerStuck):
    """A partition's position stayed behind its end: events there, none fetched."""


class BrokerLostOffsets(ConsumerStuck):
    """The broker no longer holds offsets this consumer committed: it lost its state."""


@dataclass(frozen=True)
class Work:
    """An event to apply, with the message it came in and its handler."""

    message: ConsumerRecord
    event: ReceivedEvent
    handler: Handler


_PROCESSED_COLUMNS = ("source", "event_id", "event_type", "topic", "consumer", "outcome")


@cache
def _record_events(processed_event: Table) -> ReturningInsert[str, str]:
    """Record events as processed; RETURNING those that were not already."""
    return (
        bulk_insert(processed_event, _PROCESSED_COLUMNS)
        .on_conflict_do_nothing()
        .returning(processed_event.c.source, processed_event.c.event_id)
    )


@dataclass(frozen=True)
class ConsumerSpec:
    """What a service consumes: a name (its consumer group) and a handler per event type."""

    name: str
    handlers: Mapping[str, Handler]

    def source_services(self) -> set[str]:
        return {event_type.split(".")[1] for event_type in self.handlers}


def in_group(consumer: AIOKafkaConsumer) -> bool:
    """Whether the consumer knows its coordinator and holds a settled assignment.

    aiokafka exposes no public state for this, so it reads two private attributes (a test
    checks them on the pinned version). Should they disappear, it answers True: a watchdog
    that cannot tell must not rebuild a healthy consumer. An idle replica, one more than the
    partitions, is in its group with an empty assignment: it counts as in.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    subscription = getattr(consumer, "_subscription", None)
    if coordinator is None or subscription is None:
        return True
    return coordinator.coordinator_id is not None and not subscription.reassignment_in_progress


class _Watchdog:
    """Notices, while polls come back empty, a consumer aiokafka will not get going again.

    A broker restarted empty (the embedded one keeps nothing) contradicts what the consumer
    holds, and aiokafka does not always recover by itself: it can stay out of its group
    (member id not recognised, coordinator marked dead), or keep fetch positions into logs
    that no longer exist. A stuck consumer is rebuilt: it starts again from the committed
    offsets (the earliest when the broker lost them) and ignores what it sees twice.
    """

    def __init__(self, owner: IdempotentConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer
        self.settings = owner.settings
        self._clock = asyncio.get_running_loop().time
        self._last_check = self._last_in_group = self._last_progress_check = self._clock()

    def progressed(self) -> None:
        self._last_check = self._last_in_group = self._clock()

    async def check_progress(self) -> None:
        """Every interval, busy or idle: rebuild the consumer if a partition's position has
        stayed behind its end for ``CONSUMER_STALL_SECONDS``.

        A consumer that fetches nothing from a partition with events to read gets no error
        to react to: a fetch session or position aiokafka does not resume, or a broker that
        answers every fetch empty (the embedded one did, holding 50,000 batches a partition:
        docs/events.md). Only its position tells.
        """
        now = self._clock()
        interval = self.settings.consumer_watchdog_interval_seconds
        since_last = now - self._last_progress_check
        if since_last < interval:
            return
        self._last_progress_check = now
        try:
            # Long since the last check, the loop was busy applying (waiting for a fact not
            # yet arrived, retrying through an outage): a position unmoved meanwhile is no
            # stall, the count starts again.
            await self._owner.check_progress(self._consumer, now, busy=since_last > 3 * interval)
        except ConsumerStuck:
            raise
        except Exception as exc:
            log.info("consumer_watchdog_skipped", consumer=self._owner.group_id, error=repr(exc))

    async def check(self) -> None:
        now = self._clock()
        if now - self._last_check < self.settings.consumer_watchdog_interval_seconds:
            return
        self._last_check = now
        if not in_group(self._consumer):
            absent = now - self._last_in_group
            if absent > self.settings.consumer_rejoin_timeout_seconds:
                raise ConsumerStuck(f"out of group {self._owner.group_id} for {absent:.0f} s")
            return
        self._last_in_group = now
        try:
            await self._owner.ensure_offsets_kept(
                self._consumer, sorted(self._consumer.assignment())
            )
        except ConsumerStuck:
            raise
        except Exception as exc:
            log.info("consumer_watchdog_skipped", consumer=self._owner.group_id, error=repr(exc))


def _is_infrastructure_error(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | OSError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _waits(exc: BaseException | None) -> bool:
    """Whether a failure is retried without bound: not the event's fault."""
    return isinstance(exc, NotApplicableYet) or (exc is not None and _is_infrastructure_error(exc))


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IdempotentConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in progress: offsets are committed before the partitions move.
        async with self._owner.processing:
            await self._owner.commit_pending(only=set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", consumer=self._owner.group_id, partitions=len(assigned))
        self._owner.assigned.set()


class IdempotentConsumer:
    def __init__(
        self,
        *,
        service: str,
        spec: ConsumerSpec,
        unit_of_work: Callable[[], UnitOfWork],
        processed_event: Table,
        settings: KernelSettings,
        after_apply: AfterApply | None = None,
        group_suffix: str = "",
    ) -> None:
        """``group_suffix`` names another consumer group on the same topics: a new group
        starts from the earliest offset, which is how a copy is rebuilt from scratch."""
        self.service = service
        self.spec = spec
        self._unit_of_work = unit_of_work
        self._processed = processed_event
        self.settings = settings
        self._after_apply = after_apply
        prefix = settings.kafka_topic_prefix
        self.group_id = f"{prefix}{service}.{spec.name}{group_suffix}"
        self.topics = sorted(topic_name(s, prefix) for s in spec.source_services())
        self.processing = asyncio.Lock()
        self.assigned = asyncio.Event()
        self.applied_total = 0
        self.duplicates_total = 0
        self.dead_lettered_total = 0
        # Offsets this consumer committed, by partition: how far it has surely got.
        self.committed: dict[TopicPartition, int] = {}
        # Offsets applied but not committed yet; those of partitions that move are dropped.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        # By partition: the position last seen behind the partition's end, and since when.
        self._behind: dict[TopicPartition, tuple[int, float]] = {}
        self._stalled_at: dict[TopicPartition, int] = {}
        self.stalled: str | None = None
        """While stalled: where, and how long (``/readyz`` reports it)."""
        self.stalls_total = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq_producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        """Consume until cancelled; reconnects by itself when the broker goes away."""
        backoff = 0.2
        try:
            while True:
                try:
                    await self._start()
                    backoff = 0.2
                    await self._loop()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("consumer_restart", consumer=self.group_id, error=repr(exc))
                    self._uncommitted.clear()  # positions a rebuilt consumer must not commit
                    await self._stop()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_INFRA_BACKOFF_SECONDS)
        finally:
            with contextlib.suppress(Exception):  # best effort: what is not committed is re-read
                async with asyncio.timeout(FINAL_COMMIT_SECONDS):
                    await self.commit_pending()
            await self._stop()

    async def _start(self) -> None:
        if self._consumer is not None:
            return
        consumer = new_consumer(self.settings, group_id=self.group_id)
        try:
            await bounded(consumer.start(), self.settings.kafka_timeout_seconds, "connecting")
        except BaseException:
            await stop_quietly(consumer, self.settings.kafka_timeout_seconds)
            raise
        consumer.subscribe(self.topics, listener=_Rebalance(self))
        self._consumer = consumer

    async def _stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._dlq_producer = self._dlq_producer, None
        self.assigned.clear()
        await stop_quietly(consumer, self.settings.kafka_timeout_seconds)
        await stop_quietly(producer, self.settings.kafka_timeout_seconds)

    async def _loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        watchdog = _Watchdog(self, consumer)
        clock = asyncio.get_running_loop().time
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                async with self.processing:
                    await self.commit_pending()
                await watchdog.check()
                await watchdog.check_progress()
                continue
            async with self.processing:
                await self._handle_batch([m for messages in batch.values() for m in messages])
                for tp, messages in batch.items():
                    self._uncommitted[tp] = messages[-1].offset + 1
                if clock() - self._last_commit >= self.settings.consumer_commit_interval_seconds:
                    await self.commit_pending()
            watchdog.progressed()
            await watchdog.check_progress()

    async def check_progress(
        self, consumer: AIOKafkaConsumer, now: float, *, busy: bool = False
    ) -> None:
        """Raise ConsumerStalled when a partition's position has not moved, behind its end,
        for ``CONSUMER_STALL_SECONDS`` of polling; clear ``stalled`` once each such position
        moved. ``busy``: the consumer was not polling since the last check."""
        timeout = self.settings.kafka_timeout_seconds
        partitions = sorted(consumer.assignment())
        if not partitions:  # joining its group (a rebuilt consumer): nothing to judge yet
            return
        ends = await bounded(consumer.end_offsets(partitions), timeout, "reading ends")
        positions = {
            tp: await bounded(consumer.position(tp), timeout, "reading a position")
            for tp in partitions
        }
        for tp, position in list(self._stalled_at.items()):
            if positions.get(tp) != position:
                del self._stalled_at[tp]
        stalled = []
        for tp, position in positions.items():
            seen = self._behind.get(tp)
            if position >= ends[tp]:
                self._behind.pop(tp, None)
            elif seen is None or seen[0] != position or busy:
                self._behind[tp] = (position, now)
            elif now - seen[1] >= self.settings.consumer_stall_seconds:
                stalled.append(f"{tp.topic}[{tp.partition}] at {position} of {ends[tp]}")
                self._stalled_at[tp] = position
                # The next verdict on it after a whole period again, not at every check.
                self._behind[tp] = (position, now)
        if stalled:
            self.stalls_total += 1
            self.stalled = f"{', '.join(stalled)} for {self.settings.consumer_stall_seconds:g} s"
            log.error("consumer_stalled", consumer=self.group_id, partitions=self.stalled)
            raise ConsumerStalled(self.stalled)
        if self.stalled is not None and not self._stalled_at:
            log.info("consumer_resumed", consumer=self.group_id, was=self.stalled)
            self.stalled = None

    async def commit_pending(self, *, only: set[TopicPartition] | None = None) -> None:
        """Commit the offsets applied and not yet committed (of ``only`` those partitions),
        for the partitions this consumer still holds; those it no longer holds are dropped:
        committed late, in a later generation, they could move the group's offsets back."""
        consumer = self._consumer
        if consumer is None:
            self._uncommitted.clear()
            return
        held = consumer.assignment()
        offsets = {
            tp: offset
            for tp, offset in self._uncommitted.items()
            if (only is None or tp in only) and tp in held
        }
        for tp in list(self._uncommitted):
            if only is None or tp in only:
                del self._uncommitted[tp]
        self._last_commit = asyncio.get_running_loop().time()
        if offsets:
            await self._commit(consumer, offsets)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.ensure_offsets_kept(consumer, sorted(offsets))
            await bounded(consumer.commit(offsets), self.settings.kafka_timeout_seconds, "commit")
            self.committed.update(offsets)
        except ConsumerStuck:
            raise
        except Exception as exc:
            # Harmless: the events are recorded as processed, a redelivery changes nothing.
            log.warning("offset_commit_failed", consumer=self.group_id, error=repr(exc))

    async def ensure_offsets_kept(
        self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> None:
        """Raise BrokerLostOffsets if the broker holds less than what this consumer committed.

        A group's committed offsets only ever grow (whoever owns a partition starts from its
        committed offset), so finding less than our own last commit means the broker lost
        them: it was restarted empty. The fetch positions held in memory then point into logs
        that no longer exist, and the new logs may hold unseen events below them. Checked
        before every commit, so that a stale position is never committed to the new broker;
        the consumer is rebuilt and starts from the earliest offset, its duplicates ignored.
        """
        for tp in partitions:
            ours = self.committed.get(tp)
            if ours is None:
                continue
            on_broker = await bounded(
                consumer.committed(tp), self.settings.kafka_timeout_seconds, "reading offsets"
            )
            if on_broker is None or on_broker < ours:
                self.committed.clear()
                raise BrokerLostOffsets(f"{tp}: committed {ours}, the broker holds {on_broker}")

    async def _handle_batch(self, messages: list[ConsumerRecord]) -> None:
        """Apply the events of ``messages`` in one transaction, or one by one if that fails."""
        work: list[Work] = []
        for message in messages:
            try:
                event = from_kafka(message.key, message.value, message.headers)
            except MalformedEvent as exc:
                await self._dead_letter(message, f"malformed: {exc}")
                continue
            handler = self.spec.handlers.get(event.type)
            if handler is not None:
                work.append(Work(message, event, handler))
        failed: Work | None = None  # the event whose handler failed the batch
        if len(work) > 1:
            try:
                applied = await self.apply_batch(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing was written; one event at a time tells the events apart.
                cause = exc.__cause__ if isinstance(exc, HandlerFailed) else exc
                log.info(
                    "batch_applied_one_by_one",
                    consumer=self.group_id,
                    events=len(work),
                    error=repr(cause),
                )
                if isinstance(exc, HandlerFailed) and not _waits(exc.__cause__):
                    failed = exc.item
            else:
                self.duplicates_total += len(work) - len(applied)
                self.applied_total += len(applied)
                if self._after_apply is not None:
                    for event in applied:
                        await self._after_apply(event)
                return
        for item in work:
            token = request_id_var.set(item.event.request_id)
            try:
                # The batch was the failed event's first attempt: retries stay bounded.
                await self._apply_with_retries(item, failures=int(item is failed))
            finally:
                request_id_var.reset(token)

    async def _apply_with_retries(self, item: Work, *, failures: int = 0) -> None:
        message, event = item.message, item.event
        infra_backoff = self.settings.consumer_retry_backoff_seconds
        while True:
            try:
                applied = await self.apply(item)
            except asyncio.CancelledError:
                raise
            except Exception as raised:
                exc = raised.__cause__ if isinstance(raised, HandlerFailed) else raised
                assert exc is not None
                if _waits(exc):
                    log.warning("event_waits", event_id=event.id, error=repr(exc))
                    await asyncio.sleep(infra_backoff)
                    infra_backoff = min(infra_backoff * 2, MAX_INFRA_BACKOFF_SECONDS)
                    continue
                failures += 1
                if failures >= self.settings.consumer_max_attempts:
                    log.error(  # noqa: TRY400 - the error is expected; no traceback wanted
                        "event_dead_lettered", event_id=event.id, type=event.type, error=repr(exc)
                    )
                    await self._dead_letter(message, f"{type(exc).__name__}: {exc}")
                    return
                delay = self.settings.consumer_retry_backoff_seconds * 2 ** (failures - 1)
                log.warning(
                    "event_retry",
                    event_id=event.id,
                    type=event.type,
                    attempt=failures,
                    error=repr(exc),
                )
                await asyncio.sleep(delay)
                continue
            if not applied:
                self.duplicates_total += 1
                return
            self.applied_total += 1
            if self._after_apply is not None:
                await self._after_apply(event)
            return

    async def apply_batch(self, work: list[Work]) -> list[ReceivedEvent]:
        """Apply events in one transaction, in order; those applied (not seen before)."""
        rows = [
            {
                "source": item.event.source,
                "event_id": item.event.id,
                "event_type": item.event.type,
                "topic": item.message.topic,
                "consumer": self.spec.name,
                "outcome": "applied",
            }
            for item in work
        ]
        async with self._unit_of_work() as uow:
            first_times = {
                (source, event_id)
                for source, event_id in await uow.session.execute(
                    _record_events(self._processed), as_arrays(rows, _PROCESSED_COLUMNS)
                )
            }
            applied = []
            for item in work:
                key = (item.event.source, item.event.id)
                if key not in first_times:
                    continue
                first_times.discard(key)  # a duplicate within the batch is applied once
                token = request_id_var.set(item.event.request_id)
                try:
                    await item.handler(uow, item.event)
                except Exception as exc:
                    raise HandlerFailed(item) from exc
                finally:
                    request_id_var.reset(token)
                applied.append(item.event)
            await uow.commit()
        return applied

    async def apply(self, item: Work) -> bool:
        """Apply one event in its own transaction; False when it had already been applied."""
        return bool(await self.apply_batch([item]))

    async def _dead_letter(self, message: ConsumerRecord, reason: str) -> None:
        """Send a message to the dead-letter topic; wait as long as it takes to be acknowledged."""
        headers = [
            *list(message.headers),
            ("dlq_reason", reason[:1000].encode()),
            ("dlq_topic", message.topic.encode()),
            ("dlq_partition", str(message.partition).encode()),
            ("dlq_offset", str(message.offset).encode()),
            ("dlq_consumer", self.group_id.encode()),
        ]
        backoff = 0.2
        while True:
            try:
                if self._dlq_producer is None:
                    producer = new_producer(self.settings)
                    await bounded(
                        producer.start(), self.settings.kafka_timeout_seconds, "connecting"
                    )
                    self._dlq_producer = producer
                await bounded(
                    self._dlq_producer.send_and_wait(
                        dead_letter_topic(message.topic),
                        value=message.value,
                        key=message.key,
                        headers=headers,
                    ),
                    self.settings.kafka_timeout_seconds,
                    "dead-lettering",
                )
                self.dead_lettered_total += 1
                return
            except Exception as exc:
                log.warning("dead_letter_retry", error=repr(exc))
                producer, self._dlq_producer = self._dlq_producer, None
                await stop_quietly(producer, self.settings.kafka_timeout_seconds)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_INFRA_BACKOFF_SECONDS)
