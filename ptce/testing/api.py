"""Driving the catalog's API in tests: a pole with its coordinator, members, clients, tokens."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.credentials import new_client
from catalog.identifiers import luhn_valid
from catalog.members import Category, RegisterMember
from catalog.models import Member
from catalog.poles import RegisterPole, create_pole_with_coordinator
from catalog.service import DEFINITION as CATALOG
from shared.auth import Role
from shared.errors import PROBLEM_JSON
from shared.http import create_app
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


def _complete_luhn(prefix: str) -> str:
    return next(prefix + str(d) for d in range(10) if luhn_valid(prefix + str(d)))


def valid_siret() -> str:
    """A random SIRET that passes both check digits (SIREN's and SIRET's)."""
    siren = _complete_luhn(f"{secrets.randbelow(10**8):08d}")
    return _complete_luhn(siren + f"{secrets.randbelow(10**4):04d}")


def member_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "legal_name": f"Association test {uuid.uuid4().hex[:6]}",
        "siret": valid_siret(),
        "category": "association",
        "is_ess": True,
        "headcount": 12,
        "annual_turnover": "350000.00",
        "street": "12 rue Nationale",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "joined_on": "2025-01-15",
    }
    body.update(overrides)
    return body


AVAILABILITY = {
    "weekly_hours": [
        {"weekday": 0, "opens": "09:00", "closes": "18:00"},
        {"weekday": 2, "opens": "09:00", "closes": "12:30"},
    ],
    "closures": [{"start_date": "2026-12-24", "end_date": "2027-01-01", "reason": "Fêtes"}],
    "min_booking_minutes": 60,
    "max_booking_minutes": 600,
    "min_notice_hours": 24,
}


def room(**overrides: Any) -> dict[str, Any]:
    """A complete premises offer, ready to publish."""
    body: dict[str, Any] = {
        "kind": "premises",
        "title": "Salle de réunion du rez-de-chaussée",
        "description": "Une salle lumineuse pour douze personnes, avec vidéoprojecteur.",
        "street": "3 rue des Halles",
        "postal_code": "37000",
        "commune": "Tours",
        "insee_code": "37261",
        "unit": "day",
        "capacity": 1,
        "booking_mode": "approval",
        "internal_price": "80.00",
        "reference_value": "200.00",
        "valuation_basis": "market_price",
        "attributes": {
            "surface_m2": 35,
            "seats": 12,
            "accessible": True,
            "amenities": ["vidéoprojecteur", "paperboard"],
        },
        "availability": AVAILABILITY,
    }
    body.update(overrides)
    return body


def staff_time(
    employer_id: uuid.UUID, *, max_hours_per_week: int = 7, **overrides: Any
) -> dict[str, Any]:
    """An accountant's time lent directly by its employer, by the hour, at cost."""
    return room(
        **{
            "kind": "staff_time",
            "title": "Comptable à temps partagé",
            "unit": "hour",
            "capacity": 5,
            "internal_price": "30.00",
            "reference_value": "45.00",
            "valuation_basis": "cost_price",
            "attributes": {
                "role": "Comptable",
                "employer_member_id": str(employer_id),
                "max_hours_per_week": max_hours_per_week,
                "regime": "direct_loan",
                "cost_per_unit": "32.00",
            },
            **overrides,
        }
    )


@dataclass
class Caller:
    """An API client of one member, with a valid access token."""

    http: httpx.AsyncClient
    pole_id: uuid.UUID
    member_id: uuid.UUID
    client_id: str
    client_secret: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with this caller's token (and any other headers given)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)


async def get_token(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


@dataclass
class CatalogApi:
    http: httpx.AsyncClient
    runtime: ServiceRuntime

    async def new_pole(self, name: str = "Pôle de test") -> Caller:
        """A pole and its coordinator, as `ptce pole create` makes them."""
        created = await create_pole_with_coordinator(
            self.runtime.uow(),
            RegisterPole(name=f"{name} {uuid.uuid4().hex[:6]}"),
            RegisterMember(
                legal_name="Cellule d'animation",
                siret=valid_siret(),
                category=Category.association,
                is_ess=True,
                street="1 place de la Coopération",
                postal_code="37000",
                commune="Tours",
                insee_code="37261",
                joined_on=date(2024, 1, 1),
            ),
            label="test coordinator",
        )
        return await self.login(
            created.pole.id, created.coordinator.id, created.client.client.id, created.client.secret
        )

    async def login(
        self, pole_id: uuid.UUID, member_id: uuid.UUID, client_id: str, secret: str
    ) -> Caller:
        response = await get_token(self.http, client_id, secret)
        assert response.status_code == 200, response.text
        return Caller(
            self.http, pole_id, member_id, client_id, secret, response.json()["access_token"]
        )

    async def login_as(self, pole_id: uuid.UUID, member_id: uuid.UUID, role: Role) -> Caller:
        """Log in as an existing member with a new client (for data loaded without the API)."""
        async with self.runtime.session_factory() as session, session.begin():
            member = await session.get(Member, member_id)
            assert member is not None
            issued = new_client(member, role=role, label=f"test {role.value}")
            session.add(issued.client)
        return await self.login(pole_id, member_id, issued.client.id, issued.secret)

    async def new_member(
        self, coordinator: Caller, *, role: str = "member", **fields: Any
    ) -> Caller:
        """Onboard a member through the API and log in with a new client of it."""
        created = await coordinator.post("/members", json=member_body(**fields))
        assert created.status_code == 201, created.text
        member_id = uuid.UUID(created.json()["id"])
        return await self.new_client(coordinator, member_id, role=role)

    async def new_client(self, coordinator: Caller, member_id: uuid.UUID, *, role: str) -> Caller:
        client = await coordinator.post(
            f"/members/{member_id}/clients", json={"label": f"{role} client", "role": role}
        )
        assert client.status_code == 201, client.text
        body = client.json()
        return await self.login(coordinator.pole_id, member_id, body["id"], body["client_secret"])


@asynccontextmanager
async def catalog_api(
    settings: ServiceSettings, *, workers: bool = False
) -> AsyncIterator[CatalogApi]:
    """The catalog's app in process, with an HTTP client on it; with ``workers``, its outbox
    relay runs too and its events reach the broker."""
    app = create_app(CATALOG, lambda: settings.model_copy(update={"run_workers": workers}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as http:
            yield CatalogApi(http=http, runtime=app.state.runtime)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 answer with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def invalid_fields(body: dict[str, Any]) -> set[str]:
    """The fields a 422 problem names."""
    return {param["name"] for param in body.get("invalid-params", [])}


async def outbox_types(engine: AsyncEngine, key: str) -> list[str]:
    """The types of the events a service recorded for one aggregate, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT event_type FROM outbox WHERE key = :key ORDER BY id"), {"key": key}
        )
        return [row.event_type for row in rows]


async def walk_without_token(http: httpx.AsyncClient, *, public: set[str]) -> int:
    """Call every operation of the app's OpenAPI document, but ``public`` paths, without a
    token, and assert 401 each time (so that a new endpoint cannot be left open); return how
    many were called."""
    schema = (await http.get("/openapi.json")).json()
    called = 0
    for path, operations in schema["paths"].items():
        if path in public | {"/healthz", "/readyz"}:
            continue
        concrete = re.sub(r"\{[a-z_]+\}", str(uuid.uuid4()), path)
        for method in operations:
            response = await http.request(method.upper(), concrete, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            called += 1
    return called
