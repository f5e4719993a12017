"""The ledger in tests: catalog, exchange and ledger in process, wired by real events."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from ledger.service import DEFINITION as LEDGER
from ptce.testing.api import Caller
from ptce.testing.exchange import Market, keys_of, market_api
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
