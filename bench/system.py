"""Load benchmark of the whole system: many members booking, accepting and completing exchanges
through the three running services, the ledger posting them, for minutes at a fixed rate.

Run: ``.venv/bin/python bench/system.py [--rate 200] [--minutes 3] [--warmup 20] [--workers 1]
[--separate-workers] [--providers 50] [--requesters 200] [--offers-per-provider 4]
[--approval-share 0.25] [--lead 2] [--slot 0.25] [--connections 256] [--timeout 30]
[--drain 60] [--soak] [--seed S] [--keep-logs]``

**Servers.** It starts its own PostgreSQL and Tansu broker in a temporary directory with the
test harness (``ptce.testing.plugin``: the servers, the three services' migrated template
databases), or uses ``PTCE_TEST_POSTGRES_URL`` / ``PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS`` like the
tests. An embedded PostgreSQL is restarted once with ``track_commit_timestamp = on`` (see
*lag* below). Each service gets a fresh database copied from its template and the topics of a
prefix of its own (``settings_factory``), with its default settings (or the environment's)
and throttling off (``HTTP_RATE_LIMIT_PER_SECOND=0``: the load comes from one address and a
few hundred members).

**Services.** The three run as real processes, ``ptce serve catalog|exchange|ledger --workers
N`` (``--workers``, default 1 as ``ptce dev`` runs them), configured by environment variables
(``ptce.testing.system``: ``running_system``, ``settings_env``; the exchange and the ledger
fetch the token keys from the catalog over HTTP). Each process runs its relay and consumers;
with ``--separate-workers`` they run in a ``ptce worker`` process beside the API (its child,
counted with it), as the deployment files run them. Against the embedded broker, as in
``ptce dev`` (``ptce.embedded.EMBEDDED_BROKER_ENV``), the relay lingers 200 ms, the topics have
one partition and fetches wait up to 100 ms.

**Members.** Through the catalog (``CatalogApi``: the pole as ``ptce pole create`` makes it,
then its HTTP API): ``--providers`` members each publishing ``--offers-per-provider`` offers,
alternately a meeting room by the day (80 EUR, worth 200) and a video projector by the loan
(15 EUR, worth 40), all of capacity one, open every day all day with no notice, a share
``--approval-share`` of them booked on approval and the others instantly; and ``--requesters``
members who book them. Every member has its own API client and token (renewed in the
background before it expires). It waits until the exchange and the ledger have their copies.

**The journey** of one exchange, started by an open loop (Poisson arrivals at ``--rate`` per
second, whatever the answers' pace): a random requester ``POST /requests`` for a random offer
a slot starting ``--lead`` seconds later and ``--slot`` seconds long (the next free one of that
offer: the generator never asks for a taken slot, so a 409 is a defect); on an approval offer
the provider ``POST /requests/{id}/accept``; once the slot has started, the provider
``POST /requests/{id}/complete`` (the booked quantity: 1 day, or 1 loan). The ledger then
posts it from ``request.completed``: in money (EX, both books) and in kind (CVN). *How
completions flow at a sustained rate, honestly*: the exchange lets a provider complete a
booking once it has **started** (``exchange/requests.py``, ``move``: ``period.lower <= now``),
and an offer may allow any notice (``min_notice_hours = 0``) and any length (no
``min_booking_minutes``), so the slots are real, short and start seconds after the booking;
nothing is moved in the exchange's database. A room booked for a quarter of a second is
valued as a day (the unit's quantity of the period, frozen in the terms): the figures are the
system's work per exchange, not a realistic calendar.

Latency is counted from each request's scheduled time (the arrival for the booking; the
previous answer for an acceptance; the slot's start for a completion): a request that waits
for one of the ``--connections`` keep-alive connections is late, not omitted; ``--timeout``
seconds without an answer (waiting included) counts as no answer (status -1). The load
generator is the minimal HTTP/1.1 client of ``bench/booking.py``.

**Measured**, after ``--warmup`` seconds, for ``--minutes`` (arrivals stop at the end; the
journeys under way finish, and the ledger is given ``--drain`` seconds to catch up):

- throughput from the databases: exchanges completed in the exchange per second (the
  completion's commit within the window), exchanges posted in the ledger per second (their
  entries' commit within the window) — the end-to-end rate, every posted exchange being
  completed — and the journeys' outcomes;
- latency p50/p95/p99/max per endpoint, the round trip alone, and the errors by status code;
- the lag from exchange to ledger: the commit time of the completion in the exchange's
  database to the commit time of the ledger's entries for it (``pg_xact_commit_timestamp`` of
  the rows' ``xmin``, both databases on one server and clock). Without
  ``track_commit_timestamp`` (a server from the environment) it falls back to the rows' own
  timestamps, ``booking_request.updated_at`` and ``entry.posted_at``, both taken in Python
  before their commits, and says so;
- each service's resident memory: the sum of ``VmRSS`` (``/proc/<pid>/status``) over its
  process tree, sampled every second: before the load, after the warm-up, at the end, the
  maximum; the broker's too (Tansu keeps every message in memory);
- CPU of each component's process tree (``/proc``, user + system) and of the whole machine
  during the window, per exchange and per HTTP answer, PostgreSQL's split by the database its
  backends serve, the rate all of it allows on this machine's CPUs, and the ledger's own cost
  (its consumer applies each poll's events in one transaction, so it falls as batches grow);
- per minute: arrivals, completions, postings, lag and HTTP p99, errors, the CPUs used by the
  exchange, the ledger, PostgreSQL, the broker and by others (other people's load), memory;
- the services' warnings and errors from their logs, and the events a relay sent again;
- ``ledger.trust.reconcile`` of the exchange's completed exchanges against the journal, at
  the end.

Then PASS/FAIL per target (the issue's, on this machine): end-to-end rate >= 0.98 x ``--rate``
(default 200/s), lag p99 < 500 ms, every service under 250 MB resident, reconciliation exact.
``--soak`` runs 30 minutes (or ``--minutes``) at half ``--rate``, prints memory every minute while
it runs and the p99 of every 5-minute window, and adds two targets: no service's memory grows
more than 10 % (the last minute's median against the first's) and a stable p99 (no 5-minute
window's p99, of the HTTP answers or of the lag, above 1.5 x the first window's).

It exits 0 once it measured, whatever the verdict (130 when interrupted); services, servers
and databases are stopped or dropped on every way out.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import psutil
from sqlalchemy.ext.asyncio import AsyncSession

from bench.booking import (
    MACHINE,
    Cpu,
    CpuMeter,
    RawHttp,
    _machine_busy,
    _proc_table,
    _tree_cpu,
    postmaster_pid,
)
from bench.events import _interrupt, percentile
from ledger.trust import Reconciliation, reconcile
from ptce.embedded import use_embedded_broker_settings
from ptce.testing.api import Caller, get_token, room
from ptce.testing.helpers import eventually
from ptce.testing.plugin import (
    Infra,
    SettingsFactory,
    _infra,
    new_topic_prefix,
    server_dir,
    settings_factory,
)
from ptce.testing.system import System, running_system
from shared.db import asyncpg_dsn, create_engine
from shared.logging import configure_logging
from shared.settings import SETTINGS_BY_SERVICE, ServiceSettings

TARGET_RATE = 200.0  # completed exchanges/s end to end (the target on this machine)
RATE_TOLERANCE = 0.98  # Poisson arrivals: the count in a window varies by ~0.5 % at 200/s
TARGET_LAG_P99_MS = 500.0
TARGET_RSS_MB = 250.0
SOAK_MINUTES = 30.0
SOAK_WINDOW_SECONDS = 300.0
SOAK_GROWTH = 0.10
SOAK_P99_DRIFT = 1.5
SERVICES = ("catalog", "exchange", "ledger")
BROKER = "broker (Tansu)"
POSTGRES = "PostgreSQL (all backends)"
LOADGEN = "bench (load generator)"
BACKENDS = "  of which backends: "  # PostgreSQL's CPU split by the database they serve
SETUP_CONCURRENCY = 8
COPY_TIMEOUT_SECONDS = 120.0
COMPLETE_MARGIN_SECONDS = 0.02  # complete this long after the slot's start
TREE_REFRESH_SAMPLES = 10  # list the service's processes again every 10 memory samples
MB = 1024 * 1024
IDLE_SECONDS = 4.0  # uvicorn closes a keep-alive connection idle for 5 s: not reused past 4

# The four requests of a journey, in the order they are reported.
BOOK_INSTANT, BOOK_APPROVAL, ACCEPT, COMPLETE = range(4)
STEPS = (
    "POST /requests (instant offer)",
    "POST /requests (approval offer)",
    "POST /requests/{id}/accept",
    "POST /requests/{id}/complete",
)
SHORT = ("book (instant)", "book (approval)", "accept", "complete")
EXPECTED = (201, 201, 200, 200)
STATUS = {-1: "no answer"}

OPEN_ALL_DAY = {
    # `closes` cannot be 24:00: the last microsecond of a day is closed. A slot that crosses
    # midnight is a two-day booking, allowed (the night between is included).
    "weekly_hours": [
        {"weekday": day, "opens": "00:00", "closes": "23:59:59.999999"} for day in range(7)
    ],
    "closures": [],
    "min_notice_hours": 0,
}
PROJECTOR = {"category": "Vidéoprojecteur", "condition": "good", "can_leave_premises": True}

T = TypeVar("T")
Sample = tuple[float, float, float, float, int]
"""(journey's arrival, scheduled, sent, answered, status): wall-clock seconds (``time.time()``,
the clock of the databases' timestamps); ``sent`` is NaN when no connection came in time."""


# --- servers and services ------------------------------------------------------------------


@dataclass(frozen=True)
class Servers:
    infra: Infra
    postgres: str  # how PostgreSQL runs
    broker: str
    commit_clock: bool  # track_commit_timestamp is on: the lag is measured between commits


def _track_commit_timestamps(infra: Infra, *, statements: bool = False) -> bool:
    """Turn on ``track_commit_timestamp`` on an embedded server (a restart), and with
    ``statements`` load ``pg_stat_statements``; on a server from the environment, only tell
    whether it is on."""

    async def setting(statement: str | None) -> bool:
        conn = await asyncpg.connect(infra.database_url("postgres", driver="postgresql"))
        try:
            if statement:
                await conn.execute(statement)
            return str(await conn.fetchval("SHOW track_commit_timestamp")) == "on"
        finally:
            await conn.close()

    if infra.postgres is None:
        return asyncio.run(setting(None))
    asyncio.run(setting("ALTER SYSTEM SET track_commit_timestamp = on"))
    if statements:
        asyncio.run(setting("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'"))
    infra.postgres.stop()
    infra.postgres.start()
    return asyncio.run(setting(None))


@contextlib.contextmanager
def bench_servers(*, statements: bool = False) -> Iterator[Servers]:
    """The test harness's servers (and migrated templates), stopped on every way out."""
    with server_dir() as root, contextlib.contextmanager(_infra)(root) as infra:
        if infra.broker is not None:
            use_embedded_broker_settings()
        commit_clock = _track_commit_timestamps(infra, statements=statements)
        yield Servers(
            infra,
            postgres="embedded, fsync=off, synchronous_commit=off"
            if infra.postgres is not None
            else "from the environment",
            broker="embedded Tansu, memory storage"
            if infra.broker is not None
            else "from the environment",
            commit_clock=commit_clock,
        )


@contextlib.asynccontextmanager
async def bench_settings(infra: Infra, prefix: str) -> AsyncIterator[SettingsFactory]:
    """The harness's settings factory (fresh databases from the templates, the topics of
    ``prefix``; dropped on leaving), but each service with its own defaults or the
    environment's — the factory's timeouts and pool size are the tests' — and no throttling."""
    async with settings_factory(infra, prefix) as make:

        async def settings_of(service: str) -> ServiceSettings:
            made = await make(service)
            return SETTINGS_BY_SERVICE[service](
                database_url=made.database_url,
                kafka_bootstrap_servers=made.kafka_bootstrap_servers,
                kafka_topic_prefix=made.kafka_topic_prefix,
                http_rate_limit_per_second=0.0,
            )

        yield settings_of


# --- the pole: members, their tokens, the offers ---------------------------------------------


@dataclass(frozen=True)
class Offer:
    id: str
    provider: Caller
    approval: bool


@dataclass
class World:
    pole_id: uuid.UUID
    providers: list[Caller]
    requesters: list[Caller]
    offers: list[Offer]
    setup_seconds: float = 0.0
    copy_seconds: float = 0.0

    @property
    def members(self) -> list[Caller]:
        return [*self.providers, *self.requesters]


def offer_body(index: int, *, projector: bool, approval: bool) -> dict[str, Any]:
    """A meeting room by the day, or a video projector by the loan."""
    mode = "approval" if approval else "instant"
    if not projector:
        return room(
            title=f"Salle de réunion n° {index + 1} du banc système",
            booking_mode=mode,
            availability=OPEN_ALL_DAY,
        )
    return room(
        kind="equipment",
        title=f"Vidéoprojecteur n° {index + 1} du banc système",
        description="Un vidéoprojecteur portable, avec son câble HDMI, prêté à la séance.",
        unit="unit",
        internal_price="15.00",
        reference_value="40.00",
        attributes=PROJECTOR,
        booking_mode=mode,
        availability=OPEN_ALL_DAY,
    )


async def populate(system: System, args: argparse.Namespace, rng: random.Random) -> World:
    started = time.perf_counter()
    catalog = system.catalog()
    coordinator = await catalog.new_pole("Pôle du banc système")
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    async def member(name: str) -> Caller:
        async with gate:
            return await catalog.new_member(coordinator, legal_name=name)

    providers = await asyncio.gather(
        *(member(f"Fournisseur {i + 1} du banc") for i in range(args.providers))
    )
    requesters = await asyncio.gather(
        *(member(f"Demandeur {i + 1} du banc") for i in range(args.requesters))
    )
    total = args.providers * args.offers_per_provider
    on_approval = set(rng.sample(range(total), round(args.approval_share * total)))

    async def offer(index: int) -> Offer:
        provider = providers[index % args.providers]  # its rooms and projectors in turn
        projector = (index // args.providers) % 2 == 1
        body = offer_body(index, projector=projector, approval=index in on_approval)
        async with gate:
            created = await provider.post("/offers", json=body)
            if created.status_code != 201:
                raise RuntimeError(f"POST /offers: {created.status_code} {created.text}")
            offer_id = created.json()["id"]
            published = await provider.post(f"/offers/{offer_id}/publish")
            if published.status_code != 200:
                raise RuntimeError(f"publish: {published.status_code} {published.text}")
        return Offer(offer_id, provider, approval=index in on_approval)

    offers = await asyncio.gather(*(offer(i) for i in range(total)))
    world = World(coordinator.pole_id, list(providers), list(requesters), list(offers))
    world.setup_seconds = time.perf_counter() - started
    return world


async def wait_for_copies(system: System, world: World) -> float:
    """Until the exchange has the pole, the members and the published offers, and the ledger
    the pole and the members (from the catalog's events)."""
    started = time.perf_counter()
    members = [m.member_id for m in world.members]
    offers = [uuid.UUID(o.id) for o in world.offers]
    exchange = await asyncpg.connect(dsn(system, "exchange"))
    ledger = await asyncpg.connect(dsn(system, "ledger"))
    count = "SELECT count(*) FROM {} WHERE id = ANY($1::uuid[])"
    expected = (1, len(members), len(offers), 1, len(members))
    have: tuple[int, ...] = ()

    async def copied() -> bool:
        nonlocal have
        have = (
            await exchange.fetchval(count.format("pole"), [world.pole_id]),
            await exchange.fetchval(count.format("member"), members),
            await exchange.fetchval(count.format("offer") + " AND state = 'published'", offers),
            await ledger.fetchval(count.format("pole"), [world.pole_id]),
            await ledger.fetchval(count.format("member"), members),
        )
        return have == expected

    try:
        await eventually(copied, timeout=COPY_TIMEOUT_SECONDS, interval=0.2)
    except AssertionError as exc:
        raise TimeoutError(
            f"after {COPY_TIMEOUT_SECONDS:g} s, the exchange's pole, members, published offers "
            f"and the ledger's pole, members: {have}, not {expected}"
        ) from exc
    finally:
        await exchange.close()
        await ledger.close()
    return time.perf_counter() - started


def dsn(system: System, service: str) -> str:
    return asyncpg_dsn(system.settings[service].database_url)


async def renew_tokens(http: httpx.AsyncClient, callers: Sequence[Caller], every: float) -> None:
    """Every ``every`` seconds, a new token for each member (they last
    ``AUTH_TOKEN_TTL_SECONDS``), as a client renews its own."""
    while True:
        await asyncio.sleep(every)
        for caller in callers:
            with contextlib.suppress(httpx.HTTPError):
                answer = await get_token(http, caller.client_id, caller.client_secret)
                if answer.status_code == 200:
                    caller.token = answer.json()["access_token"]


# --- memory and CPU, every second -------------------------------------------------------------


def vm_rss(pid: int) -> int:
    """``VmRSS`` of a process, in bytes (0 when it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Usage:
    """Every second: the resident memory of each service's and the broker's process tree
    (the sum of its processes' ``VmRSS``) in ``samples`` [(time, {name: bytes})], and the CPU
    seconds used so far by each component's tree, this process and the whole machine
    (``MACHINE``, other people's load included) in ``cpu`` [(time, {name: seconds})]."""

    def __init__(self, roots: dict[str, int], cpu_roots: dict[str, int | None]) -> None:
        self.roots = roots
        self.cpu_roots = {name: pid for name, pid in cpu_roots.items() if pid is not None}
        self.trees: dict[str, list[int]] = {}
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.cpu: list[tuple[float, dict[str, float]]] = []
        self.largest: dict[str, int] = {}  # the biggest single process of each tree, at peak

    def _list_trees(self) -> None:
        for name, pid in self.roots.items():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                self.trees[name] = [pid, *(child.pid for child in root.children(recursive=True))]

    def sample(self) -> dict[str, int]:
        if len(self.samples) % TREE_REFRESH_SAMPLES == 0:
            self._list_trees()
        now = time.time()
        sizes = {}
        for name, pids in self.trees.items():
            each = [vm_rss(pid) for pid in pids]
            sizes[name] = sum(each)
            self.largest[name] = max(self.largest.get(name, 0), *each)
        self.samples.append((now, sizes))
        table = _proc_table()
        used = {n: sum(_tree_cpu(table, pid)) for n, pid in self.cpu_roots.items() if pid in table}
        used[LOADGEN] = time.process_time()
        used[MACHINE] = _machine_busy()
        self.cpu.append((now, used))
        return sizes

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(1.0)

    def between(self, start: float, end: float) -> list[dict[str, int]]:
        return [sizes for at, sizes in self.samples if start <= at <= end]

    def at(self, moment: float) -> dict[str, int]:
        """The last memory sample taken at or before ``moment`` (the first one if none)."""
        return _last(self.samples, moment)[1] if self.samples else {}

    def cores(self, start: float, end: float) -> dict[str, float]:
        """CPUs each component kept busy on average between the samples before ``start``
        and ``end``."""
        if not self.cpu:
            return {}
        (began, before), (ended, after) = _last(self.cpu, start), _last(self.cpu, end)
        span = ended - began
        return {n: (after[n] - before.get(n, 0.0)) / span if span > 0 else math.nan for n in after}

    def processes(self) -> dict[str, int]:
        return {name: len(pids) for name, pids in self.trees.items()}


def _last(series: Sequence[tuple[float, T]], moment: float) -> tuple[float, T]:
    """The last (time, value) at or before ``moment`` (the first one if none)."""
    index = bisect.bisect_right([at for at, _ in series], moment)
    return series[max(index - 1, 0)]


# --- the load ------------------------------------------------------------------------------


@dataclass
class Window:
    began: float  # the first arrival
    measured_from: float  # after the warm-up
    measured_to: float  # arrivals stop

    @property
    def seconds(self) -> float:
        return self.measured_to - self.measured_from

    def measured(self, moment: float) -> bool:
        return self.measured_from <= moment < self.measured_to


@dataclass
class Load:
    """The open loop: journeys arriving at ``rate`` per second, each a task of its own."""

    url: str
    world: World
    args: argparse.Namespace
    rng: random.Random
    samples: list[list[Sample]] = field(default_factory=lambda: [[] for _ in STEPS])
    outcomes: list[tuple[float, str]] = field(default_factory=list)  # (arrival, outcome)
    unexpected: Counter[str] = field(default_factory=Counter)
    next_free: dict[str, float] = field(default_factory=dict)  # offer -> end of its last slot
    running: set[asyncio.Task[None]] = field(default_factory=set)
    # Connections with when each was last used; the most recently used first.
    pool: asyncio.LifoQueue[tuple[RawHttp, float]] = field(default_factory=asyncio.LifoQueue)

    def __post_init__(self) -> None:
        for _ in range(self.args.connections):
            self.pool.put_nowait((RawHttp(self.url), 0.0))

    async def close(self) -> None:
        while not self.pool.empty():
            await self.pool.get_nowait()[0].close()

    async def _call(
        self,
        step: int,
        path: str,
        body: Callable[[], bytes],
        caller: Caller,
        *,
        arrival: float,
        scheduled: float,
    ) -> tuple[int, str]:
        """One request on a free connection, the body made once it is there; recorded."""
        sent = math.nan
        try:
            async with asyncio.timeout(self.args.timeout):
                http, used = await self.pool.get()
                try:
                    if time.time() - used > IDLE_SECONDS:
                        await http.close()  # the server may be closing it: a new one
                    payload = body()
                    kind = b"Content-Type: application/json\r\n" if payload else b""
                    headers = b"Authorization: Bearer %s\r\n%s" % (caller.token.encode(), kind)
                    sent = time.time()
                    status, text = await http.post(path, payload, headers)
                finally:
                    self.pool.put_nowait((http, time.time()))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            status, text = -1, f"no answer: {exc!r}"
        self.samples[step].append((arrival, scheduled, sent, time.time(), status))
        if status != EXPECTED[step]:
            self.unexpected[f"{STEPS[step]}: {status} {_problem(text)}"] += 1
        return status, text

    async def journey(self, arrival: float) -> None:
        try:
            outcome = await self._journey(arrival)
        except (ValueError, KeyError) as exc:  # an answer that is not the expected JSON
            outcome = f"failed: {exc!r}"[:200]
        self.outcomes.append((arrival, outcome))

    async def _journey(self, arrival: float) -> str:
        """Book (a slot starting ``--lead`` s later), accept (approval offers), complete."""
        offer = self.rng.choice(self.world.offers)
        requester = self.rng.choice(self.world.requesters)
        starts: list[float] = []

        def booking() -> bytes:
            # The offer's next free slot, taken when the request leaves (never a conflict).
            start = max(time.time() + self.args.lead, self.next_free.get(offer.id, 0.0))
            end = start + self.args.slot
            self.next_free[offer.id] = end
            starts.append(start)
            return (
                f'{{"offer_id":"{offer.id}","start":"{_iso(start)}","end":"{_iso(end)}"}}'
            ).encode()

        step = BOOK_APPROVAL if offer.approval else BOOK_INSTANT
        status, text = await self._call(
            step, "/requests", booking, requester, arrival=arrival, scheduled=arrival
        )
        if status != EXPECTED[step]:
            return f"failed: {STEPS[step]} {status}"
        request = f"/requests/{json.loads(text)['id']}"
        if offer.approval:
            status, _ = await self._call(
                ACCEPT, f"{request}/accept", _no_body, offer.provider,
                arrival=arrival, scheduled=time.time(),
            )  # fmt: skip
            if status != EXPECTED[ACCEPT]:
                return f"failed: {STEPS[ACCEPT]} {status}"
        due = starts[0] + COMPLETE_MARGIN_SECONDS
        await asyncio.sleep(max(0.0, due - time.time()))
        status, _ = await self._call(
            COMPLETE, f"{request}/complete", _no_body, offer.provider,
            arrival=arrival, scheduled=max(due, time.time()),
        )  # fmt: skip
        return (
            "completed" if status == EXPECTED[COMPLETE] else f"failed: {STEPS[COMPLETE]} {status}"
        )

    async def drive(self, window: Window) -> None:
        """Start journeys at Poisson arrivals until the end of the window."""
        arrival = window.began
        while arrival < window.measured_to:
            delay = arrival - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self.journey(arrival))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
            arrival += self.rng.expovariate(self.args.rate)

    async def finish(self, seconds: float) -> int:
        """Wait for the journeys under way; those still running after ``seconds`` are
        cancelled. How many were."""
        if self.running:
            await asyncio.wait(set(self.running), timeout=seconds)
        left = list(self.running)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        return len(left)


def _problem(text: str) -> str:
    """A problem answer's ``detail`` (not its request id), or the start of the text."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(text)["detail"])[:200]
    return text[:200]


def _no_body() -> bytes:
    return b""


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _errors(load: Load, start: float, end: float, *, by: int) -> int:
    """Answers other than the expected one among the samples whose field ``by`` (1: the
    scheduled time, 3: the answer's) falls in [start, end)."""
    return sum(
        1
        for step, samples in enumerate(load.samples)
        for sample in samples
        if start <= sample[by] < end and sample[4] != EXPECTED[step]
    )


async def progress(load: Load, memory: Usage, window: Window, every: float) -> None:
    """A line on stderr every ``every`` seconds: arrivals, answers, errors, memory."""
    last = time.time()
    while True:
        await asyncio.sleep(every)
        now = time.time()
        span = now - last
        answered = sum(1 for step in load.samples for s in step if last <= s[3] < now)
        bookings = load.samples[BOOK_INSTANT] + load.samples[BOOK_APPROVAL]
        arrivals = sum(1 for s in bookings if last <= s[0] < now)
        completed = sum(1 for s in load.samples[COMPLETE] if last <= s[3] < now and s[4] == 200)
        phase = "warm-up" if now < window.measured_from else "measured"
        sizes = memory.samples[-1][1] if memory.samples else {}
        print(
            f"[{now - window.began:6.0f} s {phase}] arrivals {arrivals / span:.0f}/s, "
            f"answers {answered / span:.0f}/s, completions {completed / span:.0f}/s, errors "
            f"{_errors(load, last, now, by=3)}, journeys under way {len(load.running)}; RSS "
            + ", ".join(f"{name} {size / MB:.0f} MB" for name, size in sizes.items()),
            file=sys.stderr,
            flush=True,
        )
        last = now


# --- from the databases: completions, postings, lag ----------------------------------------


@dataclass
class Commits:
    """When each exchange of the pole completed in the exchange, and when the ledger posted
    it (epoch seconds)."""

    completed: dict[uuid.UUID, float]
    posted: dict[uuid.UUID, float]
    clock: str  # what the times are

    def lags_ms(self, start: float, end: float) -> list[float]:
        """Exchange → ledger, for the exchanges completed in [start, end) and posted."""
        return [
            1000 * (self.posted[rid] - at)
            for rid, at in self.completed.items()
            if start <= at < end and rid in self.posted
        ]

    def completed_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.completed.values() if start <= at < end)

    def posted_between(self, start: float, end: float) -> int:
        return sum(1 for at in self.posted.values() if start <= at < end)

    def backlog(self, moment: float) -> int:
        """Exchanges completed by ``moment`` that the ledger had not posted by then."""
        return sum(
            1
            for rid, at in self.completed.items()
            if at < moment and self.posted.get(rid, math.inf) >= moment
        )

    def unposted(self, start: float, end: float) -> int:
        return sum(
            1 for rid, at in self.completed.items() if start <= at < end and rid not in self.posted
        )


_COMPLETED = """
SELECT id, {time} AS at FROM booking_request WHERE pole_id = $1 AND state = 'completed'
"""
_POSTED = """
SELECT split_part(source, ':', 2)::uuid AS id, max({time}) AS at FROM entry
WHERE pole_id = $1 AND source LIKE 'exchange:%:completed:%' GROUP BY 1
"""
_COMMIT_TIME = "pg_xact_commit_timestamp(xmin)"


async def read_commits(system: System, pole_id: uuid.UUID, *, commit_clock: bool) -> Commits:
    times = (_COMMIT_TIME, _COMMIT_TIME) if commit_clock else ("updated_at", "posted_at")
    found = []
    for service, statement, column in zip(
        ("exchange", "ledger"), (_COMPLETED, _POSTED), times, strict=True
    ):
        conn = await asyncpg.connect(dsn(system, service))
        try:
            rows = await conn.fetch(statement.format(time=column), pole_id)
        finally:
            await conn.close()
        found.append({row["id"]: row["at"].timestamp() for row in rows if row["at"] is not None})
    clock = (
        "commit times (track_commit_timestamp)"
        if commit_clock
        else "row times taken before commit (booking_request.updated_at, entry.posted_at): "
        "track_commit_timestamp is off on this server"
    )
    return Commits(found[0], found[1], clock)


async def drain(system: System, pole_id: uuid.UUID, seconds: float) -> tuple[float, int]:
    """Wait until the ledger has posted every completed exchange, ``seconds`` at most; how
    long it took, and how many were still not posted."""
    started = time.perf_counter()
    exchange = await asyncpg.connect(dsn(system, "exchange"))
    ledger = await asyncpg.connect(dsn(system, "ledger"))
    try:
        while True:
            completed = await exchange.fetchval(
                "SELECT count(*) FROM booking_request WHERE pole_id = $1 AND state = 'completed'",
                pole_id,
            )
            posted = await ledger.fetchval(
                "SELECT count(DISTINCT split_part(source, ':', 2)) FROM entry"
                " WHERE pole_id = $1 AND source LIKE 'exchange:%:completed:%'",
                pole_id,
            )
            waited = time.perf_counter() - started
            if posted >= completed or waited > seconds:
                return waited, max(0, int(completed) - int(posted))
            await asyncio.sleep(0.5)
    finally:
        await exchange.close()
        await ledger.close()


async def reconciliation(system: System, pole_id: uuid.UUID) -> Reconciliation:
    """``ledger.trust.reconcile``, as ``ptce ledger reconcile --pole`` runs it."""
    engines = [create_engine(system.settings[s].database_url, pool_size=1) for s in SERVICES[1:]]
    try:
        async with AsyncSession(engines[0]) as exchange, AsyncSession(engines[1]) as ledger:
            return await reconcile(exchange, ledger, pole_id)
    finally:
        for engine in engines:
            await engine.dispose()


@dataclass
class Warnings:
    """What the services logged above ``info`` during the run, by service, level and event;
    and how many events each relay sent again after believing the broker had lost them."""

    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    sent_again: Counter[str] = field(default_factory=Counter)


_LOGGED = re.compile(r"\[(warning|error|critical)\s*\] (\S+)")
_SENT_AGAIN = re.compile(r"sent_again=(\d+)")


def read_warnings(logs: Path) -> Warnings:
    found = Warnings()
    for service in SERVICES:
        with contextlib.suppress(OSError):
            for line in (logs / f"{service}.log").read_text(errors="replace").splitlines():
                if match := _LOGGED.search(line):
                    found.events[(service, match[1], match[2])] += 1
                    if again := _SENT_AGAIN.search(line):
                        found.sent_again[service] += int(again[1])
    return found


# --- the run -------------------------------------------------------------------------------


@dataclass
class Results:
    args: argparse.Namespace
    servers: Servers
    system: System
    world: World
    load: Load
    window: Window
    memory: Usage
    commits: Commits
    cpu: dict[str, Cpu]
    reconciled: Reconciliation
    unfinished: int
    drain_seconds: float
    unposted_after_drain: int
    load_average: tuple[tuple[float, float, float], tuple[float, float, float]]
    settings: dict[str, ServiceSettings]
    warnings: Warnings
    statements: list[str] | None = None
    broker_writes: dict[str, tuple[int, int, int]] = field(default_factory=dict)


async def _backends(system: System) -> dict[int, tuple[str, float]]:
    """PostgreSQL's backends: pid -> (the service whose database it serves, its CPU seconds
    so far), when the server runs on this machine."""
    databases = {system.settings[s].database_url.rsplit("/", 1)[1]: s for s in SERVICES}
    conn = await asyncpg.connect(dsn(system, "exchange"))
    try:
        rows = await conn.fetch(
            "SELECT pid, datname FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    table = _proc_table()
    return {
        row["pid"]: (databases.get(row["datname"], "others"), sum(table[row["pid"]][1]))
        for row in rows
        if row["pid"] in table
    }


STATEMENTS_TOP = 25

_BROKER_WRITES = (
    "SELECT count(*) AS events,"
    " count(DISTINCT (published_at, kafka_partition)) AS batches,"
    " count(DISTINCT kafka_partition) AS partitions"
    " FROM outbox WHERE published_at IS NOT NULL"
)


async def _broker_writes(system: System) -> dict[str, tuple[int, int, int]]:
    """Per service: events its relay published, in how many record batches, to how many
    partitions. A publication's rows for one partition go in one produce request, so one
    batch; the embedded broker keeps each batch as an object and its fetches cost more the
    more objects a partition holds (docs/events.md)."""
    found = {}
    for service in SERVICES:
        conn = await asyncpg.connect(dsn(system, service))
        try:
            row = await conn.fetchrow(_BROKER_WRITES)
        finally:
            await conn.close()
        assert row is not None
        found[service] = (row["events"], row["batches"], row["partitions"])
    return found


async def _analyze(system: System) -> None:
    """ANALYZE the services' databases, as autovacuum does on a running system.

    They start empty: a statement prepared then keeps the plan made for an empty table (a
    sequential scan) until the table is first analyzed, which autovacuum does within a
    minute or so. The ledger's postings cost 1.7 ms, 3.4 ms, then 5.3 ms per exchange each
    half-minute until then, and 1 ms after. A pole in operation has current statistics.
    """
    for service in SERVICES:
        conn = await asyncpg.connect(dsn(system, service))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()


async def _statements(system: System, *, reset: bool) -> list[str]:
    """``pg_stat_statements``: reset it, or its top statements by time since the reset."""
    conn = await asyncpg.connect(dsn(system, "exchange"))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return []
        databases = {system.settings[s].database_url.rsplit("/", 1)[1]: s for s in SERVICES}
        rows = await conn.fetch(
            "SELECT d.datname, s.calls, s.total_exec_time, s.rows, s.query"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " ORDER BY s.total_exec_time DESC LIMIT $1",
            STATEMENTS_TOP,
        )
    finally:
        await conn.close()
    return [
        f"  {databases.get(row['datname'], row['datname']):<9}{row['calls']:>9}"
        f"{row['total_exec_time'] / 1000:>9.2f}{1000 * row['total_exec_time'] / row['calls']:>9.0f}"
        f"{row['rows'] / row['calls']:>7.1f}  {' '.join(row['query'].split())[:110]}"
        for row in rows
    ]


async def _measure_cpu(
    meter: CpuMeter,
    system: System,
    window: Window,
    into: dict[str, Cpu],
    statements: list[str] | None = None,
) -> None:
    """The CPU of each component during the window; PostgreSQL's split by the database its
    backends serve (a backend that ended during the window is not counted there); with
    ``statements``, what pg_stat_statements saw during the window goes there."""
    await asyncio.sleep(max(0.0, window.measured_from - time.time()))
    await _analyze(system)
    meter.start()
    before = await _backends(system)
    if statements is not None:
        await _statements(system, reset=True)
    await asyncio.sleep(max(0.0, window.measured_to - time.time()))
    into.update(meter.stop())
    if statements is not None:
        statements.extend(await _statements(system, reset=False))
    used: dict[str, float] = defaultdict(float)
    for pid, (service, seconds) in (await _backends(system)).items():
        used[service] += seconds - before.get(pid, (service, 0.0))[1]
    for service, seconds in used.items():
        into[f"{BACKENDS}{service}"] = (seconds, 0.0)


async def run(servers: Servers, args: argparse.Namespace, logs: Path) -> Results:
    rng = random.Random(args.seed)  # noqa: S311 - load, not secrets
    infra = servers.infra
    async with (
        bench_settings(infra, new_topic_prefix()) as settings,
        running_system(
            settings, logs, workers=args.workers, separate_workers=args.separate_workers
        ) as system,
    ):
        print("services ready; creating the pole, members and offers…", file=sys.stderr)
        world = await populate(system, args, rng)
        world.copy_seconds = await wait_for_copies(system, world)
        roots = {s: system.processes[s].pid for s in SERVICES}
        if infra.broker is not None and infra.broker.process is not None:
            roots[BROKER] = infra.broker.process.pid
        postgres = await postmaster_pid(dsn(system, "exchange"))
        meter = CpuMeter({**roots, POSTGRES: postgres})
        memory = Usage(roots, meter.roots)
        memory.sample()
        load = Load(system.url("exchange"), world, args, rng)
        start = time.time() + 0.5
        window = Window(start, start + args.warmup, start + args.warmup + 60 * args.minutes)
        print(
            f"{len(world.members)} members, {len(world.offers)} offers in "
            f"{world.setup_seconds:.0f} s; {args.warmup:g} s warm-up then {args.minutes:g} min "
            f"at {args.rate:g} journeys/s…",
            file=sys.stderr,
        )
        load_before = os.getloadavg()
        cpu: dict[str, Cpu] = {}
        statements: list[str] | None = [] if args.statements else None
        ttl = system.settings["catalog"].auth_token_ttl_seconds
        background = [
            asyncio.create_task(memory.run()),
            asyncio.create_task(_measure_cpu(meter, system, window, cpu, statements)),
            asyncio.create_task(progress(load, memory, window, 60.0 if args.soak else 10.0)),
            asyncio.create_task(
                renew_tokens(system.http["catalog"], world.members, max(30.0, ttl / 2))
            ),
        ]
        try:
            await load.drive(window)
            unfinished = await load.finish(args.lead + args.slot + 2 * args.timeout)
            load_after = os.getloadavg()
            print("arrivals stopped; the ledger catches up…", file=sys.stderr)
            drained, unposted = await drain(system, world.pole_id, args.drain)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await load.close()
        memory.sample()
        commits = await read_commits(system, world.pole_id, commit_clock=servers.commit_clock)
        reconciled = await reconciliation(system, world.pole_id)
        writes = await _broker_writes(system)
        return Results(
            args=args,
            servers=servers,
            system=system,
            world=world,
            load=load,
            window=window,
            memory=memory,
            commits=commits,
            cpu=cpu,
            reconciled=reconciled,
            unfinished=unfinished,
            drain_seconds=drained,
            unposted_after_drain=unposted,
            load_average=(load_before, load_after),
            settings=dict(system.settings),
            warnings=read_warnings(logs),
            statements=statements,
            broker_writes=writes,
        )


# --- the report ----------------------------------------------------------------------------


def _cells(values: Sequence[float], width: int = 9) -> str:
    cells = [percentile(values, q) for q in (0.5, 0.95, 0.99)] + [max(values, default=math.nan)]
    return "".join(f"{c:>{width}.1f}" for c in cells)


def _latencies(samples: Sequence[Sample]) -> list[float]:
    return [1000 * (answered - scheduled) for _, scheduled, _, answered, _ in samples]


def _round_trips(samples: Sequence[Sample]) -> list[float]:
    return [1000 * (answered - sent) for _, _, sent, answered, _ in samples if not math.isnan(sent)]


def _http_p99(load: Load, start: float, end: float) -> float:
    values = [1000 * (s[3] - s[1]) for step in load.samples for s in step if start <= s[1] < end]
    return percentile(values, 0.99)


UNPOSTED = "completed but not in the journal"


def _kind(problem: str) -> str:
    """A reconciliation difference without its figures (``revenue 12.00 in the journal…``)."""
    return problem if problem == UNPOSTED else re.sub(r"[0-9.]+", "N", problem)


def _mb(value: float) -> str:
    return f"{value / MB:.0f}"


def _memory_lines(results: Results) -> tuple[list[str], dict[str, float]]:
    memory, window = results.memory, results.window
    during = memory.between(window.began, time.time())
    before = memory.samples[0][1] if memory.samples else {}
    after_warmup, end = memory.at(window.measured_from), memory.at(window.measured_to)
    peaks = {name: float(max(s.get(name, 0) for s in during)) if during else math.nan
             for name in memory.roots}  # fmt: skip
    counts = memory.processes()
    lines = [
        f"{'resident memory (MB, VmRSS of the tree)':<42}{'before':>8}{'warm':>8}{'end':>8}"
        f"{'max':>8}  processes (the largest one at most)"
    ]
    for name in memory.roots:
        lines.append(
            f"  {name:<40}{_mb(before.get(name, 0)):>8}{_mb(after_warmup.get(name, 0)):>8}"
            f"{_mb(end.get(name, 0)):>8}{_mb(peaks[name]):>8}  {counts.get(name, 0)} "
            f"({_mb(memory.largest.get(name, 0))} MB)"
        )
    return lines, peaks


def _growth(results: Results) -> dict[str, float]:
    """Each service's memory in the window's last minute against its first (medians)."""
    memory, window = results.memory, results.window
    first = memory.between(window.measured_from, window.measured_from + 60)
    last = memory.between(window.measured_to - 60, window.measured_to)
    growth = {}
    for name in SERVICES:
        if first and last:
            a = statistics.median(s.get(name, 0) for s in first)
            b = statistics.median(s.get(name, 0) for s in last)
            growth[name] = (b - a) / a if a else math.nan
    return growth


def _timeline(results: Results, seconds: float) -> list[str]:
    """Per slice of ``seconds`` of the window: arrivals, completions, postings, lag, p99,
    errors, CPU (this run's components and the others' load on the machine), memory."""
    window, commits, load, usage = results.window, results.commits, results.load, results.memory
    arrivals = sorted(s[0] for s in load.samples[BOOK_INSTANT] + load.samples[BOOK_APPROVAL])
    shown = ("exchange", "ledger", POSTGRES, BROKER)
    lines = [
        f"{'from (s)':>8}{'arrive/s':>9}{'compl/s':>8}{'posted/s':>9}{'lag p50':>8}"
        f"{'lag p99':>8}{'HTTP p99':>9}{'errors':>7}  CPUs exch/ledg/PG/brok/others  RSS MB "
        + " / ".join(usage.roots)
    ]
    start = window.measured_from
    while start < window.measured_to - 1e-6:
        end = min(start + seconds, window.measured_to)
        span = end - start
        lags = commits.lags_ms(start, end)
        cores = usage.cores(start, end)
        others = cores.get(MACHINE, math.nan) - sum(v for n, v in cores.items() if n != MACHINE)
        sizes = usage.at(end)
        came = sum(1 for a in arrivals if start <= a < end)
        lines.append(
            f"{start - window.measured_from:>8.0f}{came / span:>9.1f}"
            f"{commits.completed_between(start, end) / span:>8.1f}"
            f"{commits.posted_between(start, end) / span:>9.1f}"
            f"{percentile(lags, 0.5):>8.0f}{percentile(lags, 0.99):>8.0f}"
            f"{_http_p99(load, start, end):>9.0f}{_errors(load, start, end, by=1):>7}  "
            + "/".join(f"{cores.get(n, math.nan):.2f}" for n in shown)
            + f"/{others:.2f}  "
            + " / ".join(_mb(sizes.get(name, 0)) for name in usage.roots)
        )
        start = end
    return lines


def _windows(results: Results) -> tuple[list[str], bool]:
    """The soak's 5-minute windows: p99 per endpoint, of all HTTP answers, of the lag; and
    whether every window's stays within SOAK_P99_DRIFT x the first's."""
    window, load, commits = results.window, results.load, results.commits
    lines = [
        f"{'window (min)':<14}"
        + "".join(f"{name:>17}" for name in SHORT)
        + f"{'all HTTP':>10}{'lag':>8}"
    ]
    http: list[float] = []
    lags: list[float] = []
    start = window.measured_from
    while start < window.measured_to - 1:
        end = min(start + SOAK_WINDOW_SECONDS, window.measured_to)
        per_step = [
            percentile([1000 * (s[3] - s[1]) for s in samples if start <= s[1] < end], 0.99)
            for samples in load.samples
        ]
        http.append(_http_p99(load, start, end))
        lags.append(percentile(commits.lags_ms(start, end), 0.99))
        label = f"{(start - window.measured_from) / 60:.0f}-{(end - window.measured_from) / 60:.0f}"
        lines.append(
            f"{label:<14}"
            + "".join(f"{p:>17.0f}" for p in per_step)
            + f"{http[-1]:>10.0f}{lags[-1]:>8.0f}"
        )
        start = end
    stable = bool(http) and all(
        p <= SOAK_P99_DRIFT * series[0] for series in (http, lags) for p in series
    )
    return lines, stable


def _cpu_lines(results: Results, exchanges: int, answers: int) -> list[str]:
    cpu, seconds = results.cpu, results.window.seconds
    per_exchange = 1000 / max(exchanges, 1)
    lines = [
        f"{'CPU during the window (user + system)':<42}{'s':>8}{'CPUs':>7}"
        f"{'ms/exchange':>13}{'ms/HTTP answer':>16}"
    ]

    def row(name: str, used: float) -> str:
        per_answer = f"{used * 1000 / max(answers, 1):>16.2f}" if name in SERVICES[:2] else ""
        return (
            f"  {name:<40}{used:>8.1f}{used / seconds:>7.2f}{used * per_exchange:>13.2f}"
            + per_answer
        )

    ours = 0.0
    components = [n for n in cpu if n != MACHINE and not n.startswith(BACKENDS)]
    for name in sorted(components, key=lambda n: -sum(cpu[n])):
        used = sum(cpu[name])
        ours += used
        lines.append(row(name, used))
        if name == POSTGRES:
            backends = [n for n in sorted(cpu) if n.startswith(BACKENDS)]
            lines += [row(n, sum(cpu[n])) for n in backends]
            rest = used - sum(sum(cpu[n]) for n in backends)
            lines.append(row("  of which the rest (background, ended)", rest))
    machine = cpu.get(MACHINE, (math.nan, 0.0))[0]
    cpus = os.cpu_count() or 1
    ceiling = cpus * 1000 / (ours * per_exchange) if ours else math.nan
    lines += [
        f"  all of this run's processes: {ours / seconds:.2f} CPUs, {ours * per_exchange:.1f} ms "
        f"per exchange posted (work that did not end in a posting counts too): at most "
        f"{ceiling:.0f} exchanges/s on {cpus} CPUs if nothing else ran",
        f"  the whole machine: {machine / seconds:.2f} CPUs busy (others' load: "
        f"{(machine - ours) / seconds:.2f})",
    ]
    workers = results.args.workers
    beside = " and its worker process" if results.args.separate_workers else ""
    for service in SERVICES:
        used = sum(cpu.get(service, (0.0, 0.0)))
        share = used / seconds / workers
        lines.append(
            f"  {service}: {used / seconds:.2f} CPUs over {workers} process(es) serving"
            f"{beside} ({100 * share:.0f} % of {workers} CPU{'s' if workers > 1 else ''})"
            + ("  <- saturated" if share >= 0.85 and not beside else "")
        )
    ledger = sum(cpu.get("ledger", (0.0, 0.0))) + cpu.get(f"{BACKENDS}ledger", (0.0, 0.0))[0]
    if exchanges:
        lines.append(
            f"  the ledger's CPU and its backends' make {ledger * per_exchange:.1f} ms per exchange"
            " posted (one transaction per poll of events: less per exchange as batches grow)"
        )
    return lines


def render(results: Results) -> str:
    args, window, load, commits = results.args, results.window, results.load, results.commits
    seconds = window.seconds
    measured = [[s for s in samples if window.measured(s[0])] for samples in load.samples]
    lags = commits.lags_ms(window.measured_from, window.measured_to)
    completed = commits.completed_between(window.measured_from, window.measured_to)
    posted = commits.posted_between(window.measured_from, window.measured_to)
    unposted = commits.unposted(window.measured_from, window.measured_to)
    outcomes = Counter(o for arrival, o in load.outcomes if window.measured(arrival))
    journeys = len(measured[BOOK_INSTANT]) + len(measured[BOOK_APPROVAL])
    answers = sum(1 for samples in measured for s in samples if s[4] > 0)  # answered
    rate = posted / seconds
    lag_p99 = percentile(lags, 0.99)
    memory_lines, peaks = _memory_lines(results)
    exchange_settings = results.settings["exchange"]
    (b1, b5, b15), (a1, a5, a15) = results.load_average
    rule = "-" * 104
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    world = results.world
    approvals = sum(1 for o in world.offers if o.approval)
    lines = [
        "PTCE whole-system benchmark (bench/system.py)" + (" --soak" if args.soak else ""),
        rule,
        f"machine     nproc={os.cpu_count()} (usable {affinity}), Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}; load average "
        f"{b1:.2f} {b5:.2f} {b15:.2f} before the load, {a1:.2f} {a5:.2f} {a15:.2f} at its end",
        f"servers     PostgreSQL: {results.servers.postgres}; broker: {results.servers.broker}",
        f"services    `ptce serve SERVICE --workers {args.workers}` each ("
        + (
            "`ptce worker SERVICE` beside it, with the relay and consumers"
            if args.separate_workers
            else "relay and consumers inside"
        )
        + f"), HTTP_RATE_LIMIT_PER_SECOND=0, db_pool_size={exchange_settings.db_pool_size} "
        f"(+{exchange_settings.db_pool_size // 2} overflow) per process, LOG_LEVEL="
        f"{exchange_settings.log_level}, LOG_FORMAT=console (as the harness runs them), "
        f"OUTBOX_LINGER_MS={exchange_settings.outbox_linger_ms}, "
        f"KAFKA_FETCH_MAX_WAIT_MS={exchange_settings.kafka_fetch_max_wait_ms}",
        f"pole        {len(world.providers)} providers with {len(world.offers)} offers "
        f"(rooms by the day, projectors by the loan, capacity 1; {approvals} on approval), "
        f"{len(world.requesters)} requesters, each member its own client and token; setup "
        f"{world.setup_seconds:.0f} s, copies in the exchange and the ledger after "
        f"{world.copy_seconds:.1f} s",
        f"journey     book a slot starting {args.lead:g} s later, {args.slot:g} s long (the "
        f"offer's next free one); accept (approval offers); complete once the slot started "
        f"(+{1000 * COMPLETE_MARGIN_SECONDS:.0f} ms); the ledger posts request.completed. No "
        "row is moved in the databases: the rules allow completing a booking once started",
        f"load        open loop, Poisson arrivals at {args.rate:g} journeys/s, "
        f"{args.warmup:g} s warm-up then {seconds:.0f} s measured; {args.connections} "
        f"keep-alive connections to the exchange, {args.timeout:g} s timeout; seed {args.seed}",
        rule,
        f"throughput  journeys started {journeys} ({journeys / seconds:.1f}/s); "
        f"completed in the exchange {completed / seconds:.1f}/s ({completed}); posted in the "
        f"ledger {rate:.1f}/s ({posted}) = end to end",
        "            journeys of the window: "
        + ", ".join(f"{n} {o}" for o, n in outcomes.most_common())
        + (
            f"; {results.unfinished} still under way at the end, cancelled"
            if results.unfinished
            else ""
        ),
        f"            the ledger's backlog: {commits.backlog(window.measured_from)} completed "
        f"exchanges not posted yet when the window began, {commits.backlog(window.measured_to)}"
        " when it ended",
        f"            of the exchanges completed in the window, {unposted} not posted at the end;"
        f" once the journeys under way had finished, the ledger "
        + (
            f"was still {results.unposted_after_drain} exchanges behind after "
            f"{results.drain_seconds:.0f} s (--drain)"
            if results.unposted_after_drain
            else f"caught up in {results.drain_seconds:.1f} s"
        ),
        rule,
        f"{'latency, ms from the scheduled time':<36}{'n':>7}{'p50':>9}{'p95':>9}{'p99':>9}"
        f"{'max':>9}   round trip p50 / p99",
    ]
    for step, samples in enumerate(measured):
        trips = _round_trips(samples)
        lines.append(
            f"  {STEPS[step]:<34}{len(samples):>7}{_cells(_latencies(samples))}   "
            f"{percentile(trips, 0.5):.1f} / {percentile(trips, 0.99):.1f}"
        )
    for step, samples in enumerate(measured):
        statuses = Counter(s[4] for s in samples)
        if set(statuses) - {EXPECTED[step]}:
            lines.append(
                f"  !!! {STEPS[step]}: "
                + ", ".join(
                    f"{STATUS.get(code, code)} x{n}" for code, n in sorted(statuses.items())
                )
            )
    lines += [
        f"{'lag exchange -> ledger (ms)':<36}{len(lags):>7}{_cells(lags)}",
        f"  from {commits.clock}: completion committed in the exchange -> its entries "
        "committed in the ledger",
        rule,
        "per minute of the window",
        *_timeline(results, 60.0),
        rule,
        *memory_lines,
        rule,
        *_cpu_lines(results, posted, answers),
        rule,
    ]
    lines.append("broker writes  events published, in record batches, per service")
    for service, (events, batches, partitions) in results.broker_writes.items():
        lines.append(
            f"  {service:<9}{events:>9} events in {batches:>8} batches "
            f"({events / max(batches, 1):.1f} per batch) over {partitions} partitions"
        )
    lines.append(rule)
    if results.statements is not None:
        lines += [
            "statements  pg_stat_statements during the window, by total time "
            f"(top {STATEMENTS_TOP}; {posted} exchanges posted)",
            f"  {'database':<9}{'calls':>9}{'total s':>9}{'mean us':>9}{'rows':>7}  query",
            *results.statements,
            rule,
        ]
    reconciled = results.reconciled
    kinds = Counter(_kind(d.problem) for d in reconciled.differences)
    lines.append(
        f"reconcile   ledger.trust.reconcile: {reconciled.exchanges} completed exchanges, "
        f"{len(reconciled.differences)} differences"
        + "".join(f"; {n} x {kind}" for kind, n in kinds.most_common())
    )
    if results.unposted_after_drain:
        lines.append(
            f"  the ledger had not caught up when the drain ended ({results.unposted_after_drain}"
            " not posted): those are 'completed but not in the journal', a lag, not a mismatch"
        )
    for difference in [d for d in reconciled.differences if _kind(d.problem) != UNPOSTED][:10]:
        lines.append(f"  !!! {difference.request_id}: {difference.problem}")
    logged = results.warnings
    if logged.events:
        lines += [rule, "the services' warnings and errors during the run (their logs):"]
        for (service, level, event), n in logged.events.most_common(10):
            lines.append(f"  {service:<9}{level:<9}{event:<34}x{n}")
        for service, n in logged.sent_again.items():
            lines.append(
                f"  !!! the {service}'s relay sent {n} events again, believing the broker had "
                "lost them (broker_lost_events)"
            )
    if load.unexpected:
        lines += [rule, f"!!! {sum(load.unexpected.values())} unexpected answers:"]
        for text, n in load.unexpected.most_common(10):
            lines.append(f"!!!   {n} x {text}")
    services_peak = {s: peaks.get(s, math.nan) for s in SERVICES}
    targets = [
        (
            f"end-to-end rate >= {RATE_TOLERANCE:g} x {args.rate:g}/s ({rate:.1f}/s; the "
            f"issue's target: {TARGET_RATE:g}/s, {TARGET_RATE / 2:g}/s in the soak)",
            rate >= RATE_TOLERANCE * args.rate,
        ),
        (f"lag p99 < {TARGET_LAG_P99_MS:g} ms ({lag_p99:.0f} ms)", lag_p99 < TARGET_LAG_P99_MS),
        (
            f"each service < {TARGET_RSS_MB:g} MB resident (max "
            + ", ".join(f"{s} {_mb(v)}" for s, v in services_peak.items())
            + " MB)",
            all(v < TARGET_RSS_MB * MB for v in services_peak.values()),
        ),
        (
            f"reconciliation exact ({len(reconciled.differences)} differences, "
            f"{results.unposted_after_drain} not posted)",
            not reconciled.differences and not results.unposted_after_drain,
        ),
    ]
    if args.soak:
        growth = _growth(results)
        window_lines, stable = _windows(results)
        lines += [rule, "p99 (ms) per 5-minute window", *window_lines]
        targets += [
            (
                f"memory growth <= {100 * SOAK_GROWTH:g} % ("
                + ", ".join(f"{s} {100 * g:+.1f} %" for s, g in growth.items())
                + ")",
                bool(growth) and all(g <= SOAK_GROWTH for g in growth.values()),
            ),
            (f"stable p99 (every window <= {SOAK_P99_DRIFT:g} x the first)", stable),
        ]
    lines.append(rule)
    for text, ok in targets:
        lines.append(f"target      {text}: {'PASS' if ok else 'FAIL'}")
    lines.append(f"verdict     {'PASS' if all(ok for _, ok in targets) else 'FAIL'}")
    return "\n".join(lines)


@contextlib.contextmanager
def service_logs(*, keep: bool) -> Iterator[Path]:
    """A directory for the services' logs, removed at the end unless ``keep`` or the run
    failed (then it says where it is)."""
    logs = Path(tempfile.mkdtemp(prefix="ptce-bench-system-"))
    try:
        yield logs
    except BaseException:
        print(f"the services' logs are in {logs}", file=sys.stderr)
        raise
    if keep:
        print(f"the services' logs are in {logs}", file=sys.stderr)
    else:
        shutil.rmtree(logs, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--rate", type=float, default=TARGET_RATE, help="journeys started per second (200)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"measured minutes (3; {SOAK_MINUTES:g} with --soak)",
    )
    parser.add_argument("--warmup", type=float, default=20.0, help="warm-up seconds (20)")
    parser.add_argument(
        "--soak", action="store_true",
        help=f"{SOAK_MINUTES:g} minutes at half --rate; memory every minute, p99 per 5 minutes",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=1, help="`ptce serve --workers` of each service (1)"
    )
    parser.add_argument(
        "--separate-workers",
        action="store_true",
        help="each service's relay and consumers in a `ptce worker` process beside its API "
        "(`<PREFIX>_RUN_WORKERS=false`), as the deployment files run them",
    )
    parser.add_argument("--providers", type=int, default=50, help="providing members (50)")
    parser.add_argument("--requesters", type=int, default=200, help="requesting members (200)")
    parser.add_argument(
        "--offers-per-provider", type=int, default=4, help="offers of each provider (4)"
    )
    parser.add_argument(
        "--approval-share", type=float, default=0.25,
        help="share of the offers booked on approval, the others instantly (0.25)",
    )  # fmt: skip
    parser.add_argument(
        "--lead", type=float, default=2.0, help="a slot starts this many seconds after its "
        "booking is sent (2)",
    )  # fmt: skip
    parser.add_argument("--slot", type=float, default=0.25, help="slot length, seconds (0.25)")
    parser.add_argument(
        "--connections", type=int, default=256, help="keep-alive connections to the exchange"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds before a request counts as "
        "unanswered, waiting for a connection included (30)",
    )  # fmt: skip
    parser.add_argument(
        "--drain", type=float, default=60.0,
        help="seconds the ledger is given to catch up after the last arrival (60)",
    )  # fmt: skip
    parser.add_argument("--seed", default=None, help="random seed (default: a new one)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument(
        "--statements", action="store_true",
        help="load pg_stat_statements (embedded server) and print the window's top statements",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.minutes is None:
        args.minutes = SOAK_MINUTES if args.soak else 3.0
    if args.soak:
        args.rate /= 2
    if min(args.rate, args.minutes, args.lead, args.slot, args.timeout) <= 0 or args.warmup < 0:
        parser.error("--rate, --minutes, --lead, --slot and --timeout must be positive")
    if min(args.workers, args.providers, args.requesters, args.offers_per_provider) < 1:
        parser.error("--workers, --providers, --requesters, --offers-per-provider must be >= 1")
    if not 0 <= args.approval_share <= 1:
        parser.error("--approval-share is between 0 and 1")
    args.seed = args.seed or uuid.uuid4().hex[:8]
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging(service="bench", level="WARNING", fmt="console")
    try:
        with (
            service_logs(keep=args.keep_logs) as logs,
            bench_servers(statements=args.statements) as servers,
        ):
            results = asyncio.run(run(servers, args, logs))
    except KeyboardInterrupt:
        print("interrupted; services and servers stopped", file=sys.stderr)
        return 130
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
