"""Requests between members over the exchange's API, on copies fed by the catalog's events."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from exchange.models import booking_request
from ptce.testing.api import AVAILABILITY, outbox_types, problem, staff_time
from ptce.testing.exchange import PARIS, Market, at, next_monday, parties
from ptce.testing.helpers import eventually


async def test_an_instant_offer_is_accepted_at_once_with_frozen_terms(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    booked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
    )
    assert booked.status_code == 201, booked.text
    body = booked.json()
    assert body["state"] == "accepted"
    assert body["terms"]["unit"] == "day"
    assert body["terms"]["quantity"] == "1"
    assert body["terms"]["internal_price"] == "80.00"
    assert body["terms"]["reference_value"] == "200.00"
    assert body["terms"]["currency"] == "EUR"

    # A later change of the offer never changes what was agreed.
    url = f"/offers/{offer['id']}"
    etag = (await provider.get(url)).headers["etag"]
    repriced = await provider.patch(
        url, json={"internal_price": "120.00"}, headers={"If-Match": etag}
    )
    assert repriced.status_code == 200
    again = await market.on_exchange(requester).get(f"/requests/{body['id']}")
    assert again.json()["terms"]["internal_price"] == "80.00"

    assert await outbox_types(market.runtime.engine, body["id"]) == [
        "ptce.exchange.request.requested.v1",
        "ptce.exchange.request.accepted.v1",
    ]


async def test_the_provider_answers_and_each_side_moves_only_its_own_moves(
    market: Market,
) -> None:
    coordinator, provider, requester = await parties(market)
    bystander = await market.catalog.new_member(coordinator)
    outsider = await market.catalog.new_pole("Pôle B")
    offer = await market.published(provider)
    day = next_monday()
    ask = {"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12), "message": "Merci"}

    asked = await market.on_exchange(requester).post("/requests", json=ask)
    assert asked.json()["state"] == "requested"
    assert asked.json()["terms"] is None
    url = f"/requests/{asked.json()['id']}"

    assert problem(await market.on_exchange(requester).post(f"{url}/accept"), 403)
    assert problem(await market.on_exchange(bystander).post(f"{url}/accept"), 404)
    assert problem(await market.on_exchange(outsider).post(f"{url}/accept"), 404)
    assert problem(await market.on_exchange(outsider).get(url), 404)
    assert problem(await market.on_exchange(provider).post(f"{url}/withdraw"), 403)

    accepted = await market.on_exchange(provider).post(f"{url}/accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["terms"]["unit"] == "day"
    refused = problem(await market.on_exchange(requester).post(f"{url}/withdraw"), 409)
    assert refused["state"] == "accepted"

    second = await market.on_exchange(requester).post(
        "/requests", json={**ask, "start": at(day, 14), "end": at(day, 16)}
    )
    declined = await market.on_exchange(provider).post(
        f"/requests/{second.json()['id']}/decline", json={"reason": "Salle en travaux"}
    )
    assert (declined.json()["state"], declined.json()["reason"]) == ("declined", "Salle en travaux")
    # A declined request frees its slot.
    third = await market.on_exchange(requester).post(
        "/requests", json={**ask, "start": at(day, 14), "end": at(day, 16)}
    )
    assert third.status_code == 201
    withdrawn = await market.on_exchange(requester).post(f"/requests/{third.json()['id']}/withdraw")
    assert withdrawn.json()["state"] == "withdrawn"

    mine = (await market.on_exchange(requester).get("/requests")).json()["items"]
    assert len(mine) == 3
    assert (await market.on_exchange(bystander).get("/requests")).json()["items"] == []
    assert (await market.on_exchange(outsider).get("/requests")).json()["items"] == []
    assert len((await market.on_exchange(coordinator).get("/requests")).json()["items"]) == 3
    assert (await market.exchange.get("/requests")).status_code == 401


async def test_periods_are_checked_against_the_offer(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    ex = market.on_exchange(requester)
    day = next_monday()

    async def ask(start: str, end: str, **more: Any) -> httpx.Response:
        return await ex.post(
            "/requests", json={"offer_id": offer["id"], "start": start, "end": end, **more}
        )

    assert problem(await ask(at(day, 12), at(day, 10)), 422)
    assert problem(await ask(at(day, 10), at(day, 10)), 422)
    naive = await ask(f"{day}T10:00:00", f"{day}T12:00:00")
    assert {p["name"] for p in problem(naive, 422)["invalid-params"]} >= {"body.start"}
    assert problem(await ask(at(day, 7), at(day, 9)), 422)  # before opening
    assert problem(await ask(at(day, 17), at(day, 19)), 422)  # after closing
    assert problem(await ask(at(day + timedelta(days=1), 10), at(day + timedelta(days=1), 12)), 422)
    assert problem(await ask(at(day, 10), at(day, 10, 30)), 422)  # under the minimum
    # Notice: an offer open at all hours, asked for two hours from now (24 h needed).
    always_open = {
        **AVAILABILITY,
        "weekly_hours": [{"weekday": d, "opens": "00:00", "closes": "23:59"} for d in range(7)],
        "closures": [],
    }
    around_the_clock = await market.published(provider, availability=always_open, title="Salle C")
    soon = datetime.now(PARIS).replace(second=0, microsecond=0) + timedelta(hours=2)
    short_notice = await ex.post(
        "/requests",
        json={
            "offer_id": around_the_clock["id"],
            "start": soon.isoformat(),
            "end": (soon + timedelta(hours=1)).isoformat(),
        },
    )
    assert problem(short_notice, 422)["invalid-params"] == [
        {"name": "body.start", "reason": "needs 24 h notice and cannot be in the past"}
    ]
    own = await market.on_exchange(provider).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    )
    assert problem(own, 422)
    unknown = await ask(at(day, 10), at(day, 12), offer_id=str(uuid.uuid4()))
    assert problem(unknown, 404)

    # Half-open periods: back to back both succeed; an overlap names the conflicting period.
    assert (await ask(at(day, 9), at(day, 11))).status_code == 201
    assert (await ask(at(day, 11), at(day, 13))).status_code == 201
    clash = problem(await ask(at(day, 12), at(day, 14)), 409)
    named = datetime.fromisoformat(clash["conflicting_period"]["start"])
    assert named == datetime.fromisoformat(at(day, 11))


async def test_a_paused_offer_takes_no_request(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    paused = await provider.post(f"/offers/{offer['id']}/pause")
    await market.copied(offer["id"], paused.json()["version"])
    day = next_monday()
    response = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    )
    assert problem(response, 409)


@pytest.mark.parametrize("capacity", [1, 3])
async def test_never_more_holds_than_the_capacity_under_concurrency(
    market: Market, capacity: int
) -> None:
    coordinator, provider, _ = await parties(market)
    requesters = [await market.catalog.new_member(coordinator) for _ in range(4)]
    offer = await market.published(provider, capacity=capacity)
    day = next_monday()
    ask = {"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}

    responses = await asyncio.gather(
        *[market.on_exchange(requesters[i % 4]).post("/requests", json=ask) for i in range(200)]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == capacity
    assert statuses.count(409) == 200 - capacity
    async with market.runtime.session_factory() as session:
        holding = await session.scalar(
            select(func.count())
            .select_from(booking_request)
            .where(booking_request.c.offer_id == uuid.UUID(offer["id"]))
        )
    assert holding == capacity


async def test_an_offer_made_exclusive_still_counts_the_holds_it_took_before(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, capacity=2, booking_mode="instant")
    day = next_monday()
    ex = market.on_exchange(requester)
    before = await ex.post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    )
    assert before.status_code == 201, before.text
    url = f"/offers/{offer['id']}"
    current = await provider.get(url)
    narrowed = await provider.patch(
        url, json={"capacity": 1}, headers={"If-Match": current.headers["etag"]}
    )
    assert narrowed.status_code == 200, narrowed.text
    await market.copied(offer["id"], narrowed.json()["version"])

    refused = problem(
        await ex.post(
            "/requests", json={"offer_id": offer["id"], "start": at(day, 11), "end": at(day, 13)}
        ),
        409,
    )
    conflicting = datetime.fromisoformat(refused["conflicting_period"]["start"])
    assert conflicting == datetime.fromisoformat(before.json()["start"])
    after = await ex.post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 12), "end": at(day, 13)}
    )
    assert after.status_code == 201, after.text


@pytest.mark.parametrize(
    ("change", "expected"), [({"state": "paused"}, 409), ({"title": "Salle renommée"}, 201)]
)
async def test_a_booking_checks_the_offer_as_it_is_when_written(
    market: Market, change: dict[str, str], expected: int
) -> None:
    """A capacity-one offer is booked without a lock held across the checks: an offer copy
    changed after the booking read it (by the catalog's event) is read and checked again."""
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    sets = ", ".join(f"{name} = :{name}" for name in change)
    async with market.runtime.engine.connect() as catalog_event:
        await catalog_event.execute(
            text(f"UPDATE offer SET {sets}, version = version + 1 WHERE id = :id"),
            {**change, "id": uuid.UUID(offer["id"])},
        )
        booking = asyncio.create_task(
            market.on_exchange(requester).post(
                "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 18)}
            )
        )

        async def waits_for_the_offer() -> bool:
            async with market.runtime.engine.connect() as waiting:
                return bool(
                    await waiting.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND query LIKE '%INSERT INTO booking_request%'"
                        )
                    )
                )

        await eventually(waits_for_the_offer)
        await catalog_event.commit()
    answer = await booking
    assert answer.status_code == expected, answer.text
    if expected == 409:
        assert "paused" in problem(answer, 409)["detail"]
    async with market.runtime.engine.connect() as conn:
        held = await conn.scalar(
            select(func.count()).where(booking_request.c.offer_id == uuid.UUID(offer["id"]))
        )
    assert held == (1 if expected == 201 else 0)


