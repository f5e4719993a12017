"""Who may do what on every exchange endpoint: the parties, a bystander of the same pole, the
coordinator, an auditor, and a member and a coordinator of another pole.

Each cell starts from a fresh request (or series, or feed), so that one role's success never
hides another's answer. A test also checks that the table covers every operation of the
OpenAPI document, so that a new endpoint cannot be left out.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from ptce.testing.api import AVAILABILITY, Caller
from ptce.testing.exchange import Bookings, Market, at, next_monday, parties

ROLES = (
    "provider",
    "requester",
    "bystander",
    "coordinator",
    "auditor",
    "other_member",
    "other_coordinator",
)
PUBLIC = {("GET", "/calendars/{token}.ics"), ("GET", "/healthz"), ("GET", "/readyz")}


@dataclass
class Cast(Bookings):
    callers: dict[str, Caller]

    def on_exchange(self, role: str) -> Caller:
        return self.market.on_exchange(self.callers[role])


async def new_cast(market: Market) -> Cast:
    """A new pole with every role, another pole, and two offers that hold fifty at once."""
    coordinator, provider, requester = await parties(market)
    bystander = await market.catalog.new_member(coordinator)
    auditor = await market.catalog.new_client(coordinator, requester.member_id, role="auditor")
    other_coordinator = await market.catalog.new_pole("Autre pôle")
    other_member = await market.catalog.new_member(other_coordinator)
    every_week = {**AVAILABILITY, "closures": []}
    approval = await market.published(provider, capacity=50, availability=every_week)
    instant = await market.published(
        provider, capacity=50, availability=every_week, booking_mode="instant", title="Salle B"
    )
    callers = {
        "provider": provider,
        "requester": requester,
        "bystander": bystander,
        "coordinator": coordinator,
        "auditor": auditor,
        "other_member": other_member,
        "other_coordinator": other_coordinator,
    }
    return Cast(market, provider, requester, approval, instant, itertools.count(), callers)


@pytest.fixture(scope="module")
async def cast(module_market: Market) -> Cast:
    """One cast for the whole table: each cell still acts on fresh requests, series or feeds
    (on a slot of its own), so no cell sees another's."""
    return await new_cast(module_market)


@pytest.fixture
async def fresh_cast(module_market: Market) -> Cast:
    """A cast of its own, for a test that reads whole lists (the cells' requests would fill
    the coordinator's first page)."""
    return await new_cast(module_market)


pending = Bookings.pending
accepted = Bookings.accepted
started = Bookings.started
completed = Bookings.completed
series = Bookings.series


async def providers_feed(cast: Cast) -> dict[str, str]:
    made = await cast.on_exchange("provider").post(
        "/calendar-feeds", json={"offer_id": cast.instant_offer["id"], "label": "Salle B"}
    )
    assert made.status_code == 201, made.text
    return {"feed_id": made.json()["id"]}


async def offer_ids(cast: Cast) -> dict[str, str]:
    return {"offer_id": cast.approval_offer["id"]}


async def nothing(_cast: Cast) -> dict[str, str]:
    return {}


def new_request(cast: Cast) -> dict[str, Any]:
    start, end = cast.next_slot()
    return {"offer_id": cast.approval_offer["id"], "start": start, "end": end}


def new_series(cast: Cast) -> dict[str, Any]:
    return {**new_request(cast), "weeks": 2}


def range_query(cast: Cast) -> dict[str, Any]:
    day = next_monday()
    return {"start": at(day, 0), "end": at(day + timedelta(days=7), 0)}


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    prepare: Callable[[Cast], Awaitable[dict[str, str]]]
    expected: tuple[int, int, int, int, int, int, int]  # in the order of ROLES
    body: Callable[[Cast], dict[str, Any]] | None = None
    query: Callable[[Cast], dict[str, Any]] | None = None


