"""Traffic for the fault tests across the running services: members book a room and its
provider completes each booking, through whatever outage the test causes (clients retry,
with the same ``Idempotency-Key``, until answered); at the end, the ledger must equal what the
exchange says happened."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from ledger.trust import reconcile
from ptce.testing.api import Caller, room
from ptce.testing.exchange import at, next_monday
from ptce.testing.helpers import eventually, unpublished
from ptce.testing.system import System

# Each completed room: EX in both members' books and CVN (in kind) in the requester's.
ENTRIES_PER_EXCHANGE = 3
Failures = list[str | httpx.Response]


async def until_answered(
    call: Callable[[], Awaitable[httpx.Response]], failed: Failures, *, seconds: float = 90
) -> httpx.Response:
    """Retry through a service's death and restart: a client sees errors (kept in ``failed``:
    the connection's, or the 5xx answers), then an answer."""
    for _ in range(int(seconds * 10)):
        try:
            response = await call()
        except httpx.TransportError as error:
            failed.append(type(error).__name__)
        else:
            if response.status_code < 500:
                return response
            failed.append(response)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no answer after {seconds} s")


@dataclass
class Scene:
    """A pole whose provider shares an instant-booking room with a few requesters."""

    system: System
    coordinator: Caller
    provider: Caller
    requesters: list[Caller]
    offer_id: str
    day: date
    exchange_db: AsyncEngine
    ledger_db: AsyncEngine
    failed: Failures = field(default_factory=list)

    async def book(self, n: int) -> str:
        requester = self.system.on("exchange", self.requesters[n % len(self.requesters)])
        key = str(uuid.uuid4())
        slot = {"offer_id": self.offer_id, "start": at(self.day, 9), "end": at(self.day, 18)}
        answer = await until_answered(
            lambda: requester.post("/requests", json=slot, headers={"Idempotency-Key": key}),
            self.failed,
        )
        assert answer.status_code == 201, answer.text
        request_id: str = answer.json()["id"]
        return request_id

    async def move_into_the_past(self, request_ids: list[str]) -> None:
        """The bookings took place: their periods end an hour ago (completing needs that)."""
        async with self.exchange_db.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE booking_request SET period = tstzrange(now() - interval '10 hours', "
                    "now() - interval '1 hour', '[)') WHERE id = ANY(:ids)"
                ),
                {"ids": [uuid.UUID(request_id) for request_id in request_ids]},
            )

    async def complete(self, request_id: str) -> None:
        on_exchange = self.system.on("exchange", self.provider)
        answer = await until_answered(
            lambda: on_exchange.post(f"/requests/{request_id}/complete"), self.failed
        )
        # A retry after a lost answer finds it completed already: a 409 naming that state.
        assert answer.status_code in (200, 409), answer.text
        assert answer.json().get("state") == "completed", answer.text

    async def exchange(self, n: int) -> str:
        """One exchange, whole: booked, taken place, completed."""
        request_id = await self.book(n)
        await _until_done(lambda: self.move_into_the_past([request_id]))
        await self.complete(request_id)
        return request_id

    async def held(self) -> int:
        async with self.exchange_db.connect() as conn:
            count = await conn.scalar(
                text("SELECT count(*) FROM booking_request WHERE offer_id = :offer"),
                {"offer": uuid.UUID(self.offer_id)},
            )
        return int(count or 0)

    async def posted_entries(self, ledger_db: AsyncEngine | None = None) -> int:
        async with (ledger_db or self.ledger_db).connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT count(*) FROM entry WHERE pole_id = :pole AND source LIKE 'exchange:%'"
                ),
                {"pole": self.coordinator.pole_id},
            )
        return int(count or 0)

    async def ledger_equals_exchange(
        self, exchanges: int, *, timeout: float = 120, ledger_db: AsyncEngine | None = None
    ) -> None:
        """The ledger (the system's, or another reading the same events) ends equal to the
        exchange: every completed exchange posted, once."""
        books = ledger_db or self.ledger_db

        async def reconciled() -> bool:
            async with (
                async_sessionmaker(self.exchange_db)() as on_exchange,
                async_sessionmaker(books)() as on_ledger,
            ):
                outcome = await reconcile(on_exchange, on_ledger, self.coordinator.pole_id)
            return outcome.exchanges == exchanges and not outcome.differences

        await eventually(reconciled, timeout=timeout)
        assert await self.posted_entries(books) == ENTRIES_PER_EXCHANGE * exchanges

    async def unpublished(self) -> int:
        """Events the exchange committed and has not yet handed to the broker."""
        return await unpublished(self.exchange_db)


async def _until_done(change: Callable[[], Awaitable[None]]) -> None:
    """A test's own write to a database, retried while that database restarts."""
    for _ in range(600):
        try:
            await change()
        except Exception:  # whatever a restarting database answers: try again
            await asyncio.sleep(0.1)
        else:
            return
    raise AssertionError("the database did not come back")


@contextlib.asynccontextmanager
async def open_scene(system: System, name: str, *, requesters: int = 3) -> AsyncIterator[Scene]:
    catalog = system.catalog()
    coordinator = await catalog.new_pole(name)
    provider = await catalog.new_member(coordinator)
    members = [await catalog.new_member(coordinator) for _ in range(requesters)]
    created = await provider.post("/offers", json=room(booking_mode="instant", capacity=1000))
    published = await provider.post(f"/offers/{created.json()['id']}/publish")
    assert published.status_code == 200, published.text
    offer_id = published.json()["id"]
    day = next_monday(weeks=2)
    exchange_db = create_async_engine(system.settings["exchange"].database_url, pool_size=4)
    ledger_db = create_async_engine(system.settings["ledger"].database_url, pool_size=2)
    scene = Scene(system, coordinator, provider, members, offer_id, day, exchange_db, ledger_db)

    async def known() -> bool:
        answer = await system.on("exchange", members[0]).get(
            f"/offers/{offer_id}/availability",
            params={"start": at(day, 0), "end": at(day, 23)},
        )
        return answer.status_code == 200

    try:
        await eventually(known)
        yield scene
    finally:
        await exchange_db.dispose()
        await ledger_db.dispose()


@dataclass
class Stream:
    """Whole exchanges, one after another, by ``clients`` concurrent clients, until stopped."""

    scene: Scene
    clients: int = 8
    completed: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _next: int = 0

    async def _client(self) -> None:
        while not self._stop.is_set():
            self._next += 1
            self.completed.append(await self.scene.exchange(self._next))

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]

    async def stop(self) -> int:
        """Let the exchanges in progress finish; how many were completed in all."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return len(self.completed)

    async def goes_on(self, more: int, *, timeout: float = 90) -> None:
        """Wait until ``more`` exchanges were completed from now."""
        target = len(self.completed) + more

        async def reached() -> bool:
            for task in self._tasks:
                if task.done():
                    task.result()  # a client that failed says why
            return len(self.completed) >= target

        await eventually(reached, timeout=timeout)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Stream]:
        self.start()
        try:
            yield self
        finally:
            if not self._stop.is_set():
                self._stop.set()
                await asyncio.gather(*self._tasks, return_exceptions=True)
