"""Demo data for ``ptce dev``: a pole, its members and their published offers (ptce/demo_data.py).

Loaded idempotently: members are found again by SIRET, offers by owner and title, so a
second run adds nothing. Two demo API clients (the coordinator and one member) get a new
secret on every run, printed to try the API with; secrets are never stored in clear.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from sqlmodel import col, select

from catalog.credentials import hash_secret
from catalog.members import RegisterMember, register_member
from catalog.models import ApiClient, Member, Offer, Pole, ValuationReference
from catalog.offers import CreateOffer, Kind, move, new_offer
from catalog.poles import (
    RecordReference,
    RegisterPole,
    create_pole_with_coordinator,
    record_reference,
)
from catalog.service import DEFINITION
from ptce import demo_data
from shared.auth import Role
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

DEMO_POLE_NAME = str(demo_data.POLE["name"])
DEMO_CLIENTS = {"cli_demo_coordinator": Role.coordinator, "cli_demo_member": Role.member}


def _member_command(data: dict[str, object]) -> RegisterMember:
    return RegisterMember.model_validate({k: v for k, v in data.items() if k != "key"})


def _offer_command(data: dict[str, object], members: dict[str, uuid.UUID]) -> CreateOffer:
    kind = Kind(str(data["kind"]))
    attributes: dict[str, Any] = dict(data[kind.value])  # type: ignore[call-overload]
    if kind is Kind.staff_time:
        attributes["employer_member_id"] = str(members[attributes.pop("employer")])
    fields = {k: v for k, v in data.items() if k not in {"owner", *Kind}}
    return CreateOffer.model_validate({**fields, "attributes": attributes})


async def load_demo(settings: ServiceSettings) -> dict[str, str]:
    """Load the catalog's demo data; the demo clients' new secrets, by client id."""
    runtime = ServiceRuntime(DEFINITION, settings)
    try:
        pole_id = await _pole(runtime)
        await _references(runtime, pole_id)
        members = await _members(runtime, pole_id)
        created = await _offers(runtime, pole_id, members)
        print(
            f"[ptce dev] demo: {len(members)} members, {created} offers added "
            f"({len(demo_data.OFFERS)} in the demo)",
            flush=True,
        )
        return await _print_clients(runtime, pole_id, members)
    finally:
        await runtime.stop()


async def _pole(runtime: ServiceRuntime) -> uuid.UUID:
    async with runtime.session_factory() as session:
        existing = await session.scalar(select(Pole).where(col(Pole.name) == DEMO_POLE_NAME))
    if existing is not None:
        print(f"[ptce dev] demo pole present: {existing.name} ({existing.id})", flush=True)
        return existing.id
    coordinator = next(m for m in demo_data.MEMBERS if m["key"] == demo_data.COORDINATOR_KEY)
    created = await create_pole_with_coordinator(
        runtime.uow(),
        RegisterPole.model_validate(demo_data.POLE),
        _member_command(coordinator),
        label="first coordinator (demo)",
    )
    print(f"[ptce dev] demo pole created: {created.pole.name} ({created.pole.id})", flush=True)
    return created.pole.id


DEMO_REFERENCES = [
    RecordReference(
        code="volunteer_hour",
        label="Heure de bénévolat valorisée au SMIC horaire chargé",
        amount=Decimal("17.50"),
        unit="hour",
        valid_from=date(2026, 1, 1),
    )
]


async def _references(runtime: ServiceRuntime, pole_id: uuid.UUID) -> None:
    async with runtime.session_factory() as session:
        codes = set(
            await session.scalars(
                select(ValuationReference.code).where(col(ValuationReference.pole_id) == pole_id)
            )
        )
    for reference in DEMO_REFERENCES:
        if reference.code in codes:
            continue
        async with runtime.uow() as uow:
            pole = await uow.session.get(Pole, pole_id)
            assert pole is not None
            await record_reference(uow, pole, reference)
            await uow.commit()


async def _members(runtime: ServiceRuntime, pole_id: uuid.UUID) -> dict[str, uuid.UUID]:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Member.siret, Member.id).where(col(Member.pole_id) == pole_id)
        )
        by_siret = {siret: member_id for siret, member_id in rows}
    members: dict[str, uuid.UUID] = {}
    for data in demo_data.MEMBERS:
        command = _member_command(data)
        if command.siret not in by_siret:
            by_siret[command.siret] = (await register_member(runtime.uow(), pole_id, command)).id
        members[str(data["key"])] = by_siret[command.siret]
    return members


async def _offers(
    runtime: ServiceRuntime, pole_id: uuid.UUID, members: dict[str, uuid.UUID]
) -> int:
    async with runtime.session_factory() as session:
        rows = await session.execute(
            select(Offer.owner_id, Offer.title).where(col(Offer.pole_id) == pole_id)
        )
        existing = {(owner, title) for owner, title in rows}
    created = 0
    for data in demo_data.OFFERS:
        owner = members[str(data["owner"])]
        if (owner, data["title"]) in existing:
            continue
        async with runtime.uow() as uow:
            offer = new_offer(pole_id, owner, _offer_command(data, members))
            uow.session.add(offer)
            await uow.session.flush()
            move(uow, offer, "publish")
            await uow.commit()
        created += 1
    return created


async def _print_clients(
    runtime: ServiceRuntime, pole_id: uuid.UUID, members: dict[str, uuid.UUID]
) -> dict[str, str]:
    owners = {
        "cli_demo_coordinator": members[demo_data.COORDINATOR_KEY],
        "cli_demo_member": members[demo_data.DEMO_MEMBER_KEY],
    }
    issued: dict[str, str] = {}
    async with runtime.session_factory() as session, session.begin():
        for client_id, role in DEMO_CLIENTS.items():
            secret = secrets.token_urlsafe(32)
            issued[client_id] = secret
            client = await session.get(ApiClient, client_id)
            if client is None:
                client = ApiClient(
                    id=client_id,
                    pole_id=pole_id,
                    member_id=owners[client_id],
                    role=role.value,
                    label="demo client (secret renewed on every `ptce dev`)",
                    secret_hash="",
                )
                session.add(client)
            client.secret_hash = hash_secret(secret)
            client.revoked_at = None
            print(
                f"[ptce dev] demo {role.value} client: client_id={client_id} "
                f"client_secret={secret}",
                flush=True,
            )
    return issued


DEMO_YEAR = 2026
DEMO_DUES_RULE = {
    "basis": "turnover",
    "brackets": [
        {"up_to": "100000", "amount": "50.00"},
        {"up_to": "1000000", "amount": "150.00"},
        {"amount": "400.00"},
    ],
}
DEMO_GRANT = {
    "kind": "grant",
    "on": f"{DEMO_YEAR}-02-15",
    "label": "Subvention de la Région Centre-Val de Loire pour l'animation du pôle",
    "amount": "30000.00",
    "origin": "public",
}
LEDGER_WAIT_SECONDS = 60.0


async def load_ledger_demo(*, catalog_url: str, ledger_url: str, secret: str) -> None:
    """Through the ledger's API, as the demo coordinator: the year's dues rule and dues, and a
    grant. Idempotent: the grant has an Idempotency-Key, dues are posted once per member."""
    async with httpx.AsyncClient(timeout=10) as http:
        token = await http.post(
            f"{catalog_url}/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cli_demo_coordinator",
                "client_secret": secret,
            },
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        # The ledger learns the pole and its members from the catalog's events: wait for them.
        deadline = time.monotonic() + LEDGER_WAIT_SECONDS
        # The rule once (409 on a later run: the dues are posted), then the dues until every
        # member's copy has reached the ledger: putting the rule again after a first partial
        # posting would be refused.
        while True:
            rule = await http.put(
                f"{ledger_url}/dues-rules/{DEMO_YEAR}", json=DEMO_DUES_RULE, headers=headers
            )
            if rule.status_code in (200, 409) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        while True:
            dues = await http.post(f"{ledger_url}/dues/{DEMO_YEAR}", headers=headers)
            known = len(dues.json()) if dues.status_code == 200 else 0
            if known >= len(demo_data.MEMBERS) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        grant = await http.post(
            f"{ledger_url}/postings",
            json=DEMO_GRANT,
            headers={**headers, "Idempotency-Key": f"demo-grant-{DEMO_YEAR}"},
        )
        print(
            f"[ptce dev] demo ledger: dues rule {rule.status_code}, dues of {known} members, "
            f"grant {grant.status_code}",
            flush=True,
        )