REASON = {"reason": "Motif"}
ANY_MEMBER_OF_THE_POLE = (200, 200, 200, 200, 200, 404, 404)
PROVIDER_SIDE = (200, 403, 404, 200, 403, 404, 404)
EITHER_SIDE = (200, 200, 404, 200, 403, 404, 404)
CASES = [
    Case("POST", "/requests", nothing, (422, 201, 201, 201, 403, 404, 404), body=new_request),
    Case("POST", "/series", nothing, (422, 201, 201, 201, 403, 404, 404), body=new_series),
    Case("GET", "/requests/{request_id}", pending, (200, 200, 404, 200, 200, 404, 404)),
    Case("POST", "/requests/{request_id}/accept", pending, PROVIDER_SIDE),
    Case("POST", "/requests/{request_id}/decline", pending, PROVIDER_SIDE, body=lambda _: REASON),
    Case(
        "POST",
        "/requests/{request_id}/withdraw",
        pending,
        (403, 200, 404, 403, 403, 404, 404),
    ),
    Case("POST", "/requests/{request_id}/cancel", accepted, EITHER_SIDE, body=lambda _: REASON),
    Case("POST", "/requests/{request_id}/complete", started, PROVIDER_SIDE),
    Case("POST", "/requests/{request_id}/no-show", started, PROVIDER_SIDE),
    Case("POST", "/requests/{request_id}/object", started, EITHER_SIDE, body=lambda _: REASON),
    Case(
        "POST",
        "/requests/{request_id}/correct",
        completed,
        PROVIDER_SIDE,
        body=lambda _: {"quantity_used": "0.5", "reason": "Une demi-journée seulement"},
    ),
    Case("GET", "/series/{series_id}", series, (200, 200, 404, 200, 200, 404, 404)),
    Case("POST", "/series/{series_id}/cancel", series, EITHER_SIDE, body=lambda _: REASON),
    Case(
        "POST",
        "/calendar-feeds",
        nothing,
        (201, 403, 403, 201, 403, 404, 404),
        body=lambda cast: {"offer_id": cast.instant_offer["id"], "label": "Planning"},
    ),
    Case(
        "DELETE", "/calendar-feeds/{feed_id}", providers_feed, (204, 404, 404, 204, 403, 404, 404)
    ),
    Case(
        "GET",
        "/offers/{offer_id}/availability",
        offer_ids,
        ANY_MEMBER_OF_THE_POLE,
        query=range_query,
    ),
]
# Lists answer 200 to everyone: what they hold is checked in test_lists_show_only_ones_own.
LISTS = {("GET", "/requests"), ("GET", "/calendar-feeds"), ("GET", "/availability")}


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.method} {case.path}")
async def test_each_role_gets_what_the_table_says(cast: Cast, case: Case) -> None:
    for role, expected in zip(ROLES, case.expected, strict=True):
        params = await case.prepare(cast)
        kwargs: dict[str, Any] = {}
        if case.body is not None:
            kwargs["json"] = case.body(cast)
        if case.query is not None:
            kwargs["params"] = case.query(cast)
        answer = await cast.on_exchange(role).request(
            case.method, case.path.format(**params), **kwargs
        )
        assert answer.status_code == expected, (role, answer.text)


async def test_the_table_covers_every_operation(cast: Cast) -> None:
    document = (await cast.market.exchange.get("/openapi.json")).json()
    operations = {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }
    covered = {(case.method, case.path) for case in CASES} | LISTS | PUBLIC
    assert operations == covered


async def test_lists_show_only_ones_own(fresh_cast: Cast) -> None:
    cast = fresh_cast
    request_id = (await pending(cast))["request_id"]
    feed_id = (await providers_feed(cast))["feed_id"]
    listed: dict[str, set[str]] = {}
    for role in ROLES:
        requests = await cast.on_exchange(role).get("/requests", params={"limit": 100})
        feeds = await cast.on_exchange(role).get("/calendar-feeds")
        far = next_monday(weeks=20)
        free = await cast.on_exchange(role).get(
            "/availability",
            params={"kind": "premises", "start": at(far, 14), "end": at(far, 15)},
        )
        assert requests.status_code == feeds.status_code == free.status_code == 200, role
        listed[role] = (
            {item["id"] for item in requests.json()["items"]}
            | {item["id"] for item in feeds.json()["items"]}
            | {item["id"] for item in free.json()["items"]}
        )
    offer_id = cast.approval_offer["id"]
    assert {role for role in ROLES if request_id in listed[role]} == {
        "provider",
        "requester",
        "coordinator",
        "auditor",
    }
    assert {role for role in ROLES if feed_id in listed[role]} == {"provider"}
    # The provider's own offers are left out of its search; the other pole never sees them.
    assert {role for role in ROLES if offer_id in listed[role]} == {
        "requester",
        "bystander",
        "coordinator",
        "auditor",
    }
