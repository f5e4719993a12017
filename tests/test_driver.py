"""Hot statements on the driver (``shared.driver``): the same rows and the same errors as
through SQLAlchemy, on the real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asyncpg.exceptions import ExclusionViolationError
from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from exchange.models import booking_request
from ptce.testing.plugin import SettingsFactory
from shared.db import create_engine
from shared.driver import DriverConnection, DriverResult, hot

REQUEST = hot(select(booking_request).where(booking_request.c.id == bindparam("request_id")))
INSERT = hot(insert(booking_request).returning(booking_request.c.id, booking_request.c.period))
NOT_HOT = select(booking_request).where(booking_request.c.id == bindparam("request_id"))


@pytest.fixture
async def engine(service_settings: SettingsFactory) -> AsyncIterator[AsyncEngine]:
    settings = await service_settings("exchange")
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


def a_request(**changes: object) -> dict[str, object]:
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "pole_id": uuid.uuid4(),
        "offer_id": uuid.uuid4(),
        "offer_kind": "premises",
        "provider_id": uuid.uuid4(),
        "requester_id": uuid.uuid4(),
        "period": Range(start, start + timedelta(hours=3), bounds="[)"),
        "quantity": Decimal("0.38"),
        "message": "é",
        "state": "accepted",
        "late": False,
        "exclusive": True,
        "terms": {"unit": "day", "unit_price": "80.00", "currency": "EUR"},
        "version": 1,
        **dict.fromkeys(("reason", "fee_percent", "quantity_used", "answer_by", "series_id")),
        "objection": None,
        "created_at": start,
        "updated_at": start,
    }
    return values | changes


async def test_a_hot_statement_reads_what_sqlalchemy_reads(engine: AsyncEngine) -> None:
    values = a_request()
    async with engine.begin() as conn:
        await conn.execute(insert(booking_request), values)
        expected = (await conn.execute(REQUEST, {"request_id": values["id"]})).one()
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        driver = DriverConnection(conn)
        result = await driver.execute(REQUEST, {"request_id": values["id"]})
        assert isinstance(result, DriverResult)  # run on the driver, not through SQLAlchemy
        row = result.one()
        assert row._asdict() == expected._asdict()
        assert [type(value) for value in row] == [type(value) for value in expected]
        assert row.terms == values["terms"]
        assert row.period == values["period"]
        assert (await driver.execute(REQUEST, {"request_id": uuid.uuid4()})).first() is None
        through_sqlalchemy = await driver.execute(NOT_HOT, {"request_id": values["id"]})
        assert not isinstance(through_sqlalchemy, DriverResult)
        assert through_sqlalchemy.one()._asdict() == expected._asdict()


async def test_an_error_on_the_driver_is_sqlalchemys(engine: AsyncEngine) -> None:
    """What callers catch (``IntegrityError``, the asyncpg error as its cause) and what the
    API answers 503 to (a lost connection, ``connection_invalidated``) are unchanged."""
    first = a_request()
    overlapping = a_request(id=uuid.uuid4(), offer_id=first["offer_id"])
    autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
    async with autocommit.connect() as conn:
        driver = DriverConnection(conn)
        await driver.execute(INSERT, first)
        with pytest.raises(IntegrityError) as refused:
            await driver.execute(INSERT, overlapping)
        assert isinstance(refused.value.orig.__cause__, ExclusionViolationError)  # type: ignore[union-attr]
        assert (await driver.execute(REQUEST, {"request_id": first["id"]})).one().version == 1

        backend = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        async with engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(DBAPIError) as lost:
            await driver.execute(REQUEST, {"request_id": first["id"]})
        assert lost.value.connection_invalidated
    async with autocommit.connect() as conn:  # the pool gives a live connection again
        found = await DriverConnection(conn).execute(REQUEST, {"request_id": first["id"]})
        assert found.one().id == first["id"]


async def test_only_a_connection_in_autocommit_mode_runs_hot_statements(
    engine: AsyncEngine,
) -> None:
    """SQLAlchemy begins its transaction at its own first statement: one run beside it would
    run outside that transaction."""
    async with engine.connect() as conn:
        with pytest.raises(ValueError, match="autocommit"):
            DriverConnection(conn)
