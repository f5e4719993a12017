"""Benchmark of booking: ``POST /requests`` over HTTP under concurrency, against the same SQL.

Run: ``.venv/bin/python bench/booking.py [--clients 64] [--seconds 20] [--offers N]
[--workers W] [--warmup S] [--client raw|httpx] [--worker-process] [--profile]
[--open-loop F]``

It starts its own PostgreSQL and Tansu broker in a temporary directory (or uses
``PTCE_TEST_POSTGRES_URL`` / ``PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS``, like the tests), creates
and migrates a catalog and an exchange database, and runs both services as real HTTP servers
in processes of their own, configured by environment variables as ``ptce dev`` does: the
catalog with ``ptce serve catalog``, the exchange with uvicorn and ``--workers W`` (default:
the machine's CPUs; each worker is a full replica with its relay and consumer, the relays
electing one leader; ``--worker-process`` moves them to ``ptce worker exchange``). Through
the catalog it creates a pole (``ptce pole create``), provider and requester members, an API
client per simulated client (several per member), and publishes capacity-one room offers
that book instantly, open every day 07:00-22:00 with no notice; it waits until the
exchange's copy has them. Then, in one run:

1. **over HTTP**: ``--clients`` concurrent clients (closed loop), each with its own bearer
   token and keep-alive connection, loop on ``POST /requests`` for a random offer and a
   random one-hour slot within the opening hours of the next days, after ``--warmup``
   seconds on other offers. The slot space (at least 64 offers, up to 30 days) is sized from
   the warm-up rate so that about 20 % of the answers are 409 (real conflicts).
2. **in SQL**: the same booking with asyncpg on as many connections, in a fresh copy of the
   exchange's schema (same pole and members, offers cloned): ``BEGIN``; the offer's row
   ``FOR UPDATE``; the overlapping holds; ``INSERT`` the request; ``INSERT`` its two outbox
   rows; ``COMMIT`` (a conflict rolls back). The services are stopped first: it is the floor.
3. **checks**: no two holding requests of an offer overlap, in both databases (a self-join
   on ``period && period``), and as many holding requests as 201 answers.

With ``--open-loop F`` (e.g. 0.5), after the closed-loop HTTP phase, an open-loop one: requests
arrive at a fixed rate, F times the closed-loop rate (Poisson arrivals), on the same
connections and tokens, for as long, on other offers; latencies count from each request's
scheduled arrival (a request waiting for a free connection is late, not omitted). Below
saturation this is the latency a client sees, which a closed loop at saturation cannot show.

It prints answers/s (all, and 201s), p50/p95/p99 latencies and status counts of both phases,
the ratio of the rates, what the PostgreSQL sessions were doing, the CPU per answer of each
process (exchange, catalog, PostgreSQL, broker, this load generator) and of the whole machine,
the exchange's own request durations (from its request log), and PASS/FAIL against the
targets: HTTP rate >= 0.5 x SQL rate, p99 < 100 ms, no double booking. Any other answer than
201 or a 409 naming the conflicting period is reported loudly. ``--profile`` samples the
exchange workers' Python stacks on ``SIGPROF`` and counts their statements (SQLAlchemy
events), and prints where their CPU goes. It exits 0 once it measured, whatever the verdict
(130 when interrupted); servers, services and databases are stopped or dropped on every way
out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from fastapi import FastAPI

from bench.events import Servers, _interrupt, create_databases, drop_databases, percentile, servers
from ptce.embedded import free_port
from ptce.testing.api import member_body, room, valid_siret
from ptce.testing.system import until_ready
from shared.contracts.exchange import RequestAccepted, RequestRequested
from shared.db import asyncpg_dsn
from shared.events.registry import all_topics, topic_name
from shared.kafka import create_topics
from shared.logging import configure_logging
from shared.migrations import upgrade
from shared.settings import ExchangeSettings, KernelSettings, ServiceSettings

TARGET_RATIO = 0.5
TARGET_P99_MS = 100.0
DAYS = 30  # slots on at most the next 30 local days, from tomorrow
OPENS, CLOSES = 7, 22  # opening hours, every day: one-hour slots from 07:00 to 21:00
HOURS = CLOSES - OPENS
# Answers / slots such that about 20 % of random attempts find their slot taken
# (the share of 409s after n attempts on S slots is 1 - (1 - e^(-n/S)) / (n/S)).
TARGET_FILL = 0.46
MIN_OFFERS = 64  # fewer would make a few offers' row locks the bottleneck (hot spots)
PROVIDERS = 4  # members owning the offers (never requesting them)
MAX_REQUESTERS = 16  # members requesting; the clients' tokens are spread over them
WARMUP_OFFERS = 32
HTTP_OFFER_POOL = 128  # offers published for the measured HTTP phase (the most it may use)
SETUP_CONCURRENCY = 8
READY_TIMEOUT_SECONDS = 120.0
COPY_TIMEOUT_SECONDS = 120.0
HOLDING = ("requested", "accepted", "completed", "no_show")
OPEN_EVERY_DAY = {
    "weekly_hours": [
        {"weekday": day, "opens": f"{OPENS:02d}:00", "closes": f"{CLOSES:02d}:00"}
        for day in range(7)
    ],
    "closures": [],
    "min_booking_minutes": 60,
    "max_booking_minutes": 600,
    "min_notice_hours": 0,
}

Sample = tuple[float, float, int]  # (sent, answered, status); status -1: no answer


# --- the services, as processes -----------------------------------------------------------


def _service_logging(service: str) -> None:
    kernel = KernelSettings()
    configure_logging(service=service, level=kernel.log_level, fmt=kernel.log_format)


# --- profiling (--profile): a sampling profiler and statement counters in each worker ------

LAYERS = (  # (path fragment, layer) of the innermost Python frame of a sample, first match
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/asyncpg/", "asyncpg (Python part)"),
    ("/fastapi/", "FastAPI"),
    ("/starlette/", "Starlette"),
    ("/pydantic", "pydantic"),
    ("/uvicorn/", "uvicorn (httptools)"),
    ("/jwt/", "PyJWT"),
    ("/cryptography/", "PyJWT"),
    ("/structlog/", "logging (structlog)"),
    ("/logging/", "logging (structlog)"),
    ("/json/", "json"),
    ("/aiokafka/", "aiokafka (relay, consumer)"),
    ("/kafka/", "aiokafka (relay, consumer)"),
    ("/cloudevents/", "cloudevents (relay)"),
    ("/asyncio/", "asyncio"),
    ("/uvloop/", "asyncio"),
    ("/exchange/", "exchange (service code)"),
    ("/shared/", "shared (kernel code)"),
)


def _layer(path: str) -> str:
    return next((layer for fragment, layer in LAYERS if fragment in path), "other")


def _where(code: Any) -> str:
    parts = code.co_filename.split("/")
    return f"{'/'.join(parts[-2:])}:{code.co_name}"


class Sampler:
    """Samples the main thread's Python stack on ``SIGPROF`` (asked every millisecond of the
    process's CPU time; the kernel's tick may make it every 4 ms), and counts the database
    work (SQLAlchemy events); written every 0.25 s. Shares of samples are shares of CPU.

    Native code (uvloop, httptools, asyncpg's protocol) has no Python frame: its time goes to
    the Python frame that runs next. Inclusive counts follow a coroutine's awaiting callers
    and, from SQLAlchemy's greenlets, the frames of the code that awaits them.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples = 0
        self.own: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.layers: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def _sample(self, _signum: int, frame: Any) -> None:
        import greenlet  # type: ignore[import-untyped]

        self.samples += 1
        if frame is None:
            return
        self.own[_where(frame.f_code)] += 1
        self.layers[_layer(frame.f_code.co_filename)] += 1
        seen = set()
        # SQLAlchemy's asyncio mode runs its sync code in greenlets: go on in the parents'.
        current = greenlet.getcurrent()
        while frame is not None:
            seen.add(_where(frame.f_code))
            frame = frame.f_back
            if frame is None and current.parent is not None:
                current = current.parent
                frame = current.gr_frame
        self.inclusive.update(seen)

    def _count(self, name: str) -> Callable[..., None]:
        def count(*_args: Any, **_kwargs: Any) -> None:
            self.events[name] += 1

        return count

    def _write(self) -> None:
        while True:
            time.sleep(0.25)
            with contextlib.suppress(RuntimeError):  # a counter changed while being copied
                state = {
                    "samples": self.samples,
                    "own": dict(self.own),
                    "inclusive": dict(self.inclusive),
                    "layers": dict(self.layers),
                    "events": dict(self.events),
                }
                self.path.with_suffix(".tmp").write_text(json.dumps(state))
                self.path.with_suffix(".tmp").replace(self.path)

    def start(self) -> None:
        import threading

        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool

        for name in ("before_cursor_execute", "begin", "commit", "rollback"):
            event.listen(Engine, name, self._count(name))
        for name in ("savepoint", "release_savepoint"):
            event.listen(Engine, name, self._count(name))
        event.listen(Pool, "connect", self._count("connect (new connection)"))
        event.listen(Pool, "checkout", self._count("checkout (+ pre-ping)"))
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
        threading.Thread(target=self._write, name="bench-sampler", daemon=True).start()


def read_profiles(directory: Path) -> dict[str, Counter[str]]:
    """The exchange workers' profiles, merged (``samples`` counted under ``total``)."""
    merged: dict[str, Counter[str]] = {
        k: Counter() for k in ("total", "own", "inclusive", "layers", "events")
    }
    for path in directory.glob("exchange-*.json"):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(path.read_text())
            merged["total"]["samples"] += state["samples"]
            for key in ("own", "inclusive", "layers", "events"):
                merged[key].update(state[key])
    return merged


def exchange_app() -> FastAPI:
    """The exchange's ASGI app, in each uvicorn worker (``bench.booking:exchange_app``)."""
    _service_logging("exchange")
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        Sampler(Path(profile) / f"exchange-{os.getpid()}.json").start()
    from exchange.service import app

    return app


def serve_exchange() -> None:
    """Entry point of the exchange's process: uvicorn with ``BENCH_WORKERS`` workers, as
    ``ptce serve exchange`` runs it (``ptce serve`` has no ``--workers`` option)."""
    import uvicorn

    _service_logging("exchange")
    uvicorn.run(
        "bench.booking:exchange_app",
        factory=True,
        workers=int(os.environ["BENCH_WORKERS"]),
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@dataclass
class Processes:
    """The services' processes (each in its own session); stopped on every way out."""

    logs: Path
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as log:
            self.running[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                cwd=Path(__file__).resolve().parent.parent,
            )

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        self.running.clear()


@dataclass
class Deployment:
    catalog_url: str
    exchange_url: str
    env: dict[str, str]
    workers: int
    exchange_pid: int
    catalog_pid: int
    worker_pid: int | None  # `ptce worker exchange`, with --worker-process


def start_services(
    procs: Processes, srv: Servers, databases: dict[str, str], args: argparse.Namespace, prefix: str
) -> Deployment:
    catalog_port, exchange_port = free_port(), free_port()
    env = {
        **os.environ,
        "CATALOG_DATABASE_URL": srv.database_url(databases["catalog"]),
        "CATALOG_HTTP_PORT": str(catalog_port),
        "EXCHANGE_DATABASE_URL": srv.database_url(databases["exchange"]),
        "EXCHANGE_HTTP_PORT": str(exchange_port),
        "KAFKA_BOOTSTRAP_SERVERS": srv.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": prefix,
        "AUTH_JWKS_URL": f"http://127.0.0.1:{catalog_port}/.well-known/jwks.json",
    }
    bin_dir = Path(sys.executable).parent
    ptce = shutil.which("ptce", path=str(bin_dir)) or "ptce"
    procs.start("catalog", [ptce, "serve", "catalog", "--host", "127.0.0.1"], env)
    workers = args.workers
    exchange_env = {**env, "BENCH_PORT": str(exchange_port), "BENCH_WORKERS": str(workers)}
    if args.worker_process:
        # The exchange's relay and consumer in a process of their own, as `ptce worker` runs
        # them; the API processes then run none (EXCHANGE_RUN_WORKERS=false).
        exchange_env["EXCHANGE_RUN_WORKERS"] = "false"
        procs.start("exchange-worker", [ptce, "worker", "exchange"], env)
    if args.profile:
        exchange_env["BENCH_PROFILE"] = str(procs.logs)
    launcher = "from bench.booking import serve_exchange; serve_exchange()"
    procs.start("exchange", [sys.executable, "-c", launcher], exchange_env)
    return Deployment(
        catalog_url=f"http://127.0.0.1:{catalog_port}",
        exchange_url=f"http://127.0.0.1:{exchange_port}",
        env=env,
        workers=workers,
        exchange_pid=procs.running["exchange"].pid,
        catalog_pid=procs.running["catalog"].pid,
        worker_pid=procs.running["exchange-worker"].pid if args.worker_process else None,
    )


async def wait_ready(procs: Processes, urls: Sequence[str]) -> None:
    await until_ready(urls, alive=procs.check, seconds=READY_TIMEOUT_SECONDS)


# --- CPU accounting ----------------------------------------------------------------------


Cpu = tuple[float, float]  # (user, system) CPU seconds


def _proc_table() -> dict[int, tuple[int, Cpu]]:
    """pid -> (parent pid, its CPU seconds including its reaped children's)."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        f = [int(x) for x in stat[stat.rfind(")") + 2 :].split()[1:15]]
        # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat (here 10-13)
        table[int(entry.name)] = (f[0], ((f[10] + f[12]) / ticks, (f[11] + f[13]) / ticks))
    return table


def _tree_cpu(table: dict[int, tuple[int, Cpu]], root: int) -> Cpu:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    user = system = 0.0
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            user, system = user + table[pid][1][0], system + table[pid][1][1]
        stack.extend(children.get(pid, []))
    return user, system


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all CPUs, every process), from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except (OSError, ValueError):
        return math.nan
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guests = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user and nice
    return (sum(fields) - idle - guests) / os.sysconf("SC_CLK_TCK")


def _is_worker(pid: int) -> bool:
    """A uvicorn worker (multiprocessing spawn), not multiprocessing's resource tracker."""
    with contextlib.suppress(OSError):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        return "resource_tracker" not in cmdline
    return False


def _find_pid(needle: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                    return int(entry.name)
    return None


MACHINE = "whole machine"
EXCHANGE = "exchange (uvicorn, all workers)"
PART = "  of which "  # a process inside a tree already counted (an exchange worker)


class CpuMeter:
    """CPU seconds (user, system) used by each component's process tree since ``start``,
    and by the whole machine (``MACHINE``: busy time of all CPUs, other users included)."""

    def __init__(self, roots: dict[str, int | None]) -> None:
        self.roots = roots
        self._start: dict[str, Cpu] = {}

    def _now(self) -> dict[str, Cpu]:
        table = _proc_table() if Path("/proc/self/stat").exists() else {}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        values = {
            MACHINE: (_machine_busy(), 0.0),
            "bench (load generator)": (usage.ru_utime, usage.ru_stime),
        }
        for name, pid in self.roots.items():
            if pid is not None and pid in table:
                values[name] = _tree_cpu(table, pid)
        return values

    def start(self) -> None:
        self._start = self._now()

    def stop(self) -> dict[str, Cpu]:
        now = self._now()
        return {
            name: (now[name][0] - self._start[name][0], now[name][1] - self._start[name][1])
            for name in self._start
            if name in now
        }


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # a server from the environment, on another machine
    return int(stat[stat.rfind(")") + 2 :].split()[1])


async def postmaster_pid(dsn: str) -> int | None:
    conn = await asyncpg.connect(dsn)
    try:  # while the backend is alive
        return _parent_pid(int(await conn.fetchval("SELECT pg_backend_pid()")))
    finally:
        await conn.close()


# --- the pole, its members, clients and offers, through the catalog ----------------------


@dataclass
class World:
    pole_id: uuid.UUID
    time_zone: str
    providers: list[uuid.UUID]
    requesters: list[uuid.UUID]
    tokens: list[str]  # one per simulated client
    token_members: list[uuid.UUID]  # the member each token acts for
    warmup_offers: list[uuid.UUID]
    offers: list[uuid.UUID]


def create_pole(env: dict[str, str]) -> dict[str, str]:
    """``ptce pole create``, as an operator starts a pole."""
    ptce = shutil.which("ptce", path=str(Path(sys.executable).parent)) or "ptce"
    result = subprocess.run(
        [
            ptce, "pole", "create", "--json",
            "--name", f"Pôle du banc d'essai {uuid.uuid4().hex[:6]}",
            "--coordinator-name", "Cellule d'animation du banc",
            "--siret", valid_siret(),
            "--street", "1 place de la Coopération",
            "--postal-code", "37000",
            "--commune", "Tours",
            "--insee-code", "37261",
        ],
        env={**env, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"ptce pole create failed: {result.stderr.strip()}")
    created: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return created


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> str:
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    if response.status_code != 200:
        raise RuntimeError(f"POST /oauth/token: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


async def _post(
    http: httpx.AsyncClient, token: str, url: str, body: dict[str, Any] | None, expected: int
) -> dict[str, Any]:
    response = await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    if response.status_code != expected:
        raise RuntimeError(f"POST {url}: {response.status_code} {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


async def populate(
    catalog_url: str, env: dict[str, str], clients: int, offers: int
) -> tuple[World, list[uuid.UUID]]:
    """The pole, its members with their clients' tokens and the published offers."""
    created = await asyncio.to_thread(create_pole, env)
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=catalog_url, timeout=30, trust_env=False) as http:
        coordinator = await _token(http, created["client_id"], created["client_secret"])

        async def member() -> uuid.UUID:
            async with gate:
                return uuid.UUID(
                    (await _post(http, coordinator, "/members", member_body(), 201))["id"]
                )

        async def login(member_id: uuid.UUID) -> str:
            async with gate:
                body = {"label": "bench client", "role": "member"}
                issued = await _post(http, coordinator, f"/members/{member_id}/clients", body, 201)
                return await _token(http, issued["id"], issued["client_secret"])

        async def offer(index: int) -> uuid.UUID:
            owner_token = provider_tokens[index % PROVIDERS]
            body = room(
                title=f"Salle de réunion n° {index + 1} du banc d'essai",
                unit="hour",
                booking_mode="instant",
                availability=OPEN_EVERY_DAY,
            )
            async with gate:
                draft = await _post(http, owner_token, "/offers", body, 201)
                await _post(http, owner_token, f"/offers/{draft['id']}/publish", None, 200)
            return uuid.UUID(draft["id"])

        requester_count = max(1, min(MAX_REQUESTERS, clients))
        members = await asyncio.gather(*(member() for _ in range(PROVIDERS + requester_count)))
        providers, requesters = members[:PROVIDERS], members[PROVIDERS:]
        provider_tokens = await asyncio.gather(*(login(m) for m in providers))
        token_members = [requesters[i % requester_count] for i in range(clients)]
        offer_ids = await asyncio.gather(*(offer(i) for i in range(WARMUP_OFFERS + offers)))
        # The tokens last AUTH_TOKEN_TTL_SECONDS (10 min by default): taken last.
        tokens = await asyncio.gather(*(login(m) for m in token_members))
    world = World(
        pole_id=uuid.UUID(created["pole_id"]),
        time_zone="Europe/Paris",
        providers=list(providers),
        requesters=list(requesters),
        tokens=list(tokens),
        token_members=token_members,
        warmup_offers=list(offer_ids[:WARMUP_OFFERS]),
        offers=list(offer_ids[WARMUP_OFFERS:]),
    )
    return world, [*providers, *requesters]


async def wait_for_copies(dsn: str, world: World, members: list[uuid.UUID]) -> float:
    """Until the exchange's copy has the pole, the members and every offer, published."""
    started = time.perf_counter()
    offers = [*world.warmup_offers, *world.offers]
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            pole = await conn.fetchrow("SELECT time_zone FROM pole WHERE id = $1", world.pole_id)
            copied = await conn.fetchval(
                "SELECT count(*) FROM offer WHERE id = ANY($1::uuid[]) AND state = 'published'",
                offers,
            )
            known = await conn.fetchval(
                "SELECT count(*) FROM member WHERE id = ANY($1::uuid[])", members
            )
            if pole is not None and copied == len(offers) and known == len(members):
                world.time_zone = str(pole["time_zone"])
                return time.perf_counter() - started
            if time.perf_counter() - started > COPY_TIMEOUT_SECONDS:
                raise TimeoutError(
                    f"the exchange's copy has {copied}/{len(offers)} offers, {known}/"
                    f"{len(members)} members after {COPY_TIMEOUT_SECONDS:g} s"
                )
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def slots(time_zone: str, days: int) -> list[tuple[datetime, datetime]]:
    """Every one-hour slot within the opening hours of the next ``days`` local days."""
    zone = ZoneInfo(time_zone)
    today = datetime.now(zone).date()
    return [
        (
            datetime.combine(today + timedelta(days=d), clock(hour), zone),
            datetime.combine(today + timedelta(days=d), clock(hour + 1), zone),
        )
        for d in range(1, days + 1)
        for hour in range(OPENS, CLOSES)
    ]


@dataclass(frozen=True)
class Space:
    """The slots the clients choose from: every hour of ``days`` days of ``offers`` offers."""

    offers: int
    days: int


def space_for(rate: float, seconds: float, *, offers: int, most: int | None = None) -> Space:
    """Slots such that ``rate`` answers/s for ``seconds`` fill TARGET_FILL of them: at least
    MIN_OFFERS offers (or ``offers`` when given) on up to DAYS days, more offers beyond."""
    wanted = rate * seconds / TARGET_FILL
    if not offers:
        offers = max(MIN_OFFERS, math.ceil(wanted / (DAYS * HOURS)))
        offers = min(offers, most) if most else offers
    return Space(offers, min(DAYS, max(1, math.ceil(wanted / (offers * HOURS)))))


# --- the load ----------------------------------------------------------------------------


@dataclass
class Phase:
    offers: int = 0
    days: int = DAYS
    samples: list[Sample] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    began: float = 0.0
    ended: float = 0.0
    wall_began: datetime = field(default_factory=lambda: datetime.now(UTC))
    wall_ended: datetime = field(default_factory=lambda: datetime.now(UTC))
    cpu: dict[str, Cpu] = field(default_factory=dict)
    sessions: int = 0  # PostgreSQL sessions opened during the phase
    backends: dict[str, float] = field(default_factory=dict)  # state -> average sessions

    @property
    def seconds(self) -> float:
        return self.ended - self.began

    @property
    def statuses(self) -> Counter[int]:
        return Counter(status for _, _, status in self.samples)

    def rate(self, status: int | None = None) -> float:
        counted = sum(1 for _, _, s in self.samples if status is None or s == status)
        return counted / self.seconds if self.seconds > 0 else math.nan

    def steady_rate(self) -> float:
        """Answers/s over the second half of the phase (warmed up)."""
        half = self.began + (self.ended - self.began) / 2
        answered = sum(1 for _, done, _ in self.samples if done >= half)
        return answered / (self.ended - half) if self.ended > half else math.nan

    def latencies_ms(self) -> list[float]:
        return [(answered - sent) * 1000 for sent, answered, _ in self.samples]


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client: one connection, one request at a time.

    httpx costs the load generator 2-5 ms of CPU per request, CPU the server then lacks on a
    small machine; this costs about a tenth (``--client httpx`` to compare).
    """

    def __init__(self, base_url: str) -> None:
        host_port = base_url.removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port = int(port)
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes, headers: bytes) -> tuple[int, str]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, headers, len(body), body)
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            fields = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if fields.get("transfer-encoding", "").lower() == "chunked":
                content = await self._chunks(reader)
            else:
                content = await reader.readexactly(int(fields.get("content-length", "0")))
        except BaseException:
            await self.close()
            raise
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, content.decode("utf-8", errors="replace")

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        content = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            content += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return content

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def http_phase(
    base_url: str,
    world: World,
    offers: list[uuid.UUID],
    seconds: float,
    *,
    days: int,
    seed: str,
    client: str,
) -> Phase:
    """Every client loops on POST /requests (random offer, random slot) until the deadline."""
    phase = Phase(offers=len(offers), days=days)
    choices = [(a.isoformat(), b.isoformat()) for a, b in slots(world.time_zone, days)]
    post = _httpx_posts if client == "httpx" else _raw_posts

    async def loop(index: int, send: Post, deadline: float) -> None:
        rng = random.Random(f"{seed}-{index}")  # noqa: S311 - load, not secrets
        token = world.tokens[index]
        while time.perf_counter() < deadline:
            start, end = rng.choice(choices)
            body = f'{{"offer_id":"{rng.choice(offers)}","start":"{start}","end":"{end}"}}'
            sent = time.perf_counter()
            try:
                status, text = await send(body.encode(), token)
            except (OSError, httpx.HTTPError, asyncio.IncompleteReadError, ValueError) as exc:
                status, text = -1, repr(exc)
            phase.samples.append((sent, time.perf_counter(), status))
            if status != 201 and not (status == 409 and "conflicting_period" in text):
                phase.unexpected.append(f"{status} {text[:300]}")

    async with post(base_url, len(world.tokens)) as senders:
        phase.wall_began, phase.began = datetime.now(UTC), time.perf_counter()
        deadline = phase.began + seconds
        await asyncio.gather(*(loop(i, send, deadline) for i, send in enumerate(senders)))
        phase.ended, phase.wall_ended = time.perf_counter(), datetime.now(UTC)
    return phase


Post = Callable[[bytes, str], Awaitable[tuple[int, str]]]


async def open_loop_phase(
    base_url: str,
    world: World,
    offers: list[uuid.UUID],
    seconds: float,
    *,
    rate: float,
    days: int,
    seed: str,
    client: str,
) -> Phase:
    """``POST /requests`` arriving at ``rate`` per second (Poisson) whatever the answers'
    pace, each on a free connection (with its token); latency from the scheduled arrival."""
    phase = Phase(offers=len(offers), days=days)
    choices = [(a.isoformat(), b.isoformat()) for a, b in slots(world.time_zone, days)]
    post = _httpx_posts if client == "httpx" else _raw_posts
    rng = random.Random(seed)  # noqa: S311 - load, not secrets
    free: asyncio.Queue[tuple[int, Post]] = asyncio.Queue()

    async def one(scheduled: float, index: int, send: Post, body: bytes) -> None:
        try:
            status, text = await send(body, world.tokens[index])
        except (OSError, httpx.HTTPError, asyncio.IncompleteReadError, ValueError) as exc:
            status, text = -1, repr(exc)
        finally:
            free.put_nowait((index, send))
        phase.samples.append((scheduled, time.perf_counter(), status))
        if status != 201 and not (status == 409 and "conflicting_period" in text):
            phase.unexpected.append(f"{status} {text[:300]}")

    async with post(base_url, len(world.tokens)) as senders:
        for index, send in enumerate(senders):
            free.put_nowait((index, send))
        running: set[asyncio.Task[None]] = set()
        phase.wall_began, phase.began = datetime.now(UTC), time.perf_counter()
        deadline = phase.began + seconds
        arrival = phase.began
        while arrival < deadline:
            delay = arrival - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index, send = await free.get()  # all connections busy: this arrival is late
            start, end = rng.choice(choices)
            body = f'{{"offer_id":"{rng.choice(offers)}","start":"{start}","end":"{end}"}}'
            task = asyncio.create_task(one(arrival, index, send, body.encode()))
            running.add(task)
            task.add_done_callback(running.discard)
            arrival += rng.expovariate(rate)
        await asyncio.gather(*running)
        phase.ended, phase.wall_ended = time.perf_counter(), datetime.now(UTC)
    return phase


@contextlib.asynccontextmanager
async def _raw_posts(base_url: str, count: int) -> AsyncIterator[list[Post]]:
    clients = [RawHttp(base_url) for _ in range(count)]

    def sender(http: RawHttp) -> Post:
        async def send(body: bytes, token: str) -> tuple[int, str]:
            headers = b"Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % (
                token.encode()
            )
            return await http.post("/requests", body, headers)

        return send

    try:
        yield [sender(http) for http in clients]
    finally:
        await asyncio.gather(*(http.close() for http in clients))


@contextlib.asynccontextmanager
async def _httpx_posts(base_url: str, count: int) -> AsyncIterator[list[Post]]:
    # One client (one keep-alive connection) each: a pool shared by 64 connections costs
    # httpcore several milliseconds of CPU per request.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    def sender(http: httpx.AsyncClient) -> Post:
        async def send(body: bytes, token: str) -> tuple[int, str]:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            response = await http.post("/requests", content=body, headers=headers)
            return response.status_code, response.text

        return send

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits, trust_env=False)
            )
            for _ in range(count)
        ]
        yield [sender(http) for http in clients]


_LOCK_OFFER = "SELECT * FROM offer WHERE id = $1 AND pole_id = $2 FOR UPDATE"
_OVERLAPPING = (
    "SELECT id, period FROM booking_request WHERE offer_id = $1 "
    "AND state IN ($2, $3, $4, $5) AND period && $6 ORDER BY lower(period)"
)
_INSERT_REQUEST = (
    "INSERT INTO booking_request (id, pole_id, offer_id, offer_kind, provider_id, requester_id,"
    " period, quantity, message, state, exclusive, terms, version, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)
_INSERT_OUTBOX = (
    "INSERT INTO outbox (event_id, topic, key, event_type, cloudevent)"
    " VALUES ($1, $2, $3, $4, $5), ($6, $7, $8, $9, $10)"
)


@dataclass(frozen=True)
class DirectOffer:
    id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    terms: str  # the frozen terms, as JSON


def _cloudevent(event_type: str, event_id: str, request_id: uuid.UUID, data: dict[str, Any]) -> str:
    """An outbox row's CloudEvent, shaped and sized like the service's."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": RequestRequested.event_spec.source,
            "type": event_type,
            "time": data["changed_at"],
            "subject": str(request_id),
            "datacontenttype": "application/json",
            "partitionkey": str(request_id),
            "requestid": uuid.uuid4().hex,
            "data": {**data, "request_id": str(request_id)},
        }
    )


async def direct_booking(
    conn: Any, world: World, offer: DirectOffer, *, requester: uuid.UUID, period: Any, topic: str
) -> int:
    """One booking as the service makes it, in SQL; 201, or 409 when the slot is taken."""
    now = datetime.now(UTC)
    request_id = uuid.uuid4()
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.fetchrow(_LOCK_OFFER, offer.id, world.pole_id)
        if await conn.fetch(_OVERLAPPING, offer.id, *HOLDING, period):
            await transaction.rollback()
            return 409
        await conn.execute(
            _INSERT_REQUEST, request_id, world.pole_id, offer.id, offer.kind, offer.owner_id,
            requester, period, 1, "", "accepted", True, offer.terms, 1, now, now,
        )  # fmt: skip
        data = {
            "pole_id": str(world.pole_id), "offer_id": str(offer.id), "offer_kind": offer.kind,
            "provider_id": str(offer.owner_id), "requester_id": str(requester),
            "state": "accepted", "start": period.lower.isoformat(),
            "end": period.upper.isoformat(), "quantity": "1.00", "reason": None, "late": False,
            "quantity_used": None, "terms": json.loads(offer.terms), "version": 1,
            "changed_at": now.isoformat(), "series_id": None, "objection": None,
        }  # fmt: skip
        rows: list[Any] = []
        for event_type in (RequestRequested.event_spec.type, RequestAccepted.event_spec.type):
            event_id = str(uuid.uuid4())
            body = _cloudevent(event_type, event_id, request_id, data)
            rows += [event_id, topic, str(request_id), event_type, body]
        await conn.execute(_INSERT_OUTBOX, *rows)
        await transaction.commit()
        return 201
    except asyncpg.ExclusionViolationError:
        await transaction.rollback()
        return 409
    except BaseException:
        await transaction.rollback()
        raise


async def direct_phase(
    dsn: str,
    world: World,
    offers: list[DirectOffer],
    seconds: float,
    *,
    days: int,
    seed: str,
    topic: str,
) -> Phase:
    """As many connections as clients, each looping on :func:`direct_booking`."""
    phase = Phase(offers=len(offers), days=days)
    choices = [asyncpg.Range(start, end) for start, end in slots(world.time_zone, days)]
    connections = await asyncio.gather(*(asyncpg.connect(dsn) for _ in world.tokens))

    async def client(index: int, deadline: float) -> None:
        rng = random.Random(f"{seed}-{index}")  # noqa: S311 - load, not secrets
        conn, requester = connections[index], world.token_members[index]
        while time.perf_counter() < deadline:
            offer, period = rng.choice(offers), rng.choice(choices)
            sent = time.perf_counter()
            try:
                status = await direct_booking(
                    conn, world, offer, requester=requester, period=period, topic=topic
                )
            except Exception as exc:
                status = -1
                phase.unexpected.append(repr(exc)[:300])
            phase.samples.append((sent, time.perf_counter(), status))

    try:
        phase.wall_began, phase.began = datetime.now(UTC), time.perf_counter()
        deadline = phase.began + seconds
        await asyncio.gather(*(client(i, deadline) for i in range(len(connections))))
        phase.ended, phase.wall_ended = time.perf_counter(), datetime.now(UTC)
    finally:
        await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return phase


async def prepare_direct(
    source_dsn: str, dsn: str, world: World, count: int, *, parties: bool
) -> list[DirectOffer]:
    """``count`` offers cloned from one of the exchange's offers (new ids) in the fresh copy of
    the schema; with ``parties``, the pole and the members copied first."""
    source, target = await asyncpg.connect(source_dsn), await asyncpg.connect(dsn)
    try:
        for table in ("pole", "member") if parties else ():
            rows = await source.fetch(f"SELECT * FROM {table}")
            await target.copy_records_to_table(
                table, records=[tuple(r.values()) for r in rows], columns=list(rows[0].keys())
            )
        template = await source.fetchrow("SELECT * FROM offer WHERE id = $1", world.offers[0])
        columns = list(template.keys())
        records = []
        for i in range(count):
            values = dict(template)
            values["id"], values["owner_id"] = uuid.uuid4(), world.providers[i % PROVIDERS]
            records.append(tuple(values[c] for c in columns))
        await target.copy_records_to_table("offer", records=records, columns=columns)
        await target.execute("ANALYZE")
    finally:
        await source.close()
        await target.close()
    terms = json.dumps(
        {
            "unit": template["unit"], "quantity": "1.00",
            "internal_price": str(template["internal_price"]),
            "reference_value": str(template["reference_value"]),
            "valuation_basis": template["valuation_basis"], "currency": "EUR",
            "management_fee_percent": None, "employer_member_id": None, "staff_regime": None,
            "offer_version": template["version"],
        }
    )  # fmt: skip
    return [
        DirectOffer(r[0], r[columns.index("owner_id")], template["kind"], terms) for r in records
    ]


class SessionWatch:
    """What the database's sessions do during a phase: the sessions opened (PostgreSQL's
    ``pg_stat_database.sessions`` counter: a pool that opens and closes connections shows
    here) and, polling ``pg_stat_activity`` every 20 ms, how many are in each state on
    average."""

    _SESSIONS = "SELECT sessions FROM pg_stat_database WHERE datname = $1"

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn, self.database = dsn, database
        self.opened = 0
        self.states: Counter[str] = Counter()
        self.polls = 0

    @staticmethod
    def _state(state: str | None, wait: str | None) -> str:
        if state == "active":
            return "waiting for a lock" if wait == "Lock" else "running a statement"
        if state == "idle in transaction":
            return "in a transaction, waiting for its client"
        return "idle" if state == "idle" else str(state)

    async def _poll(self, conn: Any) -> None:
        while True:
            rows = await conn.fetch(
                "SELECT pid, backend_start, state, wait_event_type FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'",
                self.database,
            )
            self.polls += 1
            for r in rows:
                self.states[self._state(r["state"], r["wait_event_type"])] += 1
            await asyncio.sleep(0.02)

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        conn = await asyncpg.connect(self.dsn)
        sessions = int(await conn.fetchval(self._SESSIONS, self.database) or 0)
        task = asyncio.create_task(self._poll(conn))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                opened = await conn.fetchval(self._SESSIONS, self.database)
                self.opened = int(opened or 0) - sessions
            await conn.close()

    def summary(self) -> dict[str, float]:
        return {state: n / max(self.polls, 1) for state, n in self.states.most_common()}


# --- checks ------------------------------------------------------------------------------

_DOUBLE_BOOKINGS = """
SELECT count(*) FROM booking_request a
JOIN booking_request b ON a.offer_id = b.offer_id AND a.id < b.id AND a.period && b.period
WHERE a.state IN ('requested', 'accepted', 'completed', 'no_show')
  AND b.state IN ('requested', 'accepted', 'completed', 'no_show')
"""
_HOLDS = (
    "SELECT count(*) FROM booking_request"
    " WHERE state IN ('requested', 'accepted', 'completed', 'no_show')"
)


@dataclass
class Check:
    database: str
    double_bookings: int
    holds: int
    created: int  # 201 answers, warm-up included
    outbox: int

    @property
    def ok(self) -> bool:
        return self.double_bookings == 0 and self.holds == self.created


async def check(dsn: str, database: str, created: int) -> Check:
    conn = await asyncpg.connect(dsn)
    try:
        return Check(
            database=database,
            double_bookings=int(await conn.fetchval(_DOUBLE_BOOKINGS)),
            holds=int(await conn.fetchval(_HOLDS)),
            created=created,
            outbox=int(
                await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE event_type LIKE 'ptce.exchange.request.%'"
                )
            ),
        )
    finally:
        await conn.close()


def server_durations(log: Path, phase: Phase) -> list[float]:
    """The exchange's own ``request`` log durations (ms) of POST /requests during ``phase``."""
    durations = []
    with contextlib.suppress(OSError), open(log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"request"' not in line or '"/requests"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
                if phase.wall_began <= at <= phase.wall_ended and entry["method"] == "POST":
                    durations.append(float(entry["duration_ms"]))
    return durations


def profile_delta(
    before: dict[str, Counter[str]], after: dict[str, Counter[str]]
) -> dict[str, Counter[str]]:
    return {key: after[key] - before[key] for key in after}


APP_CODE = ("exchange/", "shared/")


def render_profile(
    profile: dict[str, Counter[str]], answers: int, cpu_ms: float, limit: int = 30
) -> list[str]:
    """Where the exchange workers' CPU went during the measured HTTP phase; ``cpu_ms``: their
    measured CPU per answer, which the shares of samples divide."""
    samples = profile["total"]["samples"]
    if not samples:
        return ["(no samples: was the profile written?)"]
    per = max(answers, 1)

    def cell(count: int) -> str:
        return f"{100 * count / samples:5.1f} % {cpu_ms * count / samples:5.2f} ms"

    events = profile["events"]
    inclusive = profile["inclusive"]
    lines = [
        f"{samples} stack samples in the API workers, {cpu_ms:.2f} ms CPU per answer "
        f"({answers} answers); the relay and consumer run in them unless --worker-process",
        "database work per answer (SQLAlchemy events): "
        + ", ".join(f"{name} {count / per:.2f}" for name, count in sorted(events.items())),
        "by layer (innermost Python frame; native code counts for the Python frame after it):",
    ]
    lines += [f"  {cell(n)}  {layer}" for layer, n in profile["layers"].most_common()]
    lines.append("service and kernel functions, inclusive (with all they call or await):")
    ours = [(w, n) for w, n in inclusive.most_common() if w.startswith(APP_CODE)]
    lines += [f"  {cell(n)}  {where}" for where, n in ours[:limit]]
    lines.append("SQLAlchemy entry points, inclusive:")
    entries = [
        (w, n)
        for w, n in inclusive.most_common()
        if w.startswith(("orm/session.py", "asyncio/session.py", "pool/base.py", "engine/base.py"))
    ]
    lines += [f"  {cell(n)}  {where}" for where, n in entries[: limit // 2]]
    lines.append("own (innermost Python frame):")
    lines += [f"  {cell(n)}  {where}" for where, n in profile["own"].most_common(limit // 2)]
    return lines


# --- the run -----------------------------------------------------------------------------


@dataclass
class Results:
    deployment: Deployment
    world: World
    settings: ServiceSettings
    http_warmup: Phase
    http: Phase
    open_loop: Phase | None
    direct_warmup: Phase
    direct: Phase
    checks: list[Check]
    server_ms: list[float]
    open_server_ms: list[float]
    copy_seconds: float
    setup_seconds: float
    profile: dict[str, Counter[str]]


async def measure(
    srv: Servers,
    databases: dict[str, str],
    args: argparse.Namespace,
    procs: Processes,
    run_id: str,
) -> Results:
    prefix = f"bench{run_id}-"
    exchange_dsn = asyncpg_dsn(srv.database_url(databases["exchange"]))
    direct_dsn = asyncpg_dsn(srv.database_url(databases["direct"]))
    kernel = KernelSettings(kafka_bootstrap_servers=srv.bootstrap_servers)
    await create_topics(kernel, topics=all_topics(prefix))
    started = time.perf_counter()
    deployment = start_services(procs, srv, databases, args, prefix)
    await wait_ready(procs, [deployment.catalog_url, deployment.exchange_url])
    pool = args.offers or HTTP_OFFER_POOL
    print(f"services up; creating the pole, members, clients, {pool} offers…", file=sys.stderr)
    world, members = await populate(deployment.catalog_url, deployment.env, args.clients, pool)
    copy_seconds = await wait_for_copies(exchange_dsn, world, members)
    setup_seconds = time.perf_counter() - started
    roots = {
        EXCHANGE: deployment.exchange_pid,
        "catalog": deployment.catalog_pid,
        "exchange worker (relay, consumer)": deployment.worker_pid,
        "PostgreSQL (all backends)": await postmaster_pid(exchange_dsn),
        "broker": _find_pid(f"tcp://{srv.bootstrap_servers}"),
    }
    # Each uvicorn worker apart: the kernel spreads the clients' keep-alive connections over
    # them unevenly, and one saturated worker beside an idle one shows here.
    roots.update(
        {
            f"{PART}worker {pid}": pid
            for pid, (parent, _) in _proc_table().items()
            if parent == deployment.exchange_pid and _is_worker(pid)
        }
    )
    meter = CpuMeter(roots)

    print(f"HTTP: {args.warmup:g} s warm-up…", file=sys.stderr)
    http_warmup = await http_phase(
        deployment.exchange_url,
        world,
        world.warmup_offers,
        args.warmup,
        days=DAYS,
        seed=f"{run_id}-hw",
        client=args.client,
    )
    space = space_for(
        http_warmup.steady_rate(), args.seconds, offers=args.offers, most=len(world.offers)
    )
    print(f"HTTP: {args.seconds:g} s on {space}…", file=sys.stderr)
    watch = SessionWatch(exchange_dsn, databases["exchange"])
    profile_before = read_profiles(procs.logs)
    meter.start()
    async with watch.watching():
        http = await http_phase(
            deployment.exchange_url,
            world,
            world.offers[: space.offers],
            args.seconds,
            days=space.days,
            seed=f"{run_id}-h",
            client=args.client,
        )
    http.cpu = meter.stop()
    http.sessions, http.backends = watch.opened, watch.summary()
    if args.profile:
        await asyncio.sleep(0.6)  # the samplers write every 0.25 s
    profile = profile_delta(profile_before, read_profiles(procs.logs))
    server_ms = server_durations(procs.logs / "exchange.log", http)
    open_loop = None
    if args.open_loop > 0:
        rate = args.open_loop * http.steady_rate()
        unused = world.offers[space.offers :]
        open_space = space_for(
            rate, args.seconds, offers=args.offers, most=max(len(unused), MIN_OFFERS)
        )
        pool = unused if len(unused) >= open_space.offers else world.offers
        print(
            f"HTTP open loop: {args.seconds:g} s at {rate:.0f}/s on {open_space}…", file=sys.stderr
        )
        meter.start()
        open_loop = await open_loop_phase(
            deployment.exchange_url,
            world,
            pool[: open_space.offers],
            args.seconds,
            rate=rate,
            days=open_space.days,
            seed=f"{run_id}-o",
            client=args.client,
        )
        open_loop.cpu = meter.stop()
        await asyncio.sleep(0.5)  # the last request lines reach the log
    open_server_ms = (
        server_durations(procs.logs / "exchange.log", open_loop) if open_loop is not None else []
    )
    created = sum(p.statuses[201] for p in (http_warmup, http, open_loop) if p is not None)
    http_check = await check(exchange_dsn, "exchange (HTTP)", created)

    # The floor is measured alone: the services (and their relays, consumers) stop first.
    await asyncio.to_thread(procs.stop)
    topic = topic_name("exchange", prefix)
    warmup_offers = await prepare_direct(
        exchange_dsn, direct_dsn, world, 2 * MIN_OFFERS, parties=True
    )
    print(f"SQL: {args.warmup:g} s warm-up…", file=sys.stderr)
    direct_warmup = await direct_phase(
        direct_dsn,
        world,
        warmup_offers,
        args.warmup,
        days=DAYS,
        seed=f"{run_id}-dw",
        topic=topic,
    )
    space = space_for(direct_warmup.steady_rate(), args.seconds, offers=args.offers)
    offers = await prepare_direct(exchange_dsn, direct_dsn, world, space.offers, parties=False)
    print(f"SQL: {args.seconds:g} s on {space}…", file=sys.stderr)
    meter.roots = {"PostgreSQL (all backends)": roots["PostgreSQL (all backends)"]}
    watch = SessionWatch(direct_dsn, databases["direct"])
    meter.start()
    async with watch.watching():
        direct = await direct_phase(
            direct_dsn,
            world,
            offers,
            args.seconds,
            days=space.days,
            seed=f"{run_id}-d",
            topic=topic,
        )
    direct.cpu = meter.stop()
    direct.sessions, direct.backends = watch.opened, watch.summary()
    created = sum(p.statuses[201] for p in (direct_warmup, direct))
    direct_check = await check(direct_dsn, "copy (SQL)", created)
    return Results(
        deployment=deployment,
        world=world,
        settings=ExchangeSettings(database_url=deployment.env["EXCHANGE_DATABASE_URL"]),
        http_warmup=http_warmup,
        http=http,
        open_loop=open_loop,
        direct_warmup=direct_warmup,
        direct=direct,
        checks=[http_check, direct_check],
        server_ms=server_ms,
        open_server_ms=open_server_ms,
        copy_seconds=copy_seconds,
        setup_seconds=setup_seconds,
        profile=profile,
    )


async def _create(srv: Servers, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(srv.database_url("postgres")))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


# --- the report --------------------------------------------------------------------------


def _pcts(values: Sequence[float]) -> str:
    cells = [percentile(values, q) for q in (0.5, 0.95, 0.99)] + [max(values, default=math.nan)]
    return "".join(f"{c:>9.1f}" for c in cells)


def _phase_lines(name: str, phase: Phase) -> list[str]:
    statuses = phase.statuses
    others = sum(n for s, n in statuses.items() if s not in (201, 409))
    total = max(len(phase.samples), 1)
    lines = [
        f"{name:<26}{len(phase.samples):>7}{phase.rate():>9.0f}{phase.rate(201):>8.0f}"
        f"{statuses[201]:>7}{statuses[409]:>7} ({100 * statuses[409] / total:>4.1f} %)"
        f"{others:>6}   {phase.offers:>3} offers x {phase.days:>2} days, "
        f"{phase.sessions} PG sessions opened",
        f"{'':<26}latency ms  p50 / p95 / p99 / max:{_pcts(phase.latencies_ms())}",
    ]
    if phase.backends:
        lines.append(
            f"{'':<26}PG sessions, on average: "
            + ", ".join(f"{n:.1f} {state}" for state, n in phase.backends.items() if n >= 0.05)
        )
    workers = sorted((sum(v) for n, v in phase.cpu.items() if n.startswith(PART)), reverse=True)
    if workers and phase.seconds > 0:
        lines.append(
            f"{'':<26}exchange workers busy: "
            + " + ".join(f"{cpu / phase.seconds:.2f}" for cpu in workers)
            + f" CPUs; whole machine {phase.cpu.get(MACHINE, (math.nan, 0))[0] / phase.seconds:.2f}"
        )
    return lines


def _cpu_lines(http: Phase, direct: Phase) -> list[str]:
    """CPU per component and phase: seconds, ms per answer (user + system)."""
    names = [n for n in http.cpu if n != MACHINE and not n.startswith(PART)]
    names.sort(key=lambda n: -sum(http.cpu[n]))
    parts = sorted((n for n in http.cpu if n.startswith(PART)), key=lambda n: -sum(http.cpu[n]))
    if EXCHANGE in names:
        names[names.index(EXCHANGE) + 1 : names.index(EXCHANGE) + 1] = parts
    lines = [
        f"{'CPU during the measured phase':<36}{'HTTP: s':>9}{'ms/answer (user+sys)':>24}"
        f"{'SQL: s':>9}{'ms/answer (user+sys)':>24}"
    ]

    def cells(phase: Phase, cpu: Cpu | None) -> str:
        if cpu is None:
            return f"{'-':>9}{'':>24}"
        per = 1000 / max(len(phase.samples), 1)
        user, system = cpu
        return (
            f"{user + system:>9.1f}{(user + system) * per:>9.2f} "
            f"({user * per:5.2f} + {system * per:4.2f})"
        )

    for name in names:
        lines.append(
            f"{name:<36}{cells(http, http.cpu[name])}{cells(direct, direct.cpu.get(name))}"
        )
    sums = []
    for phase in (http, direct):
        ours = sum(sum(v) for n, v in phase.cpu.items() if n != MACHINE and PART not in n)
        machine = phase.cpu.get(MACHINE, (math.nan, 0.0))[0]
        sums.append((ours, machine, phase.seconds))
    lines.append(
        "  ".join(
            f"{label}: this run's processes {ours / wall:.2f} CPUs, the whole machine "
            f"{machine / wall:.2f} CPUs busy (others: {(machine - ours) / wall:.2f})"
            for label, (ours, machine, wall) in zip(("HTTP", "SQL"), sums, strict=True)
        )
    )
    return lines


def render(results: Results, args: argparse.Namespace, srv: Servers) -> str:
    http, direct = results.http, results.direct
    p99 = percentile(http.latencies_ms(), 0.99)
    ratio = http.rate() / direct.rate() if direct.rate() > 0 else math.nan
    open_loop = results.open_loop
    unexpected = http.unexpected + direct.unexpected + (open_loop.unexpected if open_loop else [])
    doubles = sum(c.double_bookings for c in results.checks)
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    settings = results.settings
    rule = "-" * 100
    verdicts = [
        (f"HTTP rate >= {TARGET_RATIO:g} x SQL rate ({ratio:.2f}x)", ratio >= TARGET_RATIO),
        (f"HTTP p99 < {TARGET_P99_MS:g} ms at {args.clients} clients ({p99:.1f} ms)",
         p99 < TARGET_P99_MS),
        (f"zero double bookings ({doubles} found)", doubles == 0),
        (f"no unexpected answer ({len(unexpected)})", not unexpected),
    ]  # fmt: skip
    lines = [
        "PTCE booking benchmark (bench/booking.py)",
        rule,
        f"machine     nproc={os.cpu_count()} (usable {affinity}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()} "
        f"{platform.machine()}",
        f"servers     PostgreSQL: {srv.postgres_kind}; broker: {srv.broker_kind}",
        f"services    catalog: `ptce serve catalog` (1 process); exchange: uvicorn "
        f"--workers {results.deployment.workers}{', sampled (--profile)' if args.profile else ''}"
        f"{', relay + consumer in `ptce worker`' if args.worker_process else ''}, "
        f"127.0.0.1; db_pool_size={settings.db_pool_size} (+{settings.db_pool_size // 2} overflow) "
        f"per worker; LOG_LEVEL={settings.log_level} LOG_FORMAT={settings.log_format}",
        f"setup       pole via `ptce pole create`, {PROVIDERS} providers, "
        f"{len(results.world.requesters)} requesters, {args.clients} clients (own tokens), "
        f"{WARMUP_OFFERS + len(results.world.offers)} offers via the catalog API in "
        f"{results.setup_seconds:.1f} s (copied by the exchange "
        f"{results.copy_seconds:.1f} s after the last publish)",
        f"load        {args.clients} concurrent clients, closed loop, {args.seconds:g} s after "
        f"{args.warmup:g} s warm-up on other offers; one-hour slots {OPENS:02d}-{CLOSES:02d} h "
        f"on the next D days (slot space sized for ~20 % 409s); HTTP client: "
        f"{args.client}, keep-alive; SQL: asyncpg",
        rule,
        f"{'':<26}{'answers':>7}{'ans/s':>9}{'201/s':>8}{'201':>7}{'409':>7}{'':9}{'other':>6}",
        *_phase_lines("POST /requests over HTTP", http),
        *(_phase_lines(f"open loop, {args.open_loop:g} x rate", open_loop) if open_loop else []),
        *_phase_lines("same booking in SQL", direct),
    ]
    if results.server_ms:
        lines.append(
            f"{'exchange request log':<26}{len(results.server_ms):>7} durations, "
            f"ms p50 / p95 / p99 / max:{_pcts(results.server_ms)}"
        )
    if results.open_server_ms:
        lines.append(
            f"{'  the same, open loop':<26}{len(results.open_server_ms):>7} durations, "
            f"ms p50 / p95 / p99 / max:{_pcts(results.open_server_ms)}"
        )
    lines += [
        f"ratio       HTTP rate / SQL rate = {http.rate():.0f} / {direct.rate():.0f} = "
        f"{ratio:.2f}x; Little: {args.clients} clients / {http.rate():.0f} ans/s = "
        f"{1000 * args.clients / http.rate():.0f} ms mean latency",
        rule,
    ]
    lines += _cpu_lines(http, direct)
    lines += [rule, "checks (SQL, at the end)"]
    for c in results.checks:
        lines.append(
            f"  {c.database:<17} double bookings: {c.double_bookings}; holding requests "
            f"{c.holds} = 201 answers {c.created}: {'yes' if c.holds == c.created else 'NO'}; "
            f"request events in the outbox: {c.outbox} ({'2' if c.outbox == 2 * c.holds else '?'}"
            " per booking)"
        )
    if unexpected:
        lines += [rule, f"!!! {len(unexpected)} UNEXPECTED ANSWERS (not 201, not a 409 conflict):"]
        for text, n in Counter(unexpected).most_common(10):
            lines.append(f"!!!   {n} x {text}")
    lines.append(rule)
    for text, ok in verdicts:
        lines.append(f"target      {text}: {'PASS' if ok else 'FAIL'}")
    lines.append(f"verdict     {'PASS' if all(ok for _, ok in verdicts) else 'FAIL'}")
    if open_loop is not None:
        open_p99 = percentile(open_loop.latencies_ms(), 0.99)
        lines.append(
            f"(open loop  {len(open_loop.samples) / open_loop.seconds:.0f} arrivals/s = "
            f"{args.open_loop:g} x the closed-loop rate: p99 {open_p99:.1f} ms, "
            f"{'under' if open_p99 < TARGET_P99_MS else 'over'} {TARGET_P99_MS:g} ms; "
            "for information, not part of the verdict)"
        )
    if args.profile:
        lines += [
            rule,
            "exchange profile during the measured HTTP phase (--profile):",
            *render_profile(
                results.profile,
                len(http.samples),
                1000 * sum(http.cpu.get(EXCHANGE, (0.0, 0.0))) / max(len(http.samples), 1),
            ),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (64)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds (20)")
    parser.add_argument(
        "--offers", type=int, default=0, help="offers per phase (default: sized from the warm-up "
        "rate for ~20 %% of 409s)"
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1,
        help="uvicorn workers of the exchange (default: the CPUs)",
    )  # fmt: skip
    parser.add_argument("--warmup", type=float, default=4.0, help="warm-up seconds (4)")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw",
        help="HTTP client of the load generator: a minimal keep-alive one (default) or httpx",
    )  # fmt: skip
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the exchange workers' stacks (SIGPROF) and count their statements",
    )
    parser.add_argument(
        "--open-loop",
        type=float,
        default=0.0,
        metavar="F",
        help="also run an open loop at F x the closed-loop rate (e.g. 0.5; default: off)",
    )
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the services' logs (printed where)"
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="the exchange's relay and consumer in `ptce worker exchange`, not in the API",
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.offers < 0 or args.workers < 1:
        parser.error("--clients, --seconds and --workers must be positive, --offers >= 0")
    if args.open_loop < 0:
        parser.error("--open-loop must be >= 0")
    if args.warmup <= 0:
        parser.error("--warmup must be positive (it sizes the slot space)")
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging(service="bench", level="WARNING", fmt="console")

    run_id = uuid.uuid4().hex[:10]
    databases = {name: f"bench_{name}_{run_id}" for name in ("catalog", "exchange", "direct")}
    logs = Path(tempfile.mkdtemp(prefix="ptce-bench-booking-"))
    procs = Processes(logs)
    try:
        with servers() as srv:
            try:
                create_databases(srv, {s: databases[s] for s in ("catalog", "exchange")})
                asyncio.run(_create(srv, databases["direct"]))
                upgrade("exchange", srv.database_url(databases["direct"]))
                results = asyncio.run(measure(srv, databases, args, procs, run_id))
            finally:
                procs.stop()
                drop_databases(srv, list(databases.values()))
    except KeyboardInterrupt:
        print(f"interrupted; servers stopped (logs in {logs})", file=sys.stderr)
        return 130
    except Exception:
        print(f"failed; the services' logs are in {logs}", file=sys.stderr)
        raise
    if args.keep_logs:
        print(f"the services' logs are in {logs}", file=sys.stderr)
    else:
        shutil.rmtree(logs, ignore_errors=True)
    print(render(results, args, srv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
