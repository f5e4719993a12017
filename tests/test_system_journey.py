"""The whole journey across the three services running as separate processes (``ptce serve``,
as ``make run`` runs them), wired only by HTTP and the broker: a coordinator onboards two
members; one publishes a room and staff time; the other books both, one on approval and one
instantly; the provider accepts; the bookings complete; the ledger shows each member exactly
the expected figures in money and in kind, and the FEC and the pole's report agree."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ptce.testing.api import Caller, room, staff_time
from ptce.testing.exchange import at, next_monday
from ptce.testing.helpers import eventually
from ptce.testing.system import System

D = Decimal


async def _shift_into_the_past(system: System, request_id: str, length: timedelta) -> None:
    """The API books ahead of time: the test moves a booking's period to just before now."""
    engine = create_async_engine(system.settings["exchange"].database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE booking_request SET period = "
                    "tstzrange(now() - CAST(:length AS interval) - interval '1 minute', "
                    "now() - interval '1 minute',"
                    " '[)') WHERE id = :id"
                ),
                {"length": length, "id": uuid.UUID(request_id)},
            )
    finally:
        await engine.dispose()


async def _available(exchange: Caller, offer: dict[str, Any]) -> None:
    """Wait until the exchange has the offer (it learns of it from the catalog's events)."""
    monday = next_monday(weeks=2)
    url = f"/offers/{offer['id']}/availability"
    params = {"start": at(monday, 0), "end": at(monday + timedelta(days=1), 0)}

    async def known() -> bool:
        return (await exchange.get(url, params=params)).status_code == 200

    await eventually(known)


def _figures(totals: dict[str, Any]) -> tuple[Decimal, ...]:
    return tuple(
        D(totals[name])
        for name in (
            "provided_monetary",
            "provided_in_kind",
            "received_monetary",
            "received_in_kind",
        )
    )


async def _activity(
    caller: Caller, year: dict[str, str], expected: tuple[Decimal, ...]
) -> dict[str, Any]:
    """The member's activity once the ledger shows ``expected`` (provided and received, money
    and kind): it values the exchange's events as they come, and answers 404 until its copy
    of the member arrives from the catalog's."""

    async def valued() -> dict[str, Any] | None:
        answer = await caller.get(f"/members/{caller.member_id}/activity", params=year)
        if answer.status_code != 200:
            return None
        body: dict[str, Any] = answer.json()
        return body if _figures(body["totals"]) == expected else None

    found = await eventually(valued)
    assert found is not None
    return found


async def test_a_journey_across_the_three_running_services(system: System) -> None:
    catalog = system.catalog()
    coordinator = await catalog.new_pole("Pôle du parcours")
    provider = await catalog.new_member(coordinator, legal_name="Atelier A")
    requester = await catalog.new_member(coordinator, legal_name="Bureau B")

    # The provider publishes a room (on approval) and staff time (instant).
    offers = {}
    for name, body in {
        "room": room(),
        "staff": staff_time(
            provider.member_id, max_hours_per_week=20, capacity=1, booking_mode="instant"
        ),
    }.items():
        created = await provider.post("/offers", json=body)
        assert created.status_code == 201, created.text
        published = await provider.post(f"/offers/{created.json()['id']}/publish")
        assert published.status_code == 200, published.text
        offers[name] = published.json()
    on_exchange = system.on("exchange", requester)
    for offer in offers.values():
        await _available(on_exchange, offer)

    # The requester books both: a day of the room, three hours of staff time.
    monday = next_monday(weeks=2)
    room_request = await on_exchange.post(
        "/requests",
        json={"offer_id": offers["room"]["id"], "start": at(monday, 9), "end": at(monday, 18)},
    )
    assert room_request.status_code == 201, room_request.text
    assert room_request.json()["state"] == "requested"
    staff_request = await on_exchange.post(
        "/requests",
        json={"offer_id": offers["staff"]["id"], "start": at(monday, 9), "end": at(monday, 12)},
    )
    assert staff_request.status_code == 201, staff_request.text
    assert staff_request.json()["state"] == "accepted"
    provider_on_exchange = system.on("exchange", provider)
    room_id, staff_id = room_request.json()["id"], staff_request.json()["id"]
    accepted = await provider_on_exchange.post(f"/requests/{room_id}/accept")
    assert accepted.json()["state"] == "accepted", accepted.text

    # The bookings take place, then complete.
    await _shift_into_the_past(system, room_id, timedelta(hours=9))
    await _shift_into_the_past(system, staff_id, timedelta(hours=3))
    for request_id in (room_id, staff_id):
        done = await provider_on_exchange.post(f"/requests/{request_id}/complete")
        assert done.json()["state"] == "completed", done.text

    # The ledger: a day at 80 € and 200 − 80 = 120 € in kind for the room; 3 h × 30 € = 90 €
    # and 3 × (45 − 30) = 45 € in kind for the staff time.
    year = {"from": f"{monday.year}-01-01", "to": f"{monday.year + 1}-01-01"}
    provider_on_ledger = system.on("ledger", provider)
    requester_on_ledger = system.on("ledger", requester)

    provided = await _activity(provider_on_ledger, year, (D(170), D(165), D(0), D(0)))
    by_resource = {row["resource"]: row for row in provided["by_resource"]}
    assert _figures(by_resource["premises"]) == (D(80), D(120), D(0), D(0))
    assert _figures(by_resource["staff_time"]) == (D(90), D(45), D(0), D(0))
    await _activity(requester_on_ledger, year, (D(0), D(0), D(170), D(165)))

    # The pole's report and the FEC say the same.
    coordinator_on_ledger = system.on("ledger", coordinator)
    pole = (await coordinator_on_ledger.get("/pole/activity", params=year)).json()
    assert (D(pole["totals"]["monetary"]), D(pole["totals"]["in_kind"])) == (D(170), D(165))
    assert [
        (flow["provider"], flow["beneficiary"], D(flow["monetary"]), D(flow["in_kind"]))
        for flow in pole["flows"]
    ] == [("Atelier A", "Bureau B", D(170), D(165))]
    fec = await coordinator_on_ledger.get("/fec", params={"year": monday.year})
    assert fec.status_code == 200, fec.text
    header, *lines = [line.split("\t") for line in fec.text.split("\r\n")[:-1]]

    def amount(value: str) -> Decimal:
        return D(value.replace(",", ".")) if value else D(0)

    def credited(account_class: str, journal: str) -> Decimal:
        return sum(
            (
                amount(line[header.index("Credit")]) - amount(line[header.index("Debit")])
                for line in lines
                if line[header.index("CompteNum")].startswith(account_class)
                and line[header.index("JournalCode")] == journal
            ),
            D(0),
        )

    assert credited("7", "EX") == D(170)  # the provider's revenue
    assert credited("87", "CVN") == D(165)  # the requester's contributions in kind received
