"""Driving the catalog's API in tests: a pole with its coordinator, members, clients, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.credentials import new_client
from catalog.identifiers import luhn_valid
from catalog.members import Category, RegisterMember
from catalog.models import Member
from catalog.poles import RegisterPole, create_pole_with_coordinator
from catalog.service import DEFINITION as CATALOG
from shared.auth import ALGORITHM, Role
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


async def signing_key(catalog: CatalogApi, kid: str) -> str:
    """The catalog's private key ``kid`` (PEM), to sign tokens the catalog would not issue."""
    async with catalog.runtime.engine.connect() as conn:
        pem = await conn.scalar(
            text("SELECT private_pem FROM signing_key WHERE kid = :kid"), {"kid": kid}
        )
    assert isinstance(pem, str)
    return pem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def hostile_credentials(catalog: CatalogApi, caller: Caller) -> dict[str, dict[str, str]]:
    """Headers that every endpoint but the public ones must refuse with 401, by name.

    Made from ``caller``'s valid token: its claims, re-signed by the catalog's own key with one
    thing wrong (expired, not yet valid, another audience or issuer, a role the kernel does not
    know), or forged (another key under the same or an unknown key id, unsigned, signed with
    HMAC using the public key as the secret), or no token at all.
    """
    kid = jwt.get_unverified_header(caller.token)["kid"]
    pem = await signing_key(catalog, kid)
    claims: dict[str, Any] = jwt.decode(caller.token, options={"verify_signature": False})
    now = datetime.now(UTC)
    forger = ec.generate_private_key(ec.SECP256R1())
    forger_pem = forger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    def signed(key: str | bytes = pem, key_id: str = kid, **changes: Any) -> str:
        return jwt.encode({**claims, **changes}, key, algorithm=ALGORITHM, headers={"kid": key_id})

    public_pem = (
        serialization.load_pem_private_key(pem.encode(), password=None)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    confused = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    tokens = {
        "expired": signed(iat=now - timedelta(hours=1), exp=now - timedelta(minutes=50)),
        "not yet valid": signed(iat=now + timedelta(hours=1), exp=now + timedelta(hours=2)),
        "another audience": signed(aud="another-service"),
        "another issuer": signed(iss="https://issuer.example"),
        "unknown role": signed(role="admin"),
        "another key": signed(forger_pem),
        "an unknown key": signed(forger_pem, key_id="forged-key"),
        "unsigned": unsigned,
        "HMAC with the public key": f"{signing_input}.{_b64(confused)}",
        "not a JWT": "abc.def.ghi",
    }
    basic = _b64(f"{caller.client_id}:{caller.client_secret}".encode())
    return {
        "anonymous": {},
        "not a bearer token": {"Authorization": f"Basic {basic}"},
        **{name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()},
    }


def concrete_path(path: str) -> str:
    """An OpenAPI path with a random UUID for each of its parameters."""
    return re.sub(r"\{[a-z_]+\}", lambda _: str(uuid.uuid4()), path)


async def operations(http: httpx.AsyncClient) -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation of the app's OpenAPI document, by (METHOD, path)."""
    document: dict[str, Any] = (await http.get("/openapi.json")).json()
    return {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


async def walk_refused(
    http: httpx.AsyncClient, *, public: set[tuple[str, str]], headers: dict[str, str]
) -> tuple[int, list[tuple[str, str, int, str]]]:
    """Call every operation of the app's OpenAPI document but the ``public`` ones with
    ``headers`` (and an empty JSON body), so that a new endpoint cannot be left open; each must
    answer 401 problem details with a Bearer challenge. Return how many were called and those
    that did not."""
    failures: list[tuple[str, str, int, str]] = []
    called = 0
    for method, path in await operations(http):
        if (method, path) in public:
            continue
        response = await http.request(method, concrete_path(path), json={}, headers=headers)
        called += 1
        challenge = response.headers.get("www-authenticate", "")
        if (
            response.status_code != 401
            or response.headers.get("content-type") != PROBLEM_JSON
            or response.json().get("status") != 401
            or not challenge.startswith("Bearer")
        ):
            failures.append((method, path, response.status_code, challenge))
    return called, failures
