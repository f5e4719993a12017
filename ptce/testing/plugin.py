"""The test harness: real PostgreSQL and a real Kafka-protocol broker for the whole session.

By default the session starts its own servers (the same embedded ones as ``ptce dev``)
in a temporary directory and stops them at the end. Given ``PTCE_TEST_POSTGRES_URL``
(a server, e.g. ``postgresql://postgres@127.0.0.1:5432``) and/or
``PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS``, it uses those instead.

Isolation: each service's migrations run once into a template database; every test
that asks for a service gets a fresh database copied from it, and its own topic prefix
on the broker, so tests never see each other's rows or events. ``module_service_settings``
does the same once per module, for modules whose tests share servers and are kept apart
by their poles (a pole sees only its own data).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from ptce.embedded import EmbeddedBroker, EmbeddedPostgres, free_port
from shared.events.registry import SERVICES, all_topics
from shared.kafka import create_topics
from shared.migrations import upgrade
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import SETTINGS_BY_SERVICE, KernelSettings, ServiceSettings


@dataclass
class Infra:
    """The servers the session runs against."""

    postgres_url: str  # postgresql://user@host:port, no database
    kafka_bootstrap_servers: str
    postgres: EmbeddedPostgres | None
    broker: EmbeddedBroker | None

    def database_url(self, database: str, *, driver: str = "postgresql+asyncpg") -> str:
        return f"{self.postgres_url.replace('postgresql://', driver + '://', 1)}/{database}"


def template_of(service: str) -> str:
    # Each pytest-xdist worker migrates its own templates: on a PostgreSQL given by
    # PTCE_TEST_POSTGRES_URL the workers share one server.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"ptce_template_{service}{'_' + worker if worker else ''}"


async def create_database(infra: Infra, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(infra.database_url("postgres", driver="postgresql"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()


@contextlib.contextmanager
def server_dir() -> Iterator[Path]:
    """A directory for a server's data, outside pytest's temporary tree.

    pytest resets its base directory to mode 700 whenever a pytest session starts, which
    would cut the PostgreSQL user (we may be root) off from a server that is running.
    """
    path = Path(tempfile.mkdtemp(prefix="ptce-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with server_dir() as root:
        yield from _infra(root)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh directory a test may start its own servers in."""
    with server_dir() as path:
        yield path


def _infra(root: Path) -> Iterator[Infra]:
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    postgres_url = os.environ.get("PTCE_TEST_POSTGRES_URL")
    bootstrap = os.environ.get("PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS")
    try:
        if not postgres_url:
            postgres = EmbeddedPostgres(root / "postgres", free_port(), fast_unsafe=True)
            postgres.start()
            postgres_url = f"postgresql://postgres@127.0.0.1:{postgres.port}"
        if not bootstrap:
            broker = EmbeddedBroker(free_port(), root / "tansu.log")
            broker.start()
            bootstrap = broker.bootstrap_servers
        infra = Infra(postgres_url.rstrip("/"), bootstrap, postgres, broker)
        for service in SERVICES:
            asyncio.run(create_database(infra, template_of(service)))
            upgrade(service, infra.database_url(template_of(service)))
        yield infra
    finally:
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()


def new_topic_prefix() -> str:
    """A topic prefix no other test uses: its topics are its own."""
    return f"t{uuid.uuid4().hex[:10]}-"


@pytest.fixture
def topic_prefix() -> str:
    return new_topic_prefix()


SettingsFactory = Callable[[str], Awaitable[ServiceSettings]]


@contextlib.asynccontextmanager
async def settings_factory(infra: Infra, topic_prefix: str) -> AsyncIterator[SettingsFactory]:
    """``await make("catalog")``: settings on a fresh migrated database of that service, on
    the broker under ``topic_prefix`` (its topics created on the first call); the databases
    are dropped on leaving.

    Every service made by one factory shares the prefix, so they talk to each other.
    """
    created: list[str] = []
    topics_ready = False

    async def make(service: str) -> ServiceSettings:
        nonlocal topics_ready
        name = f"test_{service}_{uuid.uuid4().hex[:12]}"
        await create_database(infra, name, template=template_of(service))
        created.append(name)
        settings = SETTINGS_BY_SERVICE[service](
            database_url=infra.database_url(name),
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            kafka_topic_prefix=topic_prefix,
            kafka_timeout_seconds=5.0,
            scheduler_interval_seconds=0.5,
            consumer_retry_backoff_seconds=0.05,
            db_pool_size=8,
        )
        if not topics_ready:
            await create_topics(settings, topics=all_topics(topic_prefix))
            topics_ready = True
        return settings

    try:
        yield make
    finally:
        conn = await asyncpg.connect(infra.database_url("postgres", driver="postgresql"))
        try:
            for name in created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def service_settings(infra: Infra, topic_prefix: str) -> AsyncIterator[SettingsFactory]:
    """``await service_settings("catalog")``: settings on a fresh migrated database of that service.

    Every service of one test shares the test's topic prefix, so they talk to each other.
    """
    async with settings_factory(infra, topic_prefix) as make:
        yield make


@pytest.fixture(scope="module")
def module_topic_prefix() -> str:
    return new_topic_prefix()


@pytest.fixture(scope="module")
async def module_service_settings(
    infra: Infra, module_topic_prefix: str
) -> AsyncIterator[SettingsFactory]:
    """``service_settings`` shared by every test of a module: one set of databases and topics
    for the module, for servers its tests share (each test then keeps to its own poles)."""
    async with settings_factory(infra, module_topic_prefix) as make:
        yield make


@pytest.fixture
def kernel_settings(infra: Infra, topic_prefix: str) -> KernelSettings:
    return KernelSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        kafka_topic_prefix=topic_prefix,
        kafka_timeout_seconds=5.0,
    )


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


Runtimes = Callable[..., Awaitable[ServiceRuntime]]


@pytest.fixture
async def runtimes() -> AsyncIterator[Runtimes]:
    """Start service runtimes (relay and consumers running) and stop them after the test."""
    started: list[ServiceRuntime] = []

    async def start(
        definition: ServiceDefinition, settings: ServiceSettings, **kwargs: object
    ) -> ServiceRuntime:
        runtime = ServiceRuntime(definition, settings, **kwargs)  # type: ignore[arg-type]
        runtime.start_workers()
        started.append(runtime)
        return runtime

    yield start
    for runtime in started:
        await runtime.stop()
