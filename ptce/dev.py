"""``ptce dev``: the whole system on one machine — embedded servers, three services, demo data.

Servers given by environment variables (``<SERVICE>_DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``) are used as they are; otherwise an embedded PostgreSQL
and an embedded Tansu broker are started, keeping their data under the data directory
(the broker keeps nothing: it is memory-only, see docs/events.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from ptce.embedded import EmbeddedBroker, EmbeddedPostgres, use_embedded_broker_settings
from shared.db import asyncpg_dsn, create_engine
from shared.events.registry import SERVICES
from shared.kafka import create_topics
from shared.migrations import upgrade
from shared.outbox import republish_since
from shared.settings import SETTINGS_BY_SERVICE, ServiceSettings

DEFAULT_POSTGRES_PORT = 55432
DEFAULT_KAFKA_PORT = 19092
READY_TIMEOUT_SECONDS = 120.0


def say(message: str) -> None:
    print(f"[ptce dev] {message}", flush=True)


async def ensure_database(database_url: str) -> None:
    """Create the database of ``database_url`` on its server when it does not exist."""
    url = make_url(database_url)
    admin = asyncpg_dsn(url.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", url.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await conn.close()


@dataclass
class DevSystem:
    data_dir: Path
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start_servers(self) -> None:
        """Start the servers not given by the environment, and point the environment at them.

        This process owns its environment: the services it starts inherit it.
        """
        if not all(os.environ.get(f"{s.upper()}_DATABASE_URL") for s in SERVICES):
            port = int(os.environ.get("PTCE_DEV_POSTGRES_PORT", DEFAULT_POSTGRES_PORT))
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres", port)
            say(f"starting PostgreSQL on 127.0.0.1:{port} (data in {self.postgres.pgdata})")
            self.postgres.start()
            for service in SERVICES:
                os.environ.setdefault(f"{service.upper()}_DATABASE_URL", self.postgres.url(service))
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            port = int(os.environ.get("PTCE_DEV_KAFKA_PORT", DEFAULT_KAFKA_PORT))
            self.broker = EmbeddedBroker(port, self.data_dir / "logs" / "tansu.log")
            say(f"starting the Tansu broker on 127.0.0.1:{port} (in memory)")
            self.broker.start()
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = self.broker.bootstrap_servers
            use_embedded_broker_settings()
        # The other services fetch the token keys from the catalog wherever it listens.
        os.environ.setdefault(
            "AUTH_JWKS_URL", f"http://127.0.0.1:{self.port('catalog')}/.well-known/jwks.json"
        )

    def settings(self, service: str) -> ServiceSettings:
        return SETTINGS_BY_SERVICE[service]()

    async def prepare(self) -> None:
        for service in SERVICES:
            url = self.settings(service).database_url
            await ensure_database(url)
            await asyncio.to_thread(upgrade, service, url)
        created = await create_topics(self.settings("catalog"))
        if created:
            say(f"created topics: {', '.join(created)}")
        if self.broker is not None:
            await self._republish_after_broker_start()

    async def _republish_after_broker_start(self) -> None:
        """A new in-memory broker holds nothing: send the retained outbox again.

        Consumers deduplicate by event id, so what they had already applied changes nothing,
        and what they had not yet received arrives now.
        """
        for service in SERVICES:
            settings = self.settings(service)
            engine = create_engine(settings.database_url, pool_size=1)
            try:
                since = datetime.now(UTC) - timedelta(hours=settings.outbox_retention_hours)
                count = await republish_since(engine, since)
            finally:
                await engine.dispose()
            if count:
                say(f"{service}: {count} retained events queued again for the new broker")

    def start_services(self) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        ptce = shutil.which("ptce", path=str(Path(sys.executable).parent)) or "ptce"
        for service in SERVICES:
            log = open(logs / f"{service}.log", "ab")  # noqa: SIM115 - handed to the child
            self.children[service] = subprocess.Popen(
                [ptce, "serve", service, "--host", "127.0.0.1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()

    def port(self, service: str) -> int:
        return self.settings(service).http_port

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        async with httpx.AsyncClient(timeout=3) as client:
            for service in SERVICES:
                url = f"http://127.0.0.1:{self.port(service)}/readyz"
                while True:
                    child = self.children[service]
                    if child.poll() is not None:
                        raise RuntimeError(
                            f"{service} exited ({child.returncode}); "
                            f"see {self.data_dir / 'logs' / (service + '.log')}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(url)).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{service} not ready after {READY_TIMEOUT_SECONDS}s")
                    await asyncio.sleep(0.2)

    async def load_demo(self) -> None:
        from ptce.demo import load_demo, load_ledger_demo

        secrets = await load_demo(self.settings("catalog"))
        await load_ledger_demo(
            catalog_url=f"http://127.0.0.1:{self.port('catalog')}",
            ledger_url=f"http://127.0.0.1:{self.port('ledger')}",
            secret=secrets["cli_demo_coordinator"],
        )

    def print_banner(self) -> None:
        say("ready:")
        for service in SERVICES:
            base = f"http://127.0.0.1:{self.port(service)}"
            say(f"  {service:<9} {base}   API docs: {base}/docs")
        say(f"logs in {self.data_dir / 'logs'}; press Ctrl-C to stop everything")

    def stop(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in self.children.values():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(5)
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


def run_dev(*, data_dir: Path, fresh: bool, demo: bool) -> int:
    if fresh and data_dir.exists():
        say(f"--fresh: removing {data_dir}")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    system = DevSystem(data_dir=data_dir.resolve())
    stop_requested = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, request_stop)
    # Whatever this process inherited (a parent that ignored or blocked them), Ctrl-C and
    # SIGTERM stop everything: an ignored SIGINT is inherited across exec, a blocked one too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        started = time.monotonic()
        system.start_servers()
        asyncio.run(system.prepare())
        system.start_services()
        asyncio.run(system.wait_ready())
        if demo:
            asyncio.run(system.load_demo())
        system.print_banner()
        say(f"up in {time.monotonic() - started:.1f}s")
        while True:
            for service, child in system.children.items():
                if child.poll() is not None:
                    say(f"{service} exited with {child.returncode}; stopping everything")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping…")
        return 0
    except Exception as exc:
        say(f"failed: {exc}")
        return 1
    finally:
        system.stop()
        say("stopped")
