"""Cross-service tests. The server fixtures come from the ``ptce.testing.plugin`` pytest plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptce.testing.api import CatalogApi, catalog_api
from ptce.testing.exchange import Market, market_api
from ptce.testing.ledger import Books, books_api
from ptce.testing.plugin import SettingsFactory
from ptce.testing.system import System, running_system


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


@pytest.fixture(scope="module")
async def module_market(module_service_settings: SettingsFactory) -> AsyncIterator[Market]:
    """``market`` shared by the tests of a module: for tests that each create their own poles
    and members (tenants keep them apart) and count on nothing else in the databases."""
    async with market_api(module_service_settings) as market:
        yield market


@pytest.fixture(scope="module")
async def module_books(module_service_settings: SettingsFactory) -> AsyncIterator[Books]:
    """``books`` shared by the tests of a module, on the same terms as ``module_market`` (a
    module takes one or the other: both would run on the module's topics)."""
    async with books_api(module_service_settings) as books:
        yield books


@pytest.fixture
async def system(service_settings: SettingsFactory, data_dir: Path) -> AsyncIterator[System]:
    """The three services as separate processes (``ptce serve``), as ``make run`` runs them."""
    async with running_system(service_settings, data_dir) as running:
        yield running
