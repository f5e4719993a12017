"""Benchmark of the event backbone: commit in one service → applied in another, against raw Kafka.

Run: ``.venv/bin/python bench/events.py [--events N] [--warmup W]``

It starts its own PostgreSQL and Tansu broker in a temporary directory (or uses
``PTCE_TEST_POSTGRES_URL`` / ``PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS``, like the tests),
migrates a catalog and an exchange database, and runs both services' workers in this
process. It then measures, in one run:

1. **commit → apply, one at a time**: ``register_pole`` commits a pole and its
   ``PoleRegistered`` event in the catalog; the clock starts when it returns and stops
   in the exchange consumer's ``after_apply`` hook (after the event's DB transaction
   committed). The next event is sent only once the previous one was applied, so this
   is latency, not queueing.
2. **burst**: events committed as fast as possible (``asyncio.gather`` in batches),
   giving the throughput and the latency under load.
3. **raw broker round trip**: a producer and a consumer (its own group) built by
   ``shared.kafka.new_producer`` / ``new_consumer`` with the same settings; one message
   sent, waited for, then the next.

It prints a table with p50/p90/p99/max, the p99 ratio against the target ("p99 within 3x
the raw round trip"), and a breakdown of where a sequential event's time goes. It always
exits 0 once it measured: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import shared.outbox
from catalog.poles import RegisterPole, register_pole
from catalog.service import DEFINITION as CATALOG_DEFINITION
from exchange.service import DEFINITION as EXCHANGE_DEFINITION
from ptce.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from shared.consumer import IdempotentConsumer
from shared.events.envelope import ReceivedEvent
from shared.events.registry import all_topics
from shared.kafka import bounded, create_topics, new_consumer, new_producer, stop_quietly
from shared.logging import configure_logging
from shared.migrations import upgrade
from shared.outbox import SAFETY_POLL_SECONDS, OutboxRelay
from shared.runtime import ServiceRuntime
from shared.settings import CatalogSettings, ExchangeSettings, ServiceSettings

TARGET_RATIO = 3.0
EVENT_TIMEOUT_SECONDS = 30.0
BURST_EVENTS = 200
BURST_CONCURRENCY = 20
CONSUMER_POLL_MS = 500  # IdempotentConsumer._loop's getmany timeout; the raw consumer uses it too

# The stages of one sequential event, in order; the breakdown shows the time between them.
STAGES = ("committed", "notified", "claimed", "acked", "fetched", "applied")
STAGE_LABELS = {
    ("committed", "notified"): "commit returned → relay got NOTIFY",
    ("notified", "claimed"): "NOTIFY → relay claims the row",
    ("claimed", "acked"): "claim → broker acked (acks=all)",
    ("acked", "fetched"): "broker acked → consumer fetched",
    ("fetched", "applied"): "fetched → applied (DB commit)",
}


# --- servers and databases -------------------------------------------------------------


@dataclass
class Servers:
    postgres_url: str  # postgresql://user@host:port, no database
    bootstrap_servers: str
    postgres_kind: str
    broker_kind: str

    def database_url(self, database: str, *, driver: str = "postgresql+asyncpg") -> str:
        return f"{self.postgres_url.replace('postgresql://', driver + '://', 1)}/{database}"


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """The servers to run against: those of the environment, or embedded ones in a temp dir."""
    root = Path(tempfile.mkdtemp(prefix="ptce-bench-"))
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    try:
        postgres_url = os.environ.get("PTCE_TEST_POSTGRES_URL")
        bootstrap = os.environ.get("PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS")
        postgres_kind = broker_kind = "from the environment"
        if not postgres_url:
            postgres = EmbeddedPostgres(root / "postgres", free_port(), fast_unsafe=True)
            postgres.start()
            postgres_url = f"postgresql://postgres@127.0.0.1:{postgres.port}"
            postgres_kind = "embedded, fsync=off, synchronous_commit=off"
        if not bootstrap:
            broker = EmbeddedBroker(free_port(), root / "tansu.log")
            broker.start()
            bootstrap = broker.bootstrap_servers
            broker_kind = "embedded Tansu, memory storage"
        yield Servers(postgres_url.rstrip("/"), bootstrap, postgres_kind, broker_kind)
    finally:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _admin_execute(srv: Servers, statements: Sequence[str]) -> None:
    engine = create_async_engine(srv.database_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


def create_databases(srv: Servers, databases: dict[str, str]) -> None:
    """Create and migrate one database per service (``{service: database name}``)."""
    asyncio.run(_admin_execute(srv, [f'CREATE DATABASE "{name}"' for name in databases.values()]))
    for service, name in databases.items():
        upgrade(service, srv.database_url(name))


def drop_databases(srv: Servers, names: Sequence[str]) -> None:
    statements = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
    try:
        asyncio.run(_admin_execute(srv, statements))
    except Exception as exc:
        print(f"warning: could not drop the benchmark databases: {exc!r}", file=sys.stderr)


# --- instrumentation ---------------------------------------------------------------------


def _patch(obj: object, name: str, value: object) -> None:
    setattr(obj, name, value)


class Probe:
    """Timestamps (``time.perf_counter()``) of what happens to the events.

    ``after_apply`` records, per event id, when the exchange applied it. For the
    sequential phase, where one event is in flight at a time, a few kernel methods are
    wrapped (on the instances, at run time; no kernel file changes) to timestamp the
    stages in between: the relay's NOTIFY callback, its batch claim, the broker's ack,
    the consumer's fetch.
    """

    def __init__(self) -> None:
        self.applied: dict[str, float] = {}  # event id -> when applied
        self.event_of: dict[str, str] = {}  # pole id (the event's subject) -> event id
        self.offset_commits: list[float] = []  # seconds per offset commit of the consumer
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self.trace: dict[str, float] | None = None
        self._restore: list[Callable[[], None]] = []

    # The hook the exchange runtime is built with.
    async def after_apply(self, event: ReceivedEvent) -> None:
        now = time.perf_counter()
        self.applied[event.id] = now
        pole_id = event.subject or event.id
        self.event_of[pole_id] = event.id
        self.mark("applied", now)
        waiter = self._waiters.pop(pole_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(now)

    async def applied_at(self, pole_id: str) -> float:
        """When the event of pole ``pole_id`` was applied; waits for it when it was not yet."""
        event_id = self.event_of.get(pole_id)
        if event_id is not None:
            return self.applied[event_id]
        waiter = self._waiters.get(pole_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[pole_id] = waiter
        async with asyncio.timeout(EVENT_TIMEOUT_SECONDS):
            return await waiter

    def mark(self, stage: str, at: float | None = None) -> None:
        if self.trace is not None and stage not in self.trace:
            self.trace[stage] = time.perf_counter() if at is None else at

    def instrument(self, relay: OutboxRelay, consumer: IdempotentConsumer) -> None:
        """Wrap the stages of the pipeline; call before the workers start."""
        on_notify: Callable[..., None] = relay._on_notify

        def notified(*args: object) -> None:
            self.mark("notified")
            on_notify(*args)

        _patch(relay, "_on_notify", notified)

        publish_batch: Callable[[], Awaitable[int]] = relay.publish_batch

        async def claimed_and_sent() -> int:
            started = time.perf_counter()
            sent = await publish_batch()
            if sent:
                self.mark("claimed", started)
                self.mark("marked_sent")
            return sent

        _patch(relay, "publish_batch", claimed_and_sent)

        original_bounded = bounded  # what shared.outbox calls

        async def acked(call: Awaitable[Any], seconds: float, what: str) -> Any:
            result = await original_bounded(call, seconds, what)
            if what == "publishing a batch":
                self.mark("acked")
            return result

        _patch(shared.outbox, "bounded", acked)
        self._restore.append(lambda: _patch(shared.outbox, "bounded", original_bounded))

        handle: Callable[[Any], Awaitable[None]] = consumer._handle

        async def fetched(message: Any) -> None:
            self.mark("fetched")
            await handle(message)

        _patch(consumer, "_handle", fetched)

        commit: Callable[[Any, Any, int], Awaitable[None]] = consumer._commit

        async def timed_commit(kafka_consumer: Any, tp: Any, offset: int) -> None:
            started = time.perf_counter()
            await commit(kafka_consumer, tp, offset)
            self.offset_commits.append(time.perf_counter() - started)

        _patch(consumer, "_commit", timed_commit)

    def uninstrument(self) -> None:
        for restore in self._restore:
            restore()
        self._restore = []


# --- the measurements --------------------------------------------------------------------


@dataclass
class Results:
    sequential: list[float] = field(default_factory=list)
    traces: list[dict[str, float]] = field(default_factory=list)
    burst: list[float] = field(default_factory=list)
    burst_commit_seconds: float = 0.0
    burst_total_seconds: float = 0.0
    raw: list[float] = field(default_factory=list)
    raw_acks: list[float] = field(default_factory=list)
    offset_commits: list[float] = field(default_factory=list)
    linger_ms: str = "?"


async def one_event(
    catalog: ServiceRuntime, probe: Probe, name: str
) -> tuple[float, dict[str, float]]:
    """Commit one pole, wait until the exchange applied its event; the latency and its trace."""
    probe.trace = trace = {}
    pole = await register_pole(catalog.uow(), RegisterPole(name=name))
    started = time.perf_counter()
    trace["committed"] = started
    applied = await probe.applied_at(str(pole.id))
    probe.trace = None
    return applied - started, trace


async def burst(catalog: ServiceRuntime, probe: Probe, run_id: str, results: Results) -> None:
    starts: dict[str, float] = {}

    async def commit_one(i: int) -> None:
        pole = await register_pole(catalog.uow(), RegisterPole(name=f"bench burst {i} {run_id}"))
        starts[str(pole.id)] = time.perf_counter()

    began = time.perf_counter()
    for first in range(0, BURST_EVENTS, BURST_CONCURRENCY):
        last = min(first + BURST_CONCURRENCY, BURST_EVENTS)
        await asyncio.gather(*(commit_one(i) for i in range(first, last)))
    results.burst_commit_seconds = time.perf_counter() - began
    applied = {pole_id: await probe.applied_at(pole_id) for pole_id in starts}
    results.burst_total_seconds = max(applied.values()) - began
    results.burst = [applied[pole_id] - start for pole_id, start in starts.items()]


async def raw_round_trip(
    settings: ServiceSettings, topic: str, count: int, warmup: int, results: Results
) -> None:
    """Send a message, wait until a consumer of its own group got it; ``count`` times."""
    producer = new_producer(settings)
    consumer = new_consumer(settings, group_id=f"{settings.kafka_topic_prefix}bench.raw")
    accumulator = getattr(producer, "_message_accumulator", None)
    linger = getattr(accumulator, "_linger_time", None)
    results.linger_ms = f"{linger * 1000:g}" if isinstance(linger, int | float) else "?"
    arrivals: dict[bytes, float] = {}
    arrived = asyncio.Event()
    assigned = asyncio.Event()
    timeout = settings.kafka_timeout_seconds

    async def receive() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=CONSUMER_POLL_MS)
            now = time.perf_counter()
            if consumer.assignment():
                assigned.set()
            for messages in batch.values():
                for message in messages:
                    arrivals[message.value] = now
            if batch:
                arrived.set()

    receiver: asyncio.Task[None] | None = None
    try:
        await bounded(producer.start(), timeout, "starting the raw producer")
        await bounded(consumer.start(), timeout, "starting the raw consumer")
        consumer.subscribe([topic])
        receiver = asyncio.create_task(receive(), name="bench-raw-receiver")
        await bounded(assigned.wait(), 60, "waiting for the raw consumer's assignment")
        for i in range(warmup + count):
            value = uuid.uuid4().bytes
            started = time.perf_counter()
            await bounded(producer.send_and_wait(topic, value=value, key=value), timeout, "send")
            acked = time.perf_counter()
            async with asyncio.timeout(EVENT_TIMEOUT_SECONDS):
                while value not in arrivals:
                    arrived.clear()
                    await arrived.wait()
            if i >= warmup:
                results.raw.append(arrivals[value] - started)
                results.raw_acks.append(acked - started)
    finally:
        if receiver is not None:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        await stop_quietly(consumer, timeout)
        await stop_quietly(producer, timeout)


async def measure(
    srv: Servers, databases: dict[str, str], args: argparse.Namespace, run_id: str
) -> tuple[Results, ServiceSettings]:
    prefix = f"bench{run_id}-"
    common: dict[str, Any] = {
        "kafka_bootstrap_servers": srv.bootstrap_servers,
        "kafka_topic_prefix": prefix,
    }
    catalog_settings = CatalogSettings(
        database_url=srv.database_url(databases["catalog"]), **common
    )
    exchange_settings = ExchangeSettings(
        database_url=srv.database_url(databases["exchange"]), **common
    )
    raw_topic = f"{prefix}bench.raw"
    await create_topics(catalog_settings, topics=[*all_topics(prefix), raw_topic])

    results = Results()
    probe = Probe()
    catalog = ServiceRuntime(CATALOG_DEFINITION, catalog_settings)
    exchange = ServiceRuntime(EXCHANGE_DEFINITION, exchange_settings, after_apply=probe.after_apply)
    consumer = exchange.consumers[0]
    probe.instrument(catalog.relay, consumer)
    try:
        catalog.start_workers()
        exchange.start_workers()
        await bounded(consumer.assigned.wait(), 60, "waiting for the group assignment")

        for i in range(args.warmup):
            await one_event(catalog, probe, f"bench warmup {i} {run_id}")
        probe.offset_commits.clear()
        for i in range(args.events):
            latency, trace = await one_event(catalog, probe, f"bench seq {i} {run_id}")
            results.sequential.append(latency)
            results.traces.append(trace)
        results.offset_commits = list(probe.offset_commits)

        await burst(catalog, probe, run_id, results)
        await raw_round_trip(exchange_settings, raw_topic, args.events, args.warmup, results)
    finally:
        probe.uninstrument()
        await exchange.stop()
        await catalog.stop()
    return results, exchange_settings


# --- the report --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) with linear interpolation between the closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _row(label: str, values: Sequence[float], width: int = 44) -> str:
    ms = [v * 1000 for v in values]
    cells = [percentile(ms, q) for q in (0.5, 0.9, 0.99)] + [max(ms, default=math.nan)]
    return f"{label:<{width}}{len(ms):>6}" + "".join(f"{c:>9.2f}" for c in cells)


def _header(title: str, width: int = 44) -> str:
    return f"{title:<{width}}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"


def render(results: Results, settings: ServiceSettings, srv: Servers, args: Any) -> str:
    p99_apply = percentile(results.sequential, 0.99)
    p99_raw = percentile(results.raw, 0.99)
    ratio = p99_apply / p99_raw if p99_raw > 0 else math.inf
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    rule = "-" * 86
    lines = [
        "PTCE event backbone benchmark (bench/events.py)",
        rule,
        f"machine     nproc={os.cpu_count()} (usable {affinity}), "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"servers     PostgreSQL: {srv.postgres_kind}; broker: {srv.broker_kind}",
        f"run         N={args.events} sequential events (after {args.warmup} warm-up), "
        f"burst {BURST_EVENTS} in batches of {BURST_CONCURRENCY}, "
        f"raw N={args.events} (after {args.warmup} warm-up)",
        f"settings    kafka_fetch_max_wait_ms={settings.kafka_fetch_max_wait_ms}, "
        f"producer linger_ms={results.linger_ms}, acks=all, "
        f"partitions={settings.kafka_topic_partitions}, "
        f"outbox_batch_size={settings.outbox_batch_size},",
        f"            consumer getmany timeout {CONSUMER_POLL_MS} ms, "
        f"relay safety poll {SAFETY_POLL_SECONDS:g} s, offsets committed after each batch",
        rule,
        _header("latency (ms)"),
        _row("commit → apply, sequential", results.sequential),
        _row("raw round trip (send → received)", results.raw),
        _row("commit → apply, burst", results.burst),
        rule,
        f"p99 ratio   commit→apply / raw round trip = {p99_apply * 1000:.2f} / "
        f"{p99_raw * 1000:.2f} = {ratio:.2f}x",
        f"target      p99 within {TARGET_RATIO:g}x the raw round trip: {verdict}",
        f"burst       {BURST_EVENTS} events committed in {results.burst_commit_seconds:.2f} s "
        f"({BURST_EVENTS / results.burst_commit_seconds:.0f} commits/s), all applied after "
        f"{results.burst_total_seconds:.2f} s → "
        f"{BURST_EVENTS / results.burst_total_seconds:.0f} events/s",
        rule,
        _header("where a sequential event's time goes (ms)"),
    ]
    for (start, end), label in STAGE_LABELS.items():
        deltas = [t[end] - t[start] for t in results.traces if start in t and end in t]
        lines.append(_row(label, deltas))
    marked = [
        t["marked_sent"] - t["acked"]
        for t in results.traces
        if {"acked", "marked_sent"} <= t.keys()
    ]
    lines.append(_row("(in parallel) acked → outbox row marked sent", marked))
    lines.append(_row("(after apply) consumer offset commit", results.offset_commits))
    lines.append(_row("raw: send → acked", results.raw_acks))
    raw_fetch = [r - a for r, a in zip(results.raw, results.raw_acks, strict=True)]
    lines.append(_row("raw: acked → received", raw_fetch))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300, help="measured events (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up events (default 20)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.warmup < 0:
        parser.error("--events must be >= 1 and --warmup >= 0")
    configure_logging(service="bench", level=os.environ.get("LOG_LEVEL", "WARNING"), fmt="console")

    run_id = uuid.uuid4().hex[:10]
    databases = {service: f"bench_{service}_{run_id}" for service in ("catalog", "exchange")}
    with servers() as srv:
        try:
            create_databases(srv, databases)
            results, settings = asyncio.run(measure(srv, databases, args, run_id))
        finally:
            drop_databases(srv, list(databases.values()))
    print(render(results, settings, srv, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
