"""Poles, members, API clients and tokens, over the catalog's API on the real database."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ptce.testing.api import (
    Caller,
    CatalogApi,
    get_token,
    invalid_fields,
    member_body,
    outbox_types,
    problem,
    walk_without_token,
)
from shared.auth import ALGORITHM, Role, TokenVerifier
from shared.errors import PROBLEM_JSON


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


async def test_requests_without_a_valid_token_are_refused(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    assert problem(await catalog.http.get("/members"), 401)
    garbage = await catalog.http.get("/members", headers={"Authorization": "Bearer abc.def.ghi"})
    assert problem(garbage, 401)
    assert garbage.headers["www-authenticate"].startswith("Bearer")

    # Same claims and key id, signed with a key that is not the catalog's.
    kid = jwt.get_unverified_header(coordinator.token)["kid"]
    claims = jwt.decode(coordinator.token, options={"verify_signature": False})
    forger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = jwt.encode(claims, forger, algorithm=ALGORITHM, headers={"kid": kid})
    assert problem(await catalog.http.get("/members", headers=_bearer(forged)), 401)

    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    assert problem(await catalog.http.get("/members", headers=_bearer(unsigned)), 401)


async def test_an_expired_token_is_refused(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    kid = jwt.get_unverified_header(coordinator.token)["kid"]
    async with catalog.runtime.engine.connect() as conn:
        pem = await conn.scalar(
            text("SELECT private_pem FROM signing_key WHERE kid = :kid"), {"kid": kid}
        )
    claims = jwt.decode(coordinator.token, options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=1)
    claims.update(iat=past, exp=past + timedelta(minutes=10))
    expired = jwt.encode(claims, pem, algorithm=ALGORITHM, headers={"kid": kid})
    body = problem(await catalog.http.get("/members", headers=_bearer(expired)), 401)
    assert "expired" in body["detail"]


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


_reference_dates = iter(range(2030, 2200))


def _reference() -> dict[str, str]:
    return {
        "code": "volunteer_hour",
        "label": "Heure de bénévolat",
        "amount": "17.50",
        "unit": "hour",
        "valid_from": f"{next(_reference_dates)}-01-01",
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- authorization: every endpoint, every role -------------------------------------------


async def _everyone(catalog: CatalogApi) -> dict[str, Caller]:
    coordinator = await catalog.new_pole("Pôle A")
    member = await catalog.new_member(coordinator)
    other_member = await catalog.new_member(coordinator)
    auditor = await catalog.new_member(coordinator, role="auditor")
    foreign_coordinator = await catalog.new_pole("Pôle B")
    return {
        "coordinator": coordinator,
        "member": member,
        "other_member": other_member,
        "auditor": auditor,
        "other_pole": foreign_coordinator,
    }


async def test_authorization_matrix(catalog: CatalogApi) -> None:
    """What each role gets on each endpoint, when the target belongs to `member` of pole A.

    401: no valid token · 403: same pole, not allowed · 404: another pole's data (its
    existence is not disclosed) · 2xx: allowed.
    """
    who = await _everyone(catalog)
    target = who["member"].member_id

    async def client_of_target() -> str:
        created = await who["coordinator"].post(
            f"/members/{target}/clients", json={"label": "spare"}
        )
        return str(created.json()["id"])

    matrix: list[tuple[str, str, Any, dict[str, int]]] = [
        # (method, url, body, expected status by caller)
        ("GET", "/pole", None, dict.fromkeys(who, 200)),
        ("GET", "/pole/references", None, dict.fromkeys(who, 200)),
        (
            "PATCH",
            "/pole",
            {"territory": "Touraine"},
            {**dict.fromkeys(who, 403), "coordinator": 200, "other_pole": 200},
        ),
        (
            "POST",
            "/pole/references",
            "new-reference",
            {**dict.fromkeys(who, 403), "coordinator": 201, "other_pole": 201},
        ),
        ("GET", "/members", None, dict.fromkeys(who, 200)),
        ("GET", f"/members/{target}", None, {**dict.fromkeys(who, 200), "other_pole": 404}),
        (
            "POST",
            "/members",
            "new-member",
            {**dict.fromkeys(who, 403), "coordinator": 201, "other_pole": 201},
        ),
        (
            "PATCH",
            f"/members/{target}",
            {"headcount": 3},
            {
                "coordinator": 200,
                "member": 200,
                "other_member": 403,
                "auditor": 403,
                "other_pole": 404,
            },
        ),
        (
            "GET",
            f"/members/{target}/clients",
            None,
            {
                "coordinator": 200,
                "member": 200,
                "other_member": 403,
                "auditor": 200,
                "other_pole": 404,
            },
        ),
        (
            "POST",
            f"/members/{target}/clients",
            {"label": "x"},
            {
                "coordinator": 201,
                "member": 201,
                "other_member": 403,
                "auditor": 403,
                "other_pole": 404,
            },
        ),
        (
            "DELETE",
            "/clients/{fresh_client}",
            None,
            {
                "coordinator": 204,
                "member": 204,
                "other_member": 403,
                "auditor": 403,
                "other_pole": 404,
            },
        ),
        (
            "POST",
            f"/members/{target}/leave",
            {"left_on": "2030-01-01"},
            {**dict.fromkeys(who, 403), "other_pole": 404, "coordinator": 200},
        ),
    ]
    # A member may not give itself a coordinator's or an auditor's client.
    escalation = await who["member"].post(
        f"/members/{target}/clients", json={"label": "x", "role": "coordinator"}
    )
    assert problem(escalation, 403)

    failures = []
    for method, url, body, expected in matrix:
        # Anonymous callers get 401 everywhere.
        anonymous = await catalog.http.request(method, url.replace("{fresh_client}", "cli_x"))
        if anonymous.status_code != 401:
            failures.append((method, url, "anonymous", anonymous.status_code))
        # The coordinator goes last: leaving is final.
        for name in sorted(expected, key=lambda n: n == "coordinator"):
            caller = who[name]
            concrete = url.replace("{fresh_client}", await client_of_target())
            payload = {"new-member": member_body(), "new-reference": _reference()}.get(
                str(body), body
            )
            response = await caller.request(method, concrete, json=payload)
            if response.status_code != expected[name]:
                failures.append((method, url, name, response.status_code))
            if response.status_code >= 400:
                assert response.headers["content-type"] == PROBLEM_JSON
            elif name == "other_pole" and response.status_code == 200 and method == "GET":
                # Whatever another pole may read, nothing of pole A appears in it.
                assert str(who["coordinator"].pole_id) not in response.text
    assert failures == []


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


PUBLIC = {"/oauth/token", "/.well-known/jwks.json"}


async def test_every_endpoint_but_the_public_ones_wants_a_token(catalog: CatalogApi) -> None:
    assert await walk_without_token(catalog.http, public=PUBLIC) >= 15
