"""What a running service is made of, built once for every entrypoint (API, worker, tests).

A service describes itself with a :class:`ServiceDefinition`; :class:`ServiceRuntime`
wires the database, the unit of work, the outbox relay and the consumers from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import MetaData, Table, text

from shared.auth import KeyLoader, Principal, RecentMemberChecks, TokenVerifier, remote_jwks
from shared.consumer import AfterApply, ConsumerSpec, IdempotentConsumer
from shared.db import create_engine, create_session_factory, utcnow
from shared.kafka import broker_reachable
from shared.logging import get_logger
from shared.migrations import current_revision, head_revision
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from shared.uow import ConnectionUnitOfWork, UnitOfWork

log = get_logger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """Work a service does on its own, every ``SCHEDULER_INTERVAL_SECONDS``.

    ``run(runtime, now)`` returns how many things it did. Every replica runs it: a job must
    be safe to run concurrently (``FOR UPDATE SKIP LOCKED``) and idempotent.
    """

    name: str
    run: Callable[[ServiceRuntime, datetime], Awaitable[int]]


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    metadata: MetaData
    outbox: Table
    processed_event: Table
    consumers: Sequence[ConsumerSpec] = ()
    routers: Sequence[APIRouter] = field(default_factory=tuple)
    key_loader: Callable[[ServiceRuntime], KeyLoader] | None = None
    """Where token-signing keys come from; by default the catalog's JWKS over HTTP."""
    principal_check: Callable[[ServiceRuntime, Principal], Awaitable[None]] | None = None
    """Refuses a verified caller that may no longer act (revoked client, member who left)."""
    scheduled_jobs: Sequence[ScheduledJob] = ()


class ServiceRuntime:
    def __init__(
        self,
        definition: ServiceDefinition,
        settings: ServiceSettings,
        *,
        after_apply: AfterApply | None = None,
    ) -> None:
        self.definition = definition
        self.settings = settings
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout_seconds,
        )
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        """The same pool, for a lone statement that needs no transaction: no ``BEGIN`` and no
        ``ROLLBACK`` round trips around it (a read of committed rows, like a principal check)."""
        self.session_factory = create_session_factory(self.engine)
        self.relay = OutboxRelay(service=definition.name, engine=self.engine, settings=settings)
        self.consumers = [
            IdempotentConsumer(
                service=definition.name,
                spec=spec,
                unit_of_work=self.uow,
                processed_event=definition.processed_event,
                settings=settings,
                after_apply=after_apply,
            )
            for spec in definition.consumers
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._head = head_revision(definition.name)
        load_keys = definition.key_loader(self) if definition.key_loader else remote_jwks(settings)
        self.verifier = TokenVerifier(settings, load_keys)
        self.member_checks = RecentMemberChecks(settings.auth_member_recheck_seconds)

    async def check_principal(self, principal: Principal) -> None:
        if self.definition.principal_check is not None:
            await self.definition.principal_check(self, principal)

    @property
    def name(self) -> str:
        return self.definition.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(
            self.session_factory,
            outbox=self.definition.outbox,
            topic_prefix=self.settings.kafka_topic_prefix,
        )

    def connection_uow(self, *, autocommit: bool = False) -> ConnectionUnitOfWork:
        """A unit of work on a Core connection: for hot paths without ORM objects; with
        ``autocommit``, outside any transaction (see :class:`ConnectionUnitOfWork`)."""
        return ConnectionUnitOfWork(
            self.autocommit_engine if autocommit else self.engine,
            outbox=self.definition.outbox,
            topic_prefix=self.settings.kafka_topic_prefix,
        )

    def start_workers(self) -> None:
        """Run the outbox relay, the consumers and the scheduled jobs as background tasks."""
        self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.name}-relay"))
        for consumer in self.consumers:
            self._tasks.append(asyncio.create_task(consumer.run(), name=consumer.group_id))
        for job in self.definition.scheduled_jobs:
            self._tasks.append(asyncio.create_task(self._every_interval(job), name=job.name))

    async def _every_interval(self, job: ScheduledJob) -> None:
        while True:
            try:
                done = await job.run(self, utcnow())
                if done:
                    log.info("scheduled_job_done", job=job.name, count=done)
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database outage or a bug in one run must not stop the next ones.
                log.exception("scheduled_job_failed", job=job.name)
            await asyncio.sleep(self.settings.scheduler_interval_seconds)

    async def stop(self) -> None:
        pending = set(self._tasks)
        self._tasks = []
        while pending:
            # Cancel again while a task is still running: one cancellation may be absorbed
            # by a library call that was completing at that very moment.
            for task in pending:
                task.cancel()
            _done, pending = await asyncio.wait(pending, timeout=1.0)
        await self.engine.dispose()

    async def readiness(self) -> dict[str, Any]:
        """Whether the database answers with the migrations applied, whether the broker
        answers, and whether the consumers this process runs are stalled."""
        checks: dict[str, Any] = {}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
            revision = await current_revision(self.engine)
            checks["migrations"] = (
                "ok" if revision == self._head else f"at {revision}, head is {self._head}"
            )
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
            checks["migrations"] = "unknown"
        checks["broker"] = "ok" if await broker_reachable(self.settings) else "unreachable"
        if self._tasks:  # this process runs the consumers
            for consumer in self.consumers:
                checks[f"consumer {consumer.spec.name}"] = (
                    f"stalled: {consumer.stalled}" if consumer.stalled else "ok"
                )
        return checks
