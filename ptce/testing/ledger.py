"""The ledger in tests: catalog, exchange and ledger in process, wired by real events."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from ledger.models import member, pole
from ledger.service import DEFINITION as LEDGER
from ptce.testing.api import Caller
from ptce.testing.exchange import Market, keys_of, market_api
from ptce.testing.helpers import caught_up, eventually, unpublished
from ptce.testing.plugin import SettingsFactory
from shared.http import create_app
from shared.runtime import ServiceRuntime


@dataclass
class Books:
    """The market (catalog and exchange) and the ledger that values its exchanges."""

    market: Market
    http: httpx.AsyncClient
    runtime: ServiceRuntime

    def on_ledger(self, caller: Caller) -> Caller:
        return dataclasses.replace(caller, http=self.http)

    async def knows(self, *callers: Caller) -> None:
        """Wait until the ledger has the copies of these members and of their pole."""
        wanted = {caller.member_id for caller in callers}

        async def arrived() -> bool:
            async with self.runtime.session_factory() as session:
                members = set(
                    (
                        await session.scalars(select(member.c.id).where(member.c.id.in_(wanted)))
                    ).all()
                )
                poles = set(
                    (
                        await session.scalars(
                            select(pole.c.id).where(pole.c.id.in_({c.pole_id for c in callers}))
                        )
                    ).all()
                )
            return members == wanted and len(poles) == len({c.pole_id for c in callers})

        await eventually(arrived)

    async def quiet(self) -> None:
        """Wait until the exchange sent every event it recorded and the ledger applied them."""
        exchange = self.market.runtime

        async def sent() -> bool:
            return await unpublished(exchange.engine) == 0

        await eventually(sent)
        (valuation,) = (c for c in self.runtime.consumers if c.spec.name.endswith("valuation"))
        await eventually(lambda: caught_up(valuation, self.runtime.settings))


@contextlib.asynccontextmanager
async def books_api(service_settings: SettingsFactory) -> AsyncIterator[Books]:
    async with market_api(service_settings) as market:
        ledger_settings = await service_settings("ledger")
        definition = dataclasses.replace(LEDGER, key_loader=keys_of(market.catalog))
        app = create_app(definition, lambda: ledger_settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as http:
                yield Books(market, http, app.state.runtime)
