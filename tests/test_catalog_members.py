"""Poles, members, API clients and tokens, over the catalog's API on the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import jwt
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ptce.testing.api import (
    CatalogApi,
    get_token,
    invalid_fields,
    member_body,
    outbox_types,
    problem,
)
from shared.auth import Role, TokenVerifier


async def test_a_client_gets_a_token_and_acts_within_its_pole(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole("Pôle Sud")
    pole = await coordinator.get("/pole")
    assert pole.status_code == 200
    assert pole.json()["id"] == str(coordinator.pole_id)
    assert pole.json()["time_zone"] == "Europe/Paris"
    assert pole.json()["currency"] == "EUR"

    claims = jwt.decode(coordinator.token, options={"verify_signature": False})
    assert claims["role"] == "coordinator"
    assert claims["pole"] == str(coordinator.pole_id)
    assert claims["exp"] - claims["iat"] == catalog.runtime.settings.auth_token_ttl_seconds


async def test_the_token_endpoint_refuses_bad_credentials(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    wrong = await get_token(catalog.http, coordinator.client_id, "not-the-secret")
    assert problem(wrong, 401)["error"] == "invalid_client"
    unknown = await get_token(catalog.http, "cli_unknown", "whatever")
    assert problem(unknown, 401)["error"] == "invalid_client"
    basic = await catalog.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(coordinator.client_id, coordinator.client_secret),
    )
    assert basic.status_code == 200
    assert basic.headers["cache-control"] == "no-store"
    bad_grant = await catalog.http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "client_id": coordinator.client_id,
            "client_secret": coordinator.client_secret,
        },
    )
    assert "body.grant_type" in invalid_fields(problem(bad_grant, 422))


async def test_other_services_verify_tokens_with_the_published_keys(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    jwks = await catalog.http.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert all("d" not in key for key in keys), "a private key part is published"

    async def over_http() -> dict[str, Any]:
        document: dict[str, Any] = (await catalog.http.get("/.well-known/jwks.json")).json()
        return document

    verifier = TokenVerifier(catalog.runtime.settings, over_http)
    principal = await verifier.verify(coordinator.token)
    assert principal.pole_id == coordinator.pole_id
    assert principal.member_id == coordinator.member_id
    assert principal.role is Role.coordinator


async def test_a_revoked_client_is_refused_at_once(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    assert (await member.get("/pole")).status_code == 200

    revoked = await member.delete(f"/clients/{member.client_id}")
    assert revoked.status_code == 204
    assert problem(await member.get("/pole"), 401)
    assert problem(await get_token(catalog.http, member.client_id, member.client_secret), 401)
    listed = await coordinator.get(f"/members/{member.member_id}/clients")
    assert [c["revoked_at"] is not None for c in listed.json()] == [True]


async def test_a_client_secret_is_shown_once_and_stored_hashed(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    listed = await coordinator.get(f"/members/{member.member_id}/clients")
    assert "client_secret" not in json.dumps(listed.json())
    async with catalog.runtime.engine.connect() as conn:
        stored = await conn.scalar(
            text("SELECT secret_hash FROM api_client WHERE id = :id"), {"id": member.client_id}
        )
    assert stored is not None
    assert member.client_secret not in stored


async def test_the_coordinator_onboards_members_and_events_carry_their_snapshot(
    catalog: CatalogApi,
) -> None:
    coordinator = await catalog.new_pole()
    body = member_body(legal_name="Ressourcerie du Cher", siret="732 829 320 00074")
    created = await coordinator.post("/members", json=body)
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["siret"] == "73282932000074"
    assert created.headers["etag"] == '"1"'

    duplicate = await coordinator.post("/members", json={**body, "legal_name": "Autre nom"})
    assert problem(duplicate, 409)

    async with catalog.runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT event_type, cloudevent FROM outbox WHERE key = :key ORDER BY id"),
                {"key": member["id"]},
            )
        ).all()
    assert [row.event_type for row in rows] == ["ptce.catalog.member.registered.v1"]
    data = rows[0].cloudevent["data"]
    assert data["legal_name"] == "Ressourcerie du Cher"
    assert data["version"] == 1
    assert data["pole_id"] == str(coordinator.pole_id)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("siret", "73282932000075"),  # wrong check digit
        ("siret", "1234"),
        ("insee_code", "3726"),
        ("insee_code", "ABCDE"),
        ("postal_code", "3700"),
        ("category", "club"),
        ("headcount", -1),
        ("annual_turnover", "-10.00"),
        ("legal_name", ""),
    ],
)
async def test_invalid_member_data_is_refused_naming_the_field(
    catalog: CatalogApi, field: str, value: object
) -> None:
    coordinator = await catalog.new_pole()
    response = await coordinator.post("/members", json=member_body(**{field: value}))
    assert f"body.{field}" in invalid_fields(problem(response, 422))


async def test_missing_fields_are_named(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    body = member_body()
    del body["siret"], body["insee_code"]
    response = await coordinator.post("/members", json=body)
    assert {"body.siret", "body.insee_code"} <= invalid_fields(problem(response, 422))


async def test_fields_a_caller_must_not_set_are_refused(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    other_pole = uuid.uuid4()
    for extra in ({"pole_id": str(other_pole)}, {"id": str(uuid.uuid4())}, {"version": 7}):
        response = await coordinator.post("/members", json=member_body(**extra))
        assert problem(response, 422)
    member = await catalog.new_member(coordinator)
    patched = await member.patch(f"/members/{member.member_id}", json={"siret": "73282932000074"})
    assert "body.siret" in invalid_fields(problem(patched, 422))


async def test_a_stale_version_never_overwrites_a_newer_one(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    url = f"/members/{member.member_id}"
    etag = (await member.get(url)).headers["etag"]

    first, second = await asyncio.gather(
        member.patch(url, json={"headcount": 20}, headers={"If-Match": etag}),
        coordinator.patch(url, json={"headcount": 30}, headers={"If-Match": etag}),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 412]
    winner = first if first.status_code == 200 else second
    now = await member.get(url)
    assert now.json()["headcount"] == winner.json()["headcount"]
    assert now.json()["version"] == 2
    assert now.headers["etag"] == '"2"'


async def test_a_member_that_left_keeps_its_history_and_can_no_longer_act(
    catalog: CatalogApi,
) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    left = await coordinator.post(
        f"/members/{member.member_id}/leave", json={"left_on": "2026-06-30"}
    )
    assert left.status_code == 200
    assert left.json()["left_on"] == "2026-06-30"

    assert problem(await member.get("/pole"), 401)
    assert problem(await get_token(catalog.http, member.client_id, member.client_secret), 401)
    again = await coordinator.post(
        f"/members/{member.member_id}/leave", json={"left_on": "2026-07-01"}
    )
    assert problem(again, 409)

    current = await coordinator.get("/members")
    assert str(member.member_id) not in {m["id"] for m in current.json()["items"]}
    everyone = await coordinator.get("/members", params={"include_left": "true"})
    assert str(member.member_id) in {m["id"] for m in everyone.json()["items"]}
    still_there = await coordinator.get(f"/members/{member.member_id}")
    assert still_there.status_code == 200


async def test_members_are_listed_page_by_page_in_a_stable_order(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    for index in range(7):
        created = await coordinator.post(
            "/members", json=member_body(legal_name=f"Membre {index % 3} {index}")
        )
        assert created.status_code == 201
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await coordinator.get("/members", params=params)).json()
        seen.extend(m["legal_name"] for m in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 8  # the seven and the coordinating organisation
    assert seen == sorted(seen)
    assert problem(await coordinator.get("/members", params={"cursor": "%%%"}), 422)


async def test_the_coordinator_changes_the_pole_settings(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    assert problem(await member.patch("/pole", json={"name": "Pris"}), 403)
    assert "body.time_zone" in invalid_fields(
        problem(await coordinator.patch("/pole", json={"time_zone": "Mars/Olympus"}), 422)
    )
    assert "body.currency" in invalid_fields(
        problem(await coordinator.patch("/pole", json={"currency": "USD"}), 422)
    )
    changed = await coordinator.patch(
        "/pole",
        json={"territory": "Touraine", "time_zone": "Europe/Brussels"},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["territory"], changed.json()["version"]) == ("Touraine", 2)
    stale = await coordinator.patch("/pole", json={"name": "X"}, headers={"If-Match": '"1"'})
    assert problem(stale, 412)
    events = await outbox_types(catalog.runtime.engine, str(coordinator.pole_id))
    assert events == ["ptce.catalog.pole.registered.v1", "ptce.catalog.pole.updated.v1"]


async def test_valuation_references_are_dated_and_never_rewritten(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    volunteer_hour = {
        "code": "volunteer_hour",
        "label": "Heure de bénévolat (SMIC chargé)",
        "amount": "17.50",
        "unit": "hour",
        "valid_from": "2026-01-01",
    }
    assert problem(await member.post("/pole/references", json=volunteer_hour), 403)
    first = await coordinator.post("/pole/references", json=volunteer_hour)
    assert first.status_code == 201, first.text
    later = {**volunteer_hour, "amount": "18.20", "valid_from": "2027-01-01"}
    assert (await coordinator.post("/pole/references", json=later)).status_code == 201
    back_dated = {**volunteer_hour, "amount": "99.00", "valid_from": "2026-06-01"}
    assert problem(await coordinator.post("/pole/references", json=back_dated), 409)
    negative = {**volunteer_hour, "amount": "-1", "valid_from": "2028-01-01"}
    assert "body.amount" in invalid_fields(
        problem(await coordinator.post("/pole/references", json=negative), 422)
    )

    async def in_effect(on: str) -> list[str]:
        response = await member.get("/pole/references", params={"on": on})
        return [r["amount"] for r in response.json()]

    assert await in_effect("2025-12-31") == []
    assert await in_effect("2026-06-01") == ["17.50"]
    assert await in_effect("2027-03-01") == ["18.20"]
    history = (await member.get("/pole/references")).json()
    assert [r["valid_from"] for r in history] == ["2026-01-01", "2027-01-01"]

    # The database itself refuses to change a recorded value.
    async with catalog.runtime.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="never changed"):
            await conn.execute(text("UPDATE valuation_reference SET amount = 1"))
    outsider = await catalog.new_pole()
    assert (await outsider.get("/pole/references")).json() == []
    events = await outbox_types(catalog.runtime.engine, str(coordinator.pole_id))
    assert events.count("ptce.catalog.valuation_reference.recorded.v1") == 2
