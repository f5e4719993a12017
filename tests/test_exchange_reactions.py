"""How the exchange reacts to the catalog: offers paused or archived, members leaving."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from exchange.reactions import ARCHIVED
from ptce.testing.api import Caller, outbox_types, problem
from ptce.testing.exchange import PARIS, Market, at, next_monday, parties
from ptce.testing.helpers import eventually


@pytest.fixture
def market(module_market: Market) -> Market:
    """One market for the module: each test keeps to poles of its own, which see nothing else."""
    return module_market


async def _book(market: Market, requester: Caller, offer: dict[str, Any], hour: int) -> str:
    day = next_monday()
    made = await market.on_exchange(requester).post(
        "/requests",
        json={"offer_id": offer["id"], "start": at(day, hour), "end": at(day, hour + 1)},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _wait_for(market: Market, caller: Caller, request_id: str, state: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any]:
        got: dict[str, Any] = (
            await market.on_exchange(caller).get(f"/requests/{request_id}")
        ).json()
        return got if got["state"] == state else {}

    return await eventually(reached)


async def test_a_paused_offer_takes_no_new_request_but_keeps_what_was_agreed(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    agreed = await _book(market, requester, offer, 9)
    paused = await provider.post(f"/offers/{offer['id']}/pause")
    assert paused.status_code == 200
    await market.copied(offer["id"], paused.json()["version"])
    day = next_monday()
    refused = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 14), "end": at(day, 15)}
    )
    assert problem(refused, 409)
    kept = await market.on_exchange(requester).get(f"/requests/{agreed}")
    assert kept.json()["state"] == "accepted"


async def test_archiving_an_offer_declines_pending_and_cancels_future_bookings(
    market: Market,
) -> None:
    coordinator, provider, requester = await parties(market)
    other = await market.catalog.new_member(coordinator)
    offer = await market.published(provider)
    pending = await _book(market, requester, offer, 9)
    accepted = await _book(market, other, offer, 11)
    answered = await market.on_exchange(provider).post(f"/requests/{accepted}/accept")
    assert answered.json()["state"] == "accepted"

    archived = await provider.post(f"/offers/{offer['id']}/archive")
    assert archived.status_code == 200, archived.text

    declined = await _wait_for(market, requester, pending, "declined")
    assert declined["reason"] == ARCHIVED
    cancelled = await _wait_for(market, other, accepted, "cancelled")
    assert cancelled["reason"] == ARCHIVED
    assert cancelled["late"] is False
    assert cancelled["terms"] is not None  # what had been agreed stays on record
    engine = market.runtime.engine
    assert (await outbox_types(engine, pending))[-1] == "ptce.exchange.request.declined.v1"
    assert (await outbox_types(engine, accepted))[-1] == "ptce.exchange.request.cancelled.v1"


async def test_a_member_leaving_releases_its_offers_and_its_own_requests(market: Market) -> None:
    coordinator, leaving, staying = await parties(market)
    its_offer = await market.published(leaving, booking_mode="instant")
    other_offer = await market.published(staying)
    other_instant = await market.published(staying, booking_mode="instant", title="Salle B")
    booked_from_it = await _book(market, staying, its_offer, 9)
    its_pending = await _book(market, leaving, other_offer, 10)
    its_booking = await _book(market, leaving, other_instant, 14)

    gone = await coordinator.post(
        f"/members/{leaving.member_id}/leave",
        json={"left_on": datetime.now(PARIS).date().isoformat()},
    )
    assert gone.status_code == 200, gone.text

    cancelled = await _wait_for(market, staying, booked_from_it, "cancelled")
    assert cancelled["reason"].endswith("left the pole.")
    withdrawn = await _wait_for(market, staying, its_pending, "withdrawn")
    assert withdrawn["reason"] == cancelled["reason"]
    await _wait_for(market, staying, its_booking, "cancelled")

    # The member who left can no longer act: within AUTH_MEMBER_RECHECK_SECONDS of its
    # copy having the departure (it acted a moment ago, and was found still a member then).
    async def refused() -> Any:
        answer = await market.on_exchange(leaving).get("/requests")
        return answer if answer.status_code == 401 else None

    assert problem(await eventually(refused), 401)
