"""Offers: kinds, rules, life cycle, concurrency, tenants, and the French search (demo data)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlmodel import col

from catalog.models import Member, Pole
from ptce import demo_data
from ptce.demo import DEMO_POLE_NAME, load_demo
from ptce.testing.api import Caller, CatalogApi, invalid_fields, outbox_types, problem, room
from shared.auth import Role


def staff(employer: uuid.UUID, **attributes: Any) -> dict[str, Any]:
    return room(
        kind="staff_time",
        title="Comptable à temps partagé",
        unit="hour",
        internal_price="30.00",
        reference_value="45.00",
        valuation_basis="cost_price",
        attributes={
            "role": "Comptable",
            "skills": ["paie", "clôture"],
            "employer_member_id": str(employer),
            "max_hours_per_week": 7,
            "regime": "direct_loan",
            "cost_per_unit": "32.00",
            **attributes,
        },
    )


async def _published(caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
    created = await caller.post("/offers", json=body)
    assert created.status_code == 201, created.text
    published = await caller.post(f"/offers/{created.json()['id']}/publish")
    assert published.status_code == 200, published.text
    result: dict[str, Any] = published.json()
    return result


async def _outbox(catalog: CatalogApi, key: str) -> list[Any]:
    async with catalog.runtime.engine.connect() as conn:
        return list(
            await conn.execute(
                text("SELECT event_type, cloudevent FROM outbox WHERE key = :key ORDER BY id"),
                {"key": key},
            )
        )


async def test_an_offer_goes_from_draft_to_published_with_its_events(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    owner = await catalog.new_member(coordinator)
    neighbour = await catalog.new_member(coordinator)

    draft = await owner.post("/offers", json={"kind": "premises", "title": "Bureau partagé"})
    assert draft.status_code == 201, draft.text
    offer = draft.json()
    assert (offer["state"], offer["owner_id"], offer["version"]) == (
        "draft",
        str(owner.member_id),
        1,
    )
    url = f"/offers/{offer['id']}"
    # A draft is its owner's (and the coordinator's) business only.
    assert (await neighbour.get(url)).status_code == 404
    assert (await coordinator.get(url)).status_code == 200
    assert await outbox_types(catalog.runtime.engine, offer["id"]) == []

    incomplete = await owner.post(f"{url}/publish")
    missing = invalid_fields(problem(incomplete, 422))
    assert {"description", "unit", "internal_price", "reference_value", "attributes"} <= missing
    assert "availability.weekly_hours" in missing

    complete = room(title="Bureau partagé")
    del complete["kind"]
    patched = await owner.patch(url, json=complete, headers={"If-Match": '"1"'})
    assert patched.status_code == 200, patched.text
    published = await owner.post(f"{url}/publish")
    assert published.json()["state"] == "published"
    assert (await neighbour.get(url)).status_code == 200

    events = await _outbox(catalog, offer["id"])
    assert [e.event_type for e in events] == ["ptce.catalog.offer.published.v1"]
    data = events[0].cloudevent["data"]
    assert data["version"] == published.json()["version"] == 3
    assert data["internal_price"] == "80.00"
    assert data["attributes"]["seats"] == 12
    assert data["availability"]["weekly_hours"][0]["opens"] == "09:00:00"


async def test_the_life_cycle_allows_only_its_moves(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    owner = await catalog.new_member(coordinator)
    draft = (await owner.post("/offers", json=room())).json()
    url = f"/offers/{draft['id']}"

    refused = problem(await owner.post(f"{url}/pause"), 409)
    assert refused["state"] == "draft"
    assert refused["allowed"] == ["archive", "publish"]

    for action, state in [("publish", "published"), ("pause", "paused"), ("publish", "published")]:
        moved = await owner.post(f"{url}/{action}")
        assert moved.json()["state"] == state
    assert (await owner.post(f"{url}/archive")).json()["state"] == "archived"
    final = problem(await owner.post(f"{url}/publish"), 409)
    assert final["allowed"] == []
    edit = await owner.patch(url, json={"title": "Autre titre"}, headers={"If-Match": '"5"'})
    assert problem(edit, 409)

    types = [t.split(".")[3] for t in await outbox_types(catalog.runtime.engine, draft["id"])]
    assert types == ["published", "paused", "published", "archived"]


async def test_concurrent_edits_never_lose_an_update(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    owner = await catalog.new_member(coordinator)
    offer = await _published(owner, room())
    url = f"/offers/{offer['id']}"

    assert problem(await owner.patch(url, json={"capacity": 2}), 428)
    etag = (await owner.get(url)).headers["etag"]
    first, second = await asyncio.gather(
        owner.patch(url, json={"capacity": 2}, headers={"If-Match": etag}),
        coordinator.patch(url, json={"capacity": 3}, headers={"If-Match": etag}),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 412]
    winner = first if first.status_code == 200 else second
    assert (await owner.get(url)).json()["capacity"] == winner.json()["capacity"]
    stale = await owner.patch(url, json={"capacity": 4}, headers={"If-Match": etag})
    assert problem(stale, 412)["current_version"] == winner.json()["version"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"internal_price": "-1.00"}, "body.internal_price"),
        ({"reference_value": "-5"}, "body.reference_value"),
        ({"insee_code": "370"}, "body.insee_code"),
        ({"postal_code": "ABCDE"}, "body.postal_code"),
        ({"capacity": 0}, "body.capacity"),
        ({"unit": "week"}, "body.unit"),
        ({"kind": "vehicle"}, "body.kind"),
        ({"title": ""}, "body.title"),
        (
            {
                "availability": {
                    "weekly_hours": [{"weekday": 1, "opens": "18:00", "closes": "09:00"}]
                }
            },
            "body.availability.weekly_hours.0.closes",
        ),
        (
            {
                "availability": {
                    "closures": [{"start_date": "2026-05-02", "end_date": "2026-05-01"}]
                }
            },
            "body.availability.closures.0.end_date",
        ),
        (
            {"attributes": {"surface_m2": 30, "seats": 0, "accessible": True}},
            "body.attributes.seats",
        ),
        ({"state": "published"}, "body.state"),
        ({"pole_id": str(uuid.uuid4())}, "body.pole_id"),
        ({"version": 9}, "body.version"),
    ],
)
async def test_invalid_offers_are_refused_naming_the_field(
    catalog: CatalogApi, overrides: dict[str, Any], field: str
) -> None:
    coordinator = await catalog.new_pole()
    response = await coordinator.post("/offers", json=room(**overrides))
    assert field in invalid_fields(problem(response, 422))


async def test_staff_time_follows_its_regime(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole()
    lender = await catalog.new_member(coordinator)
    group = await catalog.new_member(coordinator, category="association", legal_name="GE 37")

    # Lent directly: at cost at most.
    above_cost = await lender.post(
        "/offers", json=staff(lender.member_id) | {"internal_price": "32.01"}
    )
    assert "body.internal_price" in invalid_fields(problem(above_cost, 422))
    at_cost = await lender.post(
        "/offers", json=staff(lender.member_id) | {"internal_price": "32.00"}
    )
    assert at_cost.status_code == 201
    no_cost = await lender.post("/offers", json=staff(lender.member_id, cost_per_unit=None))
    assert problem(no_cost, 422)
    raise_later = await lender.patch(
        f"/offers/{at_cost.json()['id']}",
        json={"internal_price": "40.00"},
        headers={"If-Match": at_cost.headers["etag"]},
    )
    assert "body.internal_price" in invalid_fields(problem(raise_later, 422))

    # Shared through an employers' group: a fee, and an employer of record that is another member.
    shared = await lender.post(
        "/offers",
        json=staff(
            group.member_id,
            regime="employers_group",
            cost_per_unit=None,
            management_fee_percent="12.5",
        )
        | {"internal_price": "36.00"},
    )
    assert shared.status_code == 201, shared.text
    assert shared.json()["attributes"]["employer_member_id"] == str(group.member_id)

    stranger = await lender.post("/offers", json=staff(uuid.uuid4()))
    assert "body.attributes.employer_member_id" in invalid_fields(problem(stranger, 422))


async def test_who_may_write_offers(catalog: CatalogApi) -> None:
    coordinator = await catalog.new_pole("Pôle A")
    owner = await catalog.new_member(coordinator)
    neighbour = await catalog.new_member(coordinator)
    auditor = await catalog.new_member(coordinator, role="auditor")
    foreign = await catalog.new_pole("Pôle B")
    offer = await _published(owner, room())
    url = f"/offers/{offer['id']}"
    etag = {"If-Match": (await owner.get(url)).headers["etag"]}

    assert (await neighbour.patch(url, json={"capacity": 2}, headers=etag)).status_code == 403
    assert (await auditor.patch(url, json={"capacity": 2}, headers=etag)).status_code == 403
    assert (await foreign.patch(url, json={"capacity": 2}, headers=etag)).status_code == 404
    for action in ("pause", "archive", "publish"):
        assert (await neighbour.post(f"{url}/{action}")).status_code == 403
        assert (await auditor.post(f"{url}/{action}")).status_code == 403
        assert (await foreign.post(f"{url}/{action}")).status_code == 404
    assert (await foreign.get(url)).status_code == 404
    assert (await auditor.get(url)).status_code == 200

    assert (await auditor.post("/offers", json=room())).status_code == 403
    on_behalf = await neighbour.post("/offers", json=room(owner_id=str(owner.member_id)))
    assert on_behalf.status_code == 403
    by_coordinator = await coordinator.post("/offers", json=room(owner_id=str(owner.member_id)))
    assert by_coordinator.status_code == 201
    assert by_coordinator.json()["owner_id"] == str(owner.member_id)
    across_poles = await foreign.post("/offers", json=room(owner_id=str(owner.member_id)))
    assert across_poles.status_code == 404

    listing = await neighbour.get(f"/members/{owner.member_id}/offers")
    assert {o["state"] for o in listing.json()["items"]} == {"published"}
    own = await owner.get(f"/members/{owner.member_id}/offers")
    assert {o["state"] for o in own.json()["items"]} == {"published", "draft"}
    assert (await foreign.get(f"/members/{owner.member_id}/offers")).status_code == 404
    assert (await catalog.http.get("/offers")).status_code == 401


# --- search, on the demo pole --------------------------------------------------------------


@pytest.fixture
async def demo(catalog: CatalogApi) -> Caller:
    """A member of the demo pole (loaded as `make run` does), logged in."""
    await load_demo(catalog.runtime.settings)
    async with catalog.runtime.session_factory() as session:
        pole = await session.scalar(select(Pole).where(col(Pole.name) == DEMO_POLE_NAME))
        assert pole is not None
        siret = next(m for m in demo_data.MEMBERS if m["key"] == demo_data.DEMO_MEMBER_KEY)["siret"]
        member = await session.scalar(
            select(Member).where(col(Member.pole_id) == pole.id, col(Member.siret) == siret)
        )
        assert member is not None
    return await catalog.login_as(pole.id, member.id, Role.member)


async def _titles(caller: Caller, **params: Any) -> list[str]:
    response = await caller.get("/offers", params=params)
    assert response.status_code == 200, response.text
    return [offer["title"] for offer in response.json()["items"]]


async def test_demo_loads_once(catalog: CatalogApi, demo: Caller) -> None:
    await load_demo(catalog.runtime.settings)  # a second time
    async with catalog.runtime.engine.connect() as conn:
        offers = await conn.scalar(text("SELECT count(*) FROM offer WHERE state = 'published'"))
        members = await conn.scalar(text("SELECT count(*) FROM member"))
    assert offers == len(demo_data.OFFERS)
    assert members == len(demo_data.MEMBERS)


async def test_french_search_understands_accents_plurals_and_word_forms(demo: Caller) -> None:
    found = await _titles(demo, q="salle de réunion")
    assert any(title.startswith("Salles de réunions") for title in found), found
    assert any(title.startswith("Salle de réunion") for title in found), found
    assert await _titles(demo, q="SALLES DE REUNIONS") == found
    assert set(await _titles(demo, q="velo cargo")) == set(await _titles(demo, q="vélos cargos"))
    assert await _titles(demo, q="vélos cargos")
    assert await _titles(demo, q="xylophone quantique") == []
    # Stopwords go before accents are stripped: "à" is not the prefix "a" of every word.
    assert set(await _titles(demo, q="réparation à vélo")) == set(
        await _titles(demo, q="réparation vélo")
    )
    # Query syntax from users is text, never an error.
    for hostile in ["l'atelier & | ! :* (", '"salle', "-", "or or", "«»", "😀"]:
        assert (await demo.get("/offers", params={"q": hostile})).status_code == 200


async def test_search_filters_and_sorts(demo: Caller) -> None:
    rooms = (await demo.get("/offers", params={"q": "salle", "kind": "premises"})).json()["items"]
    assert rooms
    assert {o["kind"] for o in rooms} == {"premises"}
    cheap = (
        await demo.get("/offers", params={"kind": "equipment", "max_price": "20", "sort": "price"})
    ).json()["items"]
    prices = [float(o["internal_price"]) for o in cheap]
    assert cheap
    assert all(p <= 20 for p in prices)
    assert prices == sorted(prices)
    tours = (await demo.get("/offers", params={"commune": "37261"})).json()["items"]
    assert tours
    assert {o["insee_code"] for o in tours} == {"37261"}
    by_name = (await demo.get("/offers", params={"commune": "tours"})).json()["items"]
    assert {o["id"] for o in by_name} == {o["id"] for o in tours}
    instant = (await demo.get("/offers", params={"booking_mode": "instant"})).json()["items"]
    assert instant
    assert {o["booking_mode"] for o in instant} == {"instant"}
    big = (await demo.get("/offers", params={"min_capacity": 2})).json()["items"]
    assert all(o["capacity"] >= 2 for o in big)
    assert problem(await demo.get("/offers", params={"sort": "relevance"}), 422)


@pytest.mark.parametrize("sort", ["price", "newest", "title", "relevance"])
async def test_search_pages_are_stable_and_complete(demo: Caller, sort: str) -> None:
    params: dict[str, Any] = {"sort": sort, "limit": 7}
    if sort == "relevance":
        params["q"] = "salle atelier bureau vélo"
    everything = (await demo.get("/offers", params={**params, "limit": 200})).json()["items"]
    seen: list[str] = []
    cursor = None
    while True:
        page = (
            await demo.get("/offers", params={**params, **({"cursor": cursor} if cursor else {})})
        ).json()
        seen.extend(o["id"] for o in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [o["id"] for o in everything]
    assert len(seen) == len(set(seen))


async def test_another_pole_finds_nothing_of_the_demo(catalog: CatalogApi, demo: Caller) -> None:
    outsider = await catalog.new_pole("Pôle voisin")
    assert await _titles(outsider, q="salle") == []
    some = (await demo.get("/offers", params={"limit": 1})).json()["items"][0]
    assert (await outsider.get(f"/offers/{some['id']}")).status_code == 404