async def test_staff_time_never_exceeds_its_weekly_cap(market: Market) -> None:
    coordinator, provider, _ = await parties(market)
    requesters = [await market.catalog.new_member(coordinator) for _ in range(3)]
    offer = await market.published(provider, **staff_time(provider.member_id))
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    slots = [
        (at(monday, 9), at(monday, 12)),  # 3 h
        (at(monday, 13), at(monday, 16)),  # 3 h
        (at(wednesday, 9), at(wednesday, 12)),  # 3 h: would make 9 h
        (at(wednesday, 9), at(wednesday, 10)),  # 1 h: exactly 7 h
    ]
    responses = await asyncio.gather(
        *[
            market.on_exchange(requesters[i % 3]).post(
                "/requests", json={"offer_id": offer["id"], "start": s, "end": e}
            )
            for i, (s, e) in enumerate(slots * 5)
        ]
    )
    assert all(r.status_code in (201, 409) for r in responses)
    async with market.runtime.session_factory() as session:
        periods = (
            await session.scalars(
                select(booking_request.c.period).where(
                    booking_request.c.offer_id == uuid.UUID(offer["id"])
                )
            )
        ).all()
    hours = sum((p.upper - p.lower).total_seconds() / 3600 for p in periods)
    assert hours <= 7
    assert hours >= 3


