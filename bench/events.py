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

It prints p50/p90/p99/max, the p99 ratio against the target ("p99 within 3x the raw round
trip", PASS/FAIL), where the events' time goes (stages timestamped by wrapping kernel
functions at run time, see :class:`Probe`), and a PostgreSQL ``SELECT 1`` as the unit cost
of a statement. Kernel settings come from the environment as usual
(``KAFKA_FETCH_MAX_WAIT_MS=5 .venv/bin/python bench/events.py``). It exits 0 once it
measured, whatever the verdict: it is a measurement, not a test (130 when interrupted).
Servers, workers and databases are stopped or dropped on every way out.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import math
import os
import platform
import shutil
import signal
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
from shared.events.envelope import ReceivedEvent, to_kafka
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

# Where an event's time goes: (from stage, to stage, label), stages as Probe records them.
SEGMENTS = (
    ("began", "committed", "register_pole call (not in the latency)"),
    ("committed", "notified", "commit returned → relay got NOTIFY"),
    ("notified", "read", "NOTIFY → relay read the row"),
    ("committed", "read", "commit returned → relay read the row"),
    ("read", "acked", "relay read → broker acked (acks=all)"),
    ("acked", "handling", "broker acked → consumer handles it"),
    ("handling", "applying", "consumer parses the message"),
    ("applying", "applied", "consumer DB transaction (commit) → hook"),
    ("acked", "marked", "(in parallel) acked → outbox marked sent"),
)


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
    """Timestamps (``time.perf_counter()``) of what happens to each event, keyed by pole id.

    ``after_apply`` records, per event id, when the exchange applied it. To show where
    the time goes, a few kernel functions are wrapped at run time (on the instances and
    in ``shared.outbox``'s namespace; no file changes): the relay's NOTIFY callback, its
    reading of each row, the broker's acknowledgement of a batch, the consumer starting
    to handle a message and committing offsets. The Kafka key of an event is its pole id.
    """

    def __init__(self) -> None:
        self.applied: dict[str, float] = {}  # event id -> when applied
        self.event_of: dict[str, str] = {}  # pole id (the event's subject) -> event id
        self.stages: dict[str, dict[str, float]] = {}  # pole id -> stage -> first time
        self.notifies: list[float] = []  # when the relay's NOTIFY callback ran
        self.relay_batches: list[tuple[float, float, int]] = []  # (start, end, rows)
        self.offset_commits: list[tuple[float, float]] = []  # (start, seconds)
        self._batch: list[str] = []
        self._waiters: dict[str, asyncio.Future[float]] = {}
        self._restore: list[Callable[[], None]] = []

    def mark(self, pole_id: str, stage: str, at: float | None = None) -> None:
        self.stages.setdefault(pole_id, {}).setdefault(
            stage, time.perf_counter() if at is None else at
        )

    # The hook the exchange runtime is built with.
    async def after_apply(self, event: ReceivedEvent) -> None:
        now = time.perf_counter()
        self.applied[event.id] = now
        pole_id = event.subject or event.id
        self.event_of[pole_id] = event.id
        self.mark(pole_id, "applied", now)
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

    def notified_after(self, since: float) -> float | None:
        """The first NOTIFY the relay got at or after ``since``."""
        index = bisect.bisect_left(self.notifies, since)
        return self.notifies[index] if index < len(self.notifies) else None

    def instrument(self, relay: OutboxRelay, consumer: IdempotentConsumer) -> None:
        """Wrap the stages of the pipeline; call before the workers start."""
        on_notify: Callable[..., None] = relay._on_notify

        def notified(*args: object) -> None:
            self.notifies.append(time.perf_counter())
            on_notify(*args)

        _patch(relay, "_on_notify", notified)

        publish_batch: Callable[[], Awaitable[int]] = relay.publish_batch

        async def traced_publish_batch() -> int:
            self._batch = []
            started = time.perf_counter()
            sent = await publish_batch()
            now = time.perf_counter()
            if sent:
                self.relay_batches.append((started, now, sent))
                for pole_id in self._batch:
                    self.mark(pole_id, "marked", now)
            return sent

        _patch(relay, "publish_batch", traced_publish_batch)

        def traced_to_kafka(event: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
            key, value, headers = to_kafka(event)
            pole_id = key.decode()
            self.mark(pole_id, "read")
            self._batch.append(pole_id)
            return key, value, headers

        async def traced_bounded(call: Awaitable[Any], seconds: float, what: str) -> Any:
            result = await bounded(call, seconds, what)
            if what == "publishing a batch":
                now = time.perf_counter()
                for pole_id in self._batch:
                    self.mark(pole_id, "acked", now)
            return result

        for name, wrapper, original in (
            ("to_kafka", traced_to_kafka, to_kafka),
            ("bounded", traced_bounded, bounded),
        ):
            _patch(shared.outbox, name, wrapper)
            self._restore.append(functools.partial(_patch, shared.outbox, name, original))

        handle_batch: Callable[[Any], Awaitable[None]] = consumer._handle_batch

        async def traced_handle_batch(messages: list[Any]) -> None:
            for message in messages:
                if message.key:
                    self.mark(message.key.decode(), "handling")
            await handle_batch(messages)

        _patch(consumer, "_handle_batch", traced_handle_batch)

        apply: Callable[..., Awaitable[bool]] = consumer.apply

        async def traced_apply(item: Any) -> bool:
            self.mark(item.event.subject or item.event.id, "applying")
            return await apply(item)

        _patch(consumer, "apply", traced_apply)

        apply_batch: Callable[[list[Any]], Awaitable[list[ReceivedEvent]]] = consumer.apply_batch

        async def traced_apply_batch(work: list[Any]) -> list[ReceivedEvent]:
            for item in work:
                self.mark(item.event.subject or item.event.id, "applying")
            return await apply_batch(work)

        _patch(consumer, "apply_batch", traced_apply_batch)

        commit: Callable[[Any, Any], Awaitable[None]] = consumer._commit

        async def traced_commit(kafka_consumer: Any, offsets: Any) -> None:
            started = time.perf_counter()
            await commit(kafka_consumer, offsets)
            self.offset_commits.append((started, time.perf_counter() - started))

        _patch(consumer, "_commit", traced_commit)

    def uninstrument(self) -> None:
        for restore in self._restore:
            restore()
        self._restore = []


# --- the measurements --------------------------------------------------------------------


@dataclass
class Phase:
    """The events of one phase: per pole id, when ``register_pole`` was called and returned."""

    began: dict[str, float] = field(default_factory=dict)
    committed: dict[str, float] = field(default_factory=dict)
    start: float = 0.0
    all_committed: float = 0.0
    end: float = 0.0

    def latencies(self, probe: Probe) -> list[float]:
        return [
            probe.stages[pole_id]["applied"] - committed
            for pole_id, committed in self.committed.items()
        ]


@dataclass
class Results:
    sequential: Phase = field(default_factory=Phase)
    burst: Phase = field(default_factory=Phase)
    raw: list[float] = field(default_factory=list)
    raw_acks: list[float] = field(default_factory=list)
    db: list[float] = field(default_factory=list)
    linger_ms: str = "?"


async def commit_pole(catalog: ServiceRuntime, phase: Phase, name: str) -> str:
    """Register a pole (its state and its event, one transaction); return its id."""
    began = time.perf_counter()
    pole = await register_pole(catalog.uow(), RegisterPole(name=name))
    committed = time.perf_counter()
    pole_id = str(pole.id)
    phase.began[pole_id] = began
    phase.committed[pole_id] = committed
    return pole_id


async def sequential(
    catalog: ServiceRuntime, probe: Probe, phase: Phase, count: int, label: str
) -> None:
    """Commit one event, wait until the exchange applied it, then the next."""
    phase.start = time.perf_counter()
    for i in range(count):
        await probe.applied_at(await commit_pole(catalog, phase, f"bench {label} {i}"))
    phase.all_committed = phase.end = time.perf_counter()


async def burst(catalog: ServiceRuntime, probe: Probe, phase: Phase, run_id: str) -> None:
    """Commit events as fast as possible, ``BURST_CONCURRENCY`` at a time; wait for all."""
    phase.start = time.perf_counter()
    for first in range(0, BURST_EVENTS, BURST_CONCURRENCY):
        last = min(first + BURST_CONCURRENCY, BURST_EVENTS)
        await asyncio.gather(
            *(commit_pole(catalog, phase, f"bench burst {i} {run_id}") for i in range(first, last))
        )
    phase.all_committed = time.perf_counter()
    phase.end = max([await probe.applied_at(pole_id) for pole_id in phase.committed])


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


async def db_round_trip(runtime: ServiceRuntime, count: int, warmup: int, results: Results) -> None:
    """The unit cost of one statement: ``SELECT 1`` on an open connection, through SQLAlchemy."""
    async with runtime.engine.connect() as conn:
        for i in range(warmup + count):
            started = time.perf_counter()
            await conn.execute(text("SELECT 1"))
            if i >= warmup:
                results.db.append(time.perf_counter() - started)


async def measure(
    srv: Servers, databases: dict[str, str], args: argparse.Namespace, run_id: str
) -> tuple[Results, Probe, ServiceSettings]:
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
        await sequential(catalog, probe, Phase(), args.warmup, f"warm-up {run_id}")
        await sequential(catalog, probe, results.sequential, args.events, f"seq {run_id}")
        await burst(catalog, probe, results.burst, run_id)
        await raw_round_trip(exchange_settings, raw_topic, args.events, args.warmup, results)
        await db_round_trip(exchange, args.events, args.warmup, results)
    finally:
        probe.uninstrument()
        await exchange.stop()
        await catalog.stop()
    return results, probe, exchange_settings


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


def _timeline(phase: Phase, probe: Probe, pole_id: str, *, notify: bool) -> dict[str, float]:
    timeline = dict(probe.stages.get(pole_id, {}))
    timeline["began"] = phase.began[pole_id]
    timeline["committed"] = phase.committed[pole_id]
    notified = probe.notified_after(phase.began[pole_id]) if notify else None
    if notified is not None:
        timeline["notified"] = notified
    return timeline


def breakdown(phase: Phase, probe: Probe, title: str, *, notify: bool) -> list[str]:
    """Where the events of a phase spent their time, between consecutive stages."""
    timelines = [_timeline(phase, probe, p, notify=notify) for p in phase.committed]
    lines = [_header(title)]
    # With NOTIFY shown, commit → read is split in two rows; without, it is one.
    hidden = (
        {("committed", "read")} if notify else {("committed", "notified"), ("notified", "read")}
    )
    for start, end, label in SEGMENTS:
        if (start, end) in hidden:
            continue
        lines.append(
            _row(label, [t[end] - t[start] for t in timelines if {start, end} <= t.keys()])
        )
    commits = [
        seconds for started, seconds in probe.offset_commits if phase.start <= started <= phase.end
    ]
    lines.append(_row("(every CONSUMER_COMMIT_INTERVAL_SECONDS) consumer offset commit", commits))
    batches = [b for b in probe.relay_batches if phase.start <= b[0] <= phase.end]
    handling = sum(
        t["applied"] - t["handling"] for t in timelines if {"handling", "applied"} <= t.keys()
    )
    lines.append(
        f"  relay: {len(batches)} batches, {sum(b[2] for b in batches) / max(len(batches), 1):.1f}"
        f" rows each; consumer: {len(commits)} offset commits, {handling:.2f} s handling"
        f" events over {phase.end - phase.start:.2f} s"
    )
    return lines


def render(
    results: Results, probe: Probe, settings: ServiceSettings, srv: Servers, args: Any
) -> str:
    seq, burst = results.sequential, results.burst
    seq_latencies, burst_latencies = seq.latencies(probe), burst.latencies(probe)
    p99_apply = percentile(seq_latencies, 0.99)
    p99_raw = percentile(results.raw, 0.99)
    ratio = p99_apply / p99_raw if p99_raw > 0 else math.inf
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    burst_seconds = burst.end - burst.start
    commit_seconds = burst.all_committed - burst.start
    raw_fetch = [r - a for r, a in zip(results.raw, results.raw_acks, strict=True)]
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
        f"relay safety poll {SAFETY_POLL_SECONDS:g} s, "
        f"offsets committed every {settings.consumer_commit_interval_seconds:g} s",
        rule,
        _header("latency (ms)"),
        _row("commit → apply, sequential", seq_latencies),
        _row("raw round trip (send → received)", results.raw),
        _row("commit → apply, burst", burst_latencies),
        rule,
        f"p99 ratio   commit→apply / raw round trip = {p99_apply * 1000:.2f} / "
        f"{p99_raw * 1000:.2f} = {ratio:.2f}x",
        f"p50 ratio   {percentile(seq_latencies, 0.5) / percentile(results.raw, 0.5):.2f}x "
        "(for information)",
        f"target      p99 within {TARGET_RATIO:g}x the raw round trip: {verdict}",
        f"burst       {BURST_EVENTS} events committed in {commit_seconds:.2f} s "
        f"({BURST_EVENTS / commit_seconds:.0f} commits/s), all applied after "
        f"{burst_seconds:.2f} s → {BURST_EVENTS / burst_seconds:.0f} events/s",
        rule,
        *breakdown(seq, probe, "where a sequential event's time goes (ms)", notify=True),
        rule,
        *breakdown(burst, probe, "where a burst event's time goes (ms)", notify=False),
        rule,
        _header("raw round trip (ms)"),
        _row("send → acked (acks=all)", results.raw_acks),
        _row("acked → received by the consumer", raw_fetch),
        _row("reference: PostgreSQL SELECT 1 (open conn.)", results.db),
    ]
    return "\n".join(lines)


def _interrupt(_signum: int, _frame: object) -> None:
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so every finally block runs and
    # the servers (in their own process groups) are stopped, not left behind.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300, help="measured events (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up events (default 20)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.warmup < 0:
        parser.error("--events must be >= 1 and --warmup >= 0")
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging(service="bench", level=os.environ.get("LOG_LEVEL", "WARNING"), fmt="console")

    run_id = uuid.uuid4().hex[:10]
    databases = {service: f"bench_{service}_{run_id}" for service in ("catalog", "exchange")}
    try:
        with servers() as srv:
            try:
                create_databases(srv, databases)
                results, probe, settings = asyncio.run(measure(srv, databases, args, run_id))
            finally:
                drop_databases(srv, list(databases.values()))
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    print(render(results, probe, settings, srv, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
