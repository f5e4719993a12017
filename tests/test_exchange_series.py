"""Weekly series: one request, all or nothing or partial, and cancelling one occurrence or
the rest."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from exchange.models import booking_request
from exchange.requests import weekly_occurrences
from ptce.testing.api import AVAILABILITY, Caller, problem
from ptce.testing.exchange import PARIS, Market, at, next_monday, parties


def test_occurrences_keep_their_local_time_across_a_daylight_saving_change() -> None:
    # 2027-03-28: Paris moves from +01:00 to +02:00.
    first = datetime(2027, 3, 23, 9, tzinfo=PARIS)
    occurrences = weekly_occurrences(first, first + timedelta(hours=3), 2, "Europe/Paris")
    (start_1, end_1), (start_2, end_2) = occurrences
    assert (start_1.hour, start_2.hour) == (9, 9)
    assert (end_1.hour, end_2.hour) == (12, 12)
    assert start_2.astimezone(UTC) - start_1.astimezone(UTC) == timedelta(days=7, hours=-1)
    assert start_2.utcoffset() == timedelta(hours=2)


async def _weekly_room(market: Market, provider: Caller, **overrides: Any) -> dict[str, Any]:
    """The test room, open every Monday of the year (no closure)."""
    return await market.published(
        provider, availability={**AVAILABILITY, "closures": []}, **overrides
    )


def _series(
    offer_id: str, day: date, *, weeks: int = 4, all_or_nothing: bool = True
) -> dict[str, Any]:
    return {
        "offer_id": offer_id,
        "start": at(day, 9),
        "end": at(day, 12),
        "weeks": weeks,
        "all_or_nothing": all_or_nothing,
        "message": "Atelier hebdomadaire",
    }


async def _count(market: Market) -> int:
    async with market.runtime.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(booking_request)) or 0)


async def test_all_or_nothing_books_none_when_one_occurrence_conflicts(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    other = await market.catalog.new_member(coordinator)
    offer = await _weekly_room(market, provider, booking_mode="instant")
    day = next_monday()
    third_week = day + timedelta(weeks=2)
    taken = await market.on_exchange(other).post(
        "/requests",
        json={"offer_id": offer["id"], "start": at(third_week, 10), "end": at(third_week, 11)},
    )
    assert taken.status_code == 201
    before = await _count(market)

    refused = await market.on_exchange(requester).post("/series", json=_series(offer["id"], day))
    body = problem(refused, 409)
    ((conflict,),) = [body["conflicts"]]
    assert datetime.fromisoformat(conflict["start"]) == datetime.combine(third_week, time(9), PARIS)
    assert (
        conflict["conflicting_period"]["start"]
        == datetime.fromisoformat(at(third_week, 10)).astimezone(UTC).isoformat()
    )
    assert await _count(market) == before  # nothing was booked


async def test_a_partial_series_books_what_it_can_and_lists_the_rest(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    other = await market.catalog.new_member(coordinator)
    offer = await _weekly_room(market, provider)
    day = next_monday()
    second_week = day + timedelta(weeks=1)
    await market.on_exchange(other).post(
        "/requests",
        json={"offer_id": offer["id"], "start": at(second_week, 11), "end": at(second_week, 13)},
    )
    made = await market.on_exchange(requester).post(
        "/series", json=_series(offer["id"], day, all_or_nothing=False)
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/series/{body['series_id']}"
    booked_days = [
        datetime.fromisoformat(r["start"]).astimezone(PARIS).date() for r in body["booked"]
    ]
    assert booked_days == [day, day + timedelta(weeks=2), day + timedelta(weeks=3)]
    assert {r["state"] for r in body["booked"]} == {"requested"}  # on approval
    assert {r["series_id"] for r in body["booked"]} == {body["series_id"]}
    assert [c["start"] for c in body["conflicts"]] == [
        datetime.combine(second_week, time(9), PARIS).isoformat()
    ]
    # The provider sees and answers each occurrence like any request.
    first_id = body["booked"][0]["id"]
    accepted = await market.on_exchange(provider).post(f"/requests/{first_id}/accept")
    assert accepted.json()["state"] == "accepted"


async def test_a_series_whose_every_occurrence_conflicts_books_nothing(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await _weekly_room(market, provider)
    sunday = next_monday() - timedelta(days=1)  # the test room is closed on Sundays
    refused = await market.on_exchange(requester).post(
        "/series", json=_series(offer["id"], sunday, weeks=2, all_or_nothing=False)
    )
    assert len(problem(refused, 409)["conflicts"]) == 2


async def test_one_occurrence_or_the_rest_of_a_series_can_be_cancelled(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    bystander = await market.catalog.new_member(coordinator)
    offer = await _weekly_room(market, provider, booking_mode="instant")
    day = next_monday(weeks=1)
    made = await market.on_exchange(requester).post("/series", json=_series(offer["id"], day))
    assert made.status_code == 201, made.text
    series_id = made.json()["series_id"]
    ids = [r["id"] for r in made.json()["booked"]]
    assert len(ids) == 4

    one = await market.on_exchange(requester).post(
        f"/requests/{ids[0]}/cancel", json={"reason": "Férié"}
    )
    assert one.json()["state"] == "cancelled"
    stranger = await market.on_exchange(bystander).post(
        f"/series/{series_id}/cancel", json={"reason": "x"}
    )
    assert problem(stranger, 404)
    rest = await market.on_exchange(provider).post(
        f"/series/{series_id}/cancel",
        json={"reason": "Travaux dans la salle", "from": at(day + timedelta(weeks=2), 0)},
    )
    assert rest.status_code == 200, rest.text
    assert [r["id"] for r in rest.json()["occurrences"]] == ids[2:]
    states = await market.on_exchange(requester).get(f"/series/{series_id}")
    assert [r["state"] for r in states.json()["occurrences"]] == [
        "cancelled",
        "accepted",
        "cancelled",
        "cancelled",
    ]
    assert states.json()["occurrences"][3]["reason"] == "Travaux dans la salle"
    assert problem(await market.on_exchange(bystander).get(f"/series/{series_id}"), 404)


async def test_series_input_is_bounded(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await _weekly_room(market, provider)
    day = next_monday()
    ex = market.on_exchange(requester)
    for bad in (
        {"weeks": 53},
        {"weeks": 1},
        {"end": at(day + timedelta(days=8), 9)},
        {"end": at(day, 8)},
        {"start": datetime.combine(day, time(9)).isoformat()},
    ):
        refused = await ex.post("/series", json={**_series(offer["id"], day), **bad})
        assert problem(refused, 422), bad


async def test_a_series_replayed_with_its_idempotency_key_books_once(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await _weekly_room(market, provider)
    ex = market.on_exchange(requester)
    body = _series(offer["id"], next_monday(), weeks=3)
    headers = {"Idempotency-Key": "atelier-2027"}
    first = await ex.post("/series", json=body, headers=headers)
    again = await ex.post("/series", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert await _count(market) == 3
