"""What every service's HTTP API shares: health, readiness, request ids, problem details."""

from __future__ import annotations

import importlib
import secrets
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import text

from ptce.embedded import free_port
from ptce.testing.plugin import Infra, SettingsFactory, create_database
from shared.db import create_engine
from shared.errors import PROBLEM_JSON, Conflict, install_problem_handlers
from shared.http import RequestIdMiddleware, create_app, loggable_path
from shared.settings import ServiceSettings

SERVICES = ["catalog", "exchange", "ledger"]


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _service_app(service: str, settings: ServiceSettings) -> FastAPI:
    definition = importlib.import_module(f"{service}.service").DEFINITION
    return create_app(definition, lambda: settings.model_copy(update={"run_workers": False}))


@pytest.mark.parametrize("service", SERVICES)
async def test_health_and_readiness(service: str, service_settings: SettingsFactory) -> None:
    settings = await service_settings(service)
    async for client in _client(_service_app(service, settings)):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz", headers={"X-Request-ID": "abc-123"})
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "broker": "ok"},
        }
        assert ready.headers["x-request-id"] == "abc-123"
        assert (await client.get("/healthz")).headers["x-request-id"]


@pytest.mark.parametrize("service", SERVICES)
async def test_not_ready_without_migrations(
    service: str, infra: Infra, service_settings: SettingsFactory
) -> None:
    settings = await service_settings(service)
    empty = f"test_empty_{uuid.uuid4().hex[:10]}"
    await create_database(infra, empty)
    unready = settings.model_copy(update={"database_url": infra.database_url(empty)})
    async for client in _client(_service_app(service, unready)):
        answer = await client.get("/readyz")
    assert answer.status_code == 503
    checks = answer.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"].startswith("at None")


@pytest.mark.parametrize("service", SERVICES)
async def test_ready_without_the_broker_which_is_reported(
    service: str, service_settings: SettingsFactory
) -> None:
    """Its events wait in its outbox: a service without its broker still takes requests, so
    a load balancer must keep sending them."""
    settings = await service_settings(service)
    cut_off = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    async for client in _client(_service_app(service, cut_off)):
        answer = await client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "broker": "unreachable",
    }


async def test_unknown_route_is_a_problem_document(service_settings: SettingsFactory) -> None:
    settings = await service_settings("catalog")
    async for client in _client(_service_app("catalog", settings)):
        answer = await client.get("/no/such/thing")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM_JSON
    body = answer.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["instance"] == "/no/such/thing"
    assert body["request_id"] == answer.headers["x-request-id"]


class Sample(BaseModel):
    name: str = Field(min_length=1, max_length=10)
    seats: int = Field(ge=1)


def _kernel_app(database_url: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)
    install_problem_handlers(app)
    engine = create_engine(database_url, pool_size=1)

    @app.post("/samples")
    async def create(sample: Sample) -> Sample:
        return sample

    @app.post("/conflict")
    async def conflict() -> None:
        raise Conflict("the slot is taken", extra={"conflicting_period": "[10:00, 12:00)"})

    @app.get("/database")
    async def database() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT 1")) or 0)

    @app.get("/bug")
    async def bug() -> None:
        raise ZeroDivisionError("a bug")

    return app


async def test_invalid_input_names_each_field(infra: Infra) -> None:
    app = _kernel_app(infra.database_url("postgres"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/samples", json={"name": "", "seats": 0})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM_JSON
    names = {p["name"] for p in answer.json()["invalid-params"]}
    assert names == {"body.name", "body.seats"}


async def test_business_errors_and_unreachable_database_and_bugs(infra: Infra) -> None:
    dead_database = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    transport = httpx.ASGITransport(app=_kernel_app(dead_database), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        conflict = await client.post("/conflict")
        unreachable = await client.get("/database")
        bug = await client.get("/bug")
    assert conflict.status_code == 409
    assert conflict.json()["conflicting_period"] == "[10:00, 12:00)"
    assert conflict.json()["type"].endswith("/conflict")
    assert unreachable.status_code == 503
    assert unreachable.headers["retry-after"] == "2"
    assert unreachable.headers["content-type"] == PROBLEM_JSON
    assert bug.status_code == 500
    assert bug.headers["content-type"] == PROBLEM_JSON
    assert "a bug" not in bug.text  # internals are logged, not shown


def test_a_secret_in_a_calendar_feeds_path_is_never_logged() -> None:
    token = secrets.token_urlsafe(32)
    assert token not in loggable_path(f"/calendars/{token}.ics")
    assert loggable_path("/requests/42/accept") == "/requests/42/accept"
