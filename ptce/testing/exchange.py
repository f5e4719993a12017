"""The exchange in tests: the catalog and the exchange in process, wired by real events."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, text

from exchange.models import offer as offer_copy
from exchange.models import pole as pole_copy
from exchange.service import DEFINITION as EXCHANGE
from ptce.testing.api import Caller, CatalogApi, catalog_api, room
from ptce.testing.helpers import eventually
from ptce.testing.plugin import SettingsFactory
from shared.auth import KeyLoader
from shared.http import create_app
from shared.runtime import ServiceRuntime

PARIS = ZoneInfo("Europe/Paris")


def next_monday(weeks: int = 0) -> date:
    """A Monday at least two days ahead, outside the test offers' year-end closure."""
    day = datetime.now(PARIS).date() + timedelta(days=2)
    day += timedelta(days=(7 - day.weekday()) % 7)
    day += timedelta(weeks=weeks)
    while date(day.year, 12, 24) <= day or day <= date(day.year, 1, 1):
        day += timedelta(weeks=1)
    return day


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), PARIS).isoformat()


@dataclass
class Market:
    catalog: CatalogApi
    exchange: httpx.AsyncClient
    runtime: ServiceRuntime
    app_factory: Any

    def on_exchange(self, caller: Caller) -> Caller:
        return dataclasses.replace(caller, http=self.exchange)

    async def published(self, owner: Caller, **overrides: Any) -> dict[str, Any]:
        created = await owner.post("/offers", json=room(**overrides))
        assert created.status_code == 201, created.text
        published = await owner.post(f"/offers/{created.json()['id']}/publish")
        assert published.status_code == 200, published.text
        offer: dict[str, Any] = published.json()
        await self.copied(offer["id"], offer["version"])
        return offer

    async def set_rules(self, coordinator: Caller, **rules: int) -> None:
        """Change the pole's exchange rules in the catalog; wait until the exchange has them."""
        current = await coordinator.get("/pole")
        changed = await coordinator.patch(
            "/pole", json={"exchange_rules": rules}, headers={"If-Match": current.headers["etag"]}
        )
        assert changed.status_code == 200, changed.text
        pole_id = uuid.UUID(changed.json()["id"])

        async def arrived() -> bool:
            async with self.runtime.session_factory() as session:
                copied = await session.scalar(
                    select(pole_copy.c.exchange_rules).where(pole_copy.c.id == pole_id)
                )
            return copied is not None and rules.items() <= copied.items()

        await eventually(arrived)

    async def shift_period(
        self, request_id: str, *, start_in: timedelta, length: timedelta
    ) -> None:
        """Move a request's period relative to now (the API only books ahead of time)."""
        async with self.runtime.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE booking_request "
                    "SET period = tstzrange(now() + :a, now() + :a + :b, '[)') WHERE id = :id"
                ),
                {"a": start_in, "b": length, "id": uuid.UUID(request_id)},
            )

    async def copied(self, offer_id: str, version: int) -> None:
        """Wait until the exchange has this version of the offer, and its pole (whose event
        travels on another partition and may come later)."""

        async def arrived() -> bool:
            async with self.runtime.session_factory() as session:
                found = (
                    await session.execute(
                        select(offer_copy.c.version, pole_copy.c.id)
                        .outerjoin(pole_copy, pole_copy.c.id == offer_copy.c.pole_id)
                        .where(offer_copy.c.id == uuid.UUID(offer_id))
                    )
                ).first()
            return found is not None and found.version == version and found.id is not None

        await eventually(arrived)


def keys_of(catalog: CatalogApi) -> Callable[[ServiceRuntime], KeyLoader]:
    """A service's key loader fetching the catalog's JWKS over HTTP (the in-process app)."""

    def loader(_runtime: ServiceRuntime) -> KeyLoader:
        async def load() -> dict[str, Any]:
            document: dict[str, Any] = (await catalog.http.get("/.well-known/jwks.json")).json()
            return document

        return load

    return loader


@contextlib.asynccontextmanager
async def market_api(service_settings: SettingsFactory) -> AsyncIterator[Market]:
    """The catalog (with its workers) and the exchange in process, on fresh databases; the
    exchange verifies tokens with the catalog's keys and copies its events."""
    catalog_settings = await service_settings("catalog")
    exchange_settings = await service_settings("exchange")
    async with catalog_api(catalog_settings, workers=True) as catalog:
        definition = dataclasses.replace(EXCHANGE, key_loader=keys_of(catalog))

        def app_factory() -> Any:
            return create_app(definition, lambda: exchange_settings)

        app = app_factory()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://exchange") as http:
                yield Market(catalog, http, app.state.runtime, app_factory)


async def parties(market: Market) -> tuple[Caller, Caller, Caller]:
    """A new pole's coordinator, and two members: a provider and a requester."""
    coordinator = await market.catalog.new_pole()
    provider = await market.catalog.new_member(coordinator)
    requester = await market.catalog.new_member(coordinator)
    return coordinator, provider, requester


@dataclass
class Bookings:
    """Fresh requests in each state, for tests that act on one at a time: on a provider's two
    offers (on approval, instant) that hold fifty at once, each on a one-hour slot of its own,
    so never a conflict. A test's cast extends it; its methods serve as the cast's
    ``prepare`` functions (``Bookings.pending``)."""

    market: Market
    provider: Caller
    requester: Caller
    approval_offer: dict[str, Any]
    instant_offer: dict[str, Any]
    slots: itertools.count[int]

    def next_slot(self) -> tuple[str, str]:
        n = next(self.slots)
        day = next_monday(weeks=n // 8)
        return at(day, 9 + n % 8), at(day, 10 + n % 8)

    async def _request(self, offer: dict[str, Any]) -> str:
        start, end = self.next_slot()
        made = await self.market.on_exchange(self.requester).post(
            "/requests", json={"offer_id": offer["id"], "start": start, "end": end}
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    async def pending(self) -> dict[str, str]:
        return {"request_id": await self._request(self.approval_offer)}

    async def accepted(self) -> dict[str, str]:
        return {"request_id": await self._request(self.instant_offer)}

    async def started(self) -> dict[str, str]:
        ids = await self.accepted()
        await self.market.shift_period(
            ids["request_id"], start_in=timedelta(hours=-1), length=timedelta(hours=2)
        )
        return ids

    async def completed(self) -> dict[str, str]:
        ids = await self.started()
        done = await self.market.on_exchange(self.provider).post(
            f"/requests/{ids['request_id']}/complete"
        )
        assert done.status_code == 200, done.text
        return ids

    async def series(self) -> dict[str, str]:
        start, end = self.next_slot()
        made = await self.market.on_exchange(self.requester).post(
            "/series",
            json={"offer_id": self.instant_offer["id"], "start": start, "end": end, "weeks": 2},
        )
        assert made.status_code == 201, made.text
        return {"series_id": made.json()["series_id"]}
