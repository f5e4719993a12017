"""The exchange and the ledger keep exact copies of the catalog's members and offers, from its
events alone; replaying the catalog topic into an empty copy rebuilds it exactly."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Table, select

from catalog.models import Member, Offer
from exchange.models import member as exchange_member
from exchange.models import offer as exchange_offer
from exchange.service import CATALOG_COPY
from exchange.service import DEFINITION as EXCHANGE
from ledger.models import member as ledger_member
from ledger.service import DEFINITION as LEDGER
from ptce.testing.api import CatalogApi, catalog_api, room
from ptce.testing.helpers import eventually
from ptce.testing.plugin import Runtimes, SettingsFactory
from shared.consumer import IdempotentConsumer
from shared.runtime import ServiceRuntime

MEMBER_FIELDS = ["id", "pole_id", "legal_name", "siret", "category", "left_on", "version"]
OFFER_FIELDS = ["id", "owner_id", "kind", "state", "title", "internal_price", "capacity", "version"]


async def _catalog_rows(api: CatalogApi, model: Any, fields: list[str]) -> set[tuple[Any, ...]]:
    async with api.runtime.session_factory() as session:
        rows = (await session.scalars(select(model))).all()
    return {tuple(getattr(row, f) for f in fields) for row in rows}


async def _copy_rows(
    runtime: ServiceRuntime, table: Table, fields: list[str]
) -> set[tuple[Any, ...]]:
    async with runtime.session_factory() as session:
        rows = (await session.execute(select(*[table.c[f] for f in fields]))).all()
    return {tuple(row) for row in rows}


async def test_copies_follow_the_catalog_and_a_replay_rebuilds_them_exactly(
    service_settings: SettingsFactory, runtimes: Runtimes
) -> None:
    exchange = await runtimes(EXCHANGE, await service_settings("exchange"))
    ledger = await runtimes(LEDGER, await service_settings("ledger"))
    async with catalog_api(await service_settings("catalog"), workers=True) as api:
        coordinator = await api.new_pole()
        owner = await api.new_member(coordinator)
        leaving = await api.new_member(coordinator)
        patched = await owner.patch(f"/members/{owner.member_id}", json={"headcount": 40})
        assert patched.status_code == 200
        left = await coordinator.post(
            f"/members/{leaving.member_id}/leave", json={"left_on": "2026-09-30"}
        )
        assert left.status_code == 200

        published = (await owner.post("/offers", json=room())).json()
        url = f"/offers/{published['id']}"
        assert (await owner.post(f"{url}/publish")).status_code == 200
        etag = (await owner.get(url)).headers["etag"]
        changed = await owner.patch(url, json={"capacity": 2}, headers={"If-Match": etag})
        assert changed.status_code == 200
        assert (await owner.post(f"{url}/pause")).status_code == 200
        never_published = await owner.post("/offers", json=room(title="Brouillon privé"))
        assert never_published.status_code == 201

        members = await _catalog_rows(api, Member, MEMBER_FIELDS)
        offers = {
            row
            for row in await _catalog_rows(api, Offer, OFFER_FIELDS)
            if str(row[0]) != never_published.json()["id"]
        }
        assert len(members) == 3
        assert len(offers) == 1

        async def exchange_matches() -> bool:
            return await _copy_rows(exchange, exchange_member, MEMBER_FIELDS) == members and (
                await _copy_rows(exchange, exchange_offer, OFFER_FIELDS) == offers
            )

        async def ledger_matches() -> bool:
            return await _copy_rows(ledger, ledger_member, MEMBER_FIELDS) == members

        await eventually(exchange_matches)
        await eventually(ledger_matches)
        ((state, version),) = {(row[3], row[7]) for row in offers}
        assert (state, version) == ("paused", 4)  # created, published, changed, paused

        # An empty database and a new consumer group: the whole topic again, same result.
        rebuilt_settings = await service_settings("exchange")
        rebuilt = ServiceRuntime(EXCHANGE, rebuilt_settings)
        replay = IdempotentConsumer(
            service="exchange",
            spec=CATALOG_COPY,
            unit_of_work=rebuilt.uow,
            processed_event=EXCHANGE.processed_event,
            settings=rebuilt_settings,
            group_suffix=".rebuild",
        )
        task = asyncio.create_task(replay.run())
        try:

            async def rebuilt_matches() -> bool:
                return await _copy_rows(rebuilt, exchange_member, MEMBER_FIELDS) == members and (
                    await _copy_rows(rebuilt, exchange_offer, OFFER_FIELDS) == offers
                )

            await eventually(rebuilt_matches)
        finally:
            task.cancel()
            await rebuilt.stop()
