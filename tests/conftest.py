"""Cross-service tests. The server fixtures come from the ``ptce.testing.plugin`` pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ptce.testing.api import CatalogApi, catalog_api
from ptce.testing.exchange import Market, market_api
from ptce.testing.ledger import Books, books_api
from ptce.testing.plugin import SettingsFactory


@pytest.fixture
async def catalog(service_settings: SettingsFactory) -> AsyncIterator[CatalogApi]:
    """The catalog's API in process, on a fresh database."""
    async with catalog_api(await service_settings("catalog")) as api:
        yield api


@pytest.fixture
async def market(service_settings: SettingsFactory) -> AsyncIterator[Market]:
    """The catalog and the exchange in process, wired by the catalog's real events."""
    async with market_api(service_settings) as market:
        yield market


@pytest.fixture
async def books(service_settings: SettingsFactory) -> AsyncIterator[Books]:
    """Catalog, exchange and ledger in process: the ledger values the exchange's events."""
    async with books_api(service_settings) as books:
        yield books