async def test_a_service_is_requested_for_a_quantity(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(
        provider,
        kind="service",
        title="Comptabilité associative",
        unit="hour",
        attributes={"deliverable": "Tenue des comptes et bilan annuel"},
    )
    ex = market.on_exchange(requester)
    missing = await ex.post("/requests", json={"offer_id": offer["id"]})
    assert "body.quantity" in {p["name"] for p in problem(missing, 422)["invalid-params"]}
    asked = await ex.post("/requests", json={"offer_id": offer["id"], "quantity": "12.5"})
    assert asked.status_code == 201, asked.text
    accepted = await market.on_exchange(provider).post(f"/requests/{asked.json()['id']}/accept")
    assert accepted.json()["terms"]["quantity"] == "12.50"
    assert accepted.json()["start"] is None


async def _shift(market: Market, request_id: str, start_in: timedelta, length: timedelta) -> None:
    """Move a request's period relative to now (the API only books ahead of time)."""
    async with market.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE booking_request SET period = tstzrange(now() + :a, now() + :a + :b, '[)') "
                "WHERE id = :id"
            ),
            {"a": start_in, "b": length, "id": uuid.UUID(request_id)},
        )


async def test_accepted_requests_are_cancelled_completed_or_missed(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    bystander = await market.catalog.new_member(coordinator)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday(weeks=2)
    ex = market.on_exchange(requester)

    async def book(start: int, end: int) -> str:
        made = await ex.post(
            "/requests",
            json={"offer_id": offer["id"], "start": at(day, start), "end": at(day, end)},
        )
        assert made.json()["state"] == "accepted", made.text
        return str(made.json()["id"])

    early = await book(9, 11)
    no_reason = await ex.post(f"/requests/{early}/cancel")
    assert "body.reason" in {p["name"] for p in problem(no_reason, 422)["invalid-params"]}
    assert problem(
        await market.on_exchange(bystander).post(f"/requests/{early}/cancel", json={"reason": "x"}),
        404,
    )
    cancelled = await ex.post(f"/requests/{early}/cancel", json={"reason": "Réunion annulée"})
    assert (cancelled.json()["state"], cancelled.json()["late"]) == ("cancelled", False)
    # Its slot is free again.
    assert (await book(9, 11)) != early

    late = await book(12, 14)
    await _shift(market, late, timedelta(hours=3), timedelta(hours=2))
    by_provider = await market.on_exchange(provider).post(
        f"/requests/{late}/cancel", json={"reason": "Chauffage en panne"}
    )
    assert (by_provider.json()["state"], by_provider.json()["late"]) == ("cancelled", True)

    used = await book(15, 17)
    too_soon = problem(await market.on_exchange(provider).post(f"/requests/{used}/complete"), 409)
    assert too_soon["state"] == "accepted"
    await _shift(market, used, -timedelta(hours=3), timedelta(hours=2))
    assert problem(await ex.post(f"/requests/{used}/complete"), 403)
    done = await market.on_exchange(provider).post(
        f"/requests/{used}/complete", json={"quantity_used": "0.5"}
    )
    assert (done.json()["state"], done.json()["quantity_used"]) == ("completed", "0.50")
    assert problem(await ex.post(f"/requests/{used}/cancel", json={"reason": "x"}), 409)

    missed = await book(17, 18)
    await _shift(market, missed, -timedelta(hours=6), timedelta(hours=1))
    no_show = await market.on_exchange(provider).post(f"/requests/{missed}/no-show")
    assert no_show.json()["state"] == "no_show"

    types = await outbox_types(market.runtime.engine, used)
    assert types[-1] == "ptce.exchange.request.completed.v1"


async def test_concurrent_moves_of_one_request_make_one_move_and_one_event(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    day = next_monday()
    asked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    )
    request_id = asked.json()["id"]
    url = f"/requests/{request_id}"
    on_provider, on_requester = market.on_exchange(provider), market.on_exchange(requester)
    answers = await asyncio.gather(
        *[on_provider.post(f"{url}/accept") for _ in range(10)],
        *[on_provider.post(f"{url}/decline", json={"reason": "Complet"}) for _ in range(10)],
        *[on_requester.post(f"{url}/withdraw") for _ in range(10)],
    )
    moved = [answer for answer in answers if answer.status_code == 200]
    assert len(moved) == 1, [answer.text for answer in answers]
    assert {answer.status_code for answer in answers} == {200, 409}
    winner = moved[0].json()
    assert winner["version"] == 2
    assert (await on_requester.get(url)).json() == winner
    types = await outbox_types(market.runtime.engine, request_id)
    assert types == [
        "ptce.exchange.request.requested.v1",
        f"ptce.exchange.request.{winner['state']}.v1",
    ]


async def test_each_event_of_a_request_says_what_its_answer_said(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    booked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    )
    assert booked.status_code == 201, booked.text
    request_id = booked.json()["id"]
    await _shift(market, request_id, -timedelta(hours=1), timedelta(hours=2))
    done = await market.on_exchange(provider).post(
        f"/requests/{request_id}/complete", json={"quantity_used": "1"}
    )
    assert done.status_code == 200, done.text
    async with market.runtime.engine.connect() as conn:
        events = (
            await conn.scalars(
                text("SELECT cloudevent FROM outbox WHERE key = :key ORDER BY id"),
                {"key": request_id},
            )
        ).all()
    requested, accepted, completed = (event["data"] for event in events)
    fields = ("state", "quantity", "quantity_used", "terms", "version", "start", "end", "late")
    for data, answer in ((accepted, booked.json()), (completed, done.json())):
        assert data["request_id"] == answer["id"]
        assert {field: data[field] for field in fields} == {
            field: answer[field] for field in fields
        }
    assert requested == accepted  # an instant booking: requested and accepted at once
    assert done.json()["quantity_used"] == "1.00"


async def test_one_idempotency_key_creates_one_booking_even_across_a_restart(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, capacity=5, booking_mode="instant")
    day = next_monday()
    ask = {"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    ex = market.on_exchange(requester)
    key = {"Idempotency-Key": f"booking-{uuid.uuid4()}"}

    answers = await asyncio.gather(
        *[ex.post("/requests", json=ask, headers=key) for _ in range(100)]
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1

    # The service restarts (a new process on the same database): the same answer again.
    restarted = market.app_factory()
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://exchange") as http:
            again = await dataclasses.replace(requester, http=http).post(
                "/requests", json=ask, headers=key
            )
            other_body = await dataclasses.replace(requester, http=http).post(
                "/requests", json={**ask, "start": at(day, 13), "end": at(day, 15)}, headers=key
            )
    assert again.status_code == 201
    assert again.json() == answers[0].json()
    assert problem(other_body, 422)

    async with market.runtime.session_factory() as session:
        created = await session.scalar(
            select(func.count())
            .select_from(booking_request)
            .where(booking_request.c.offer_id == uuid.UUID(offer["id"]))
        )
    assert created == 1
    # Without a key, the same request is a new booking (capacity five allows it).
    assert (await ex.post("/requests", json=ask)).status_code == 201


async def test_a_request_before_the_poles_settings_arrived_is_told_to_retry(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    # As if the offer's event had overtaken its pole's (they travel on other partitions).
    async with market.runtime.engine.begin() as conn:
        await conn.execute(text("DELETE FROM pole WHERE id = :id"), {"id": provider.pole_id})
    day = next_monday()
    early = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 10)}
    )
    assert problem(early, 503)
    assert early.headers["retry-after"] == "1"
