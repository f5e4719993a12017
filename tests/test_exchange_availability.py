"""Availability: an offer's free periods, and the offers free for a period (exchange API)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from sqlalchemy.dialects.postgresql import Range

from exchange.availability import FreePeriod, free_periods, remaining_for_period
from exchange.requests import Hold, weekly_cap_exceeded
from ptce.testing.api import AVAILABILITY, Caller, invalid_fields, problem
from ptce.testing.exchange import PARIS, Market, at, next_monday, parties

EVERY_DAY = {
    "weekly_hours": [{"weekday": d, "opens": "09:00", "closes": "18:00"} for d in range(7)],
    "closures": [],
    "min_booking_minutes": 60,
}
STAFF_ATTRIBUTES = {
    "role": "Comptable",
    "max_hours_per_week": 7,
    "regime": "direct_loan",
    "cost_per_unit": "32.00",
}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), PARIS)


def next_dst_change(after: date) -> date:
    """The first day from ``after`` on whose noon has another UTC offset than the day before's
    (Europe/Paris: the last Sunday of March or of October)."""
    day = after
    while local(day, 12).utcoffset() == local(day - timedelta(days=1), 12).utcoffset():
        day += timedelta(days=1)
    return day


def hold(start: datetime, end: datetime) -> Hold:
    return Hold(Range(start, end, bounds="[)"))


def spans(free: list[FreePeriod]) -> list[tuple[datetime, datetime, int]]:
    return [(p.start, p.end, p.remaining) for p in free]


LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


# --- The pure part ------------------------------------------------------------------------


def test_opening_hours_stay_local_across_a_daylight_saving_change() -> None:
    change = next_dst_change(date(2030, 1, 1))
    assert change.weekday() == 6
    start, end = local(change - timedelta(days=2), 0), local(change + timedelta(days=2), 0)
    free = free_periods(
        availability=EVERY_DAY,
        time_zone="Europe/Paris",
        capacity=1,
        holds=[],
        start=start,
        end=end,
        now=LONG_AGO,
    )
    assert [p.start.date() for p in free] == [change + timedelta(days=d) for d in (-2, -1, 0, 1)]
    assert all((p.start.time(), p.end.time()) == (time(9), time(18)) for p in free)
    before, after = free[1], free[2]
    assert before.start.utcoffset() != after.start.utcoffset()
    assert before.start.astimezone(UTC).hour != after.start.astimezone(UTC).hour
    assert all(p.end - p.start == timedelta(hours=9) for p in free)


def test_a_closure_removes_its_days() -> None:
    monday = date(2030, 6, 3)
    closed = {
        **EVERY_DAY,
        "closures": [{"start_date": "2030-06-04", "end_date": "2030-06-05", "reason": "Travaux"}],
    }
    free = free_periods(
        availability=closed,
        time_zone="Europe/Paris",
        capacity=1,
        holds=[],
        start=local(monday, 0),
        end=local(monday + timedelta(days=4), 0),
        now=LONG_AGO,
    )
    assert [p.start.date().isoformat() for p in free] == ["2030-06-03", "2030-06-06"]


def test_capacity_three_with_two_holds() -> None:
    monday = date(2030, 6, 3)
    holds = [hold(local(monday, 10), local(monday, 12)), hold(local(monday, 11), local(monday, 13))]
    free = free_periods(
        availability=EVERY_DAY,
        time_zone="Europe/Paris",
        capacity=3,
        holds=holds,
        start=local(monday, 0),
        end=local(monday, 23),
        now=LONG_AGO,
    )
    assert spans(free) == [
        (local(monday, 9), local(monday, 10), 3),
        (local(monday, 10), local(monday, 11), 2),
        (local(monday, 11), local(monday, 12), 1),
        (local(monday, 12), local(monday, 13), 2),
        (local(monday, 13), local(monday, 18), 3),
    ]
    # A third hold over 11:00–12:00 uses the whole capacity: that hour is no longer free.
    full = free_periods(
        availability=EVERY_DAY,
        time_zone="Europe/Paris",
        capacity=3,
        holds=[*holds, hold(local(monday, 11), local(monday, 12))],
        start=local(monday, 0),
        end=local(monday, 23),
        now=LONG_AGO,
    )
    assert (local(monday, 10), local(monday, 11), 2) in spans(full)
    assert not [p for p in full if p.start < local(monday, 12) and local(monday, 11) < p.end]


def test_notice_short_gaps_and_the_range_clip_the_periods() -> None:
    monday = date(2030, 6, 3)
    rules = {**EVERY_DAY, "min_notice_hours": 2}
    now = local(monday, 8, 15)  # bookable from 10:15
    holds = [
        hold(local(monday, 11), local(monday, 12)),
        hold(local(monday, 12, 30), local(monday, 14)),
    ]
    free = free_periods(
        availability=rules,
        time_zone="Europe/Paris",
        capacity=1,
        holds=holds,
        start=local(monday, 0),
        end=local(monday, 17),
        now=now,
    )
    # 10:15–11:00 and 12:00–12:30 are shorter than the 60 minutes a booking needs.
    assert spans(free) == [(local(monday, 14), local(monday, 17), 1)]


def test_a_whole_period_is_free_by_the_rules_a_request_passes() -> None:
    monday = date(2030, 6, 3)
    row = SimpleNamespace(
        kind="staff_time",
        capacity=2,
        availability=EVERY_DAY,
        attributes={"max_hours_per_week": 7},
    )

    def remaining(start: datetime, end: datetime, holds: list[Hold]) -> int | None:
        return remaining_for_period(
            row, time_zone="Europe/Paris", start=start, end=end, now=LONG_AGO, holds=holds
        )

    one = [hold(local(monday, 9), local(monday, 12))]
    assert remaining(local(monday, 10), local(monday, 11), one) == 1
    assert remaining(local(monday, 12), local(monday, 13), one) == 2
    assert remaining(local(monday, 8), local(monday, 10), one) is None  # before opening
    assert remaining(local(monday, 10), local(monday, 10, 30), one) is None  # too short
    two = [*one, hold(local(monday, 11), local(monday, 12))]
    assert remaining(local(monday, 10), local(monday, 12), two) is None  # full at 11:00
    # The weekly cap: 3 h held, 4 more fit, 5 do not.
    period = Range(local(monday, 13), local(monday, 17), bounds="[)")
    assert not weekly_cap_exceeded(7, period, one, PARIS)
    longer = Range(local(monday, 13), local(monday, 18), bounds="[)")
    assert weekly_cap_exceeded(7, longer, one, PARIS)
    assert remaining(local(monday, 13), local(monday, 18), one) is None


# --- Over the API -------------------------------------------------------------------------


@pytest.fixture
def market(module_market: Market) -> Market:
    """One market for the module: each test keeps to poles of its own, which see nothing else."""
    return module_market


async def free_of(caller: Caller, offer_id: str, start: str, end: str) -> dict[str, Any]:
    answer = await caller.get(
        f"/offers/{offer_id}/availability", params={"start": start, "end": end}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def periods(body: dict[str, Any]) -> list[tuple[datetime, datetime, int]]:
    return [
        (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]), p["remaining"])
        for p in body["free"]
    ]


def slot(day: date, start: int | tuple[int, int], end: int | tuple[int, int], left: int = 1) -> Any:
    begin = local(day, *start) if isinstance(start, tuple) else local(day, start)
    until = local(day, *end) if isinstance(end, tuple) else local(day, end)
    return (begin, until, left)


async def book(caller: Caller, offer_id: str, start: str, end: str) -> str:
    made = await caller.post("/requests", json={"offer_id": offer_id, "start": start, "end": end})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_a_booked_week_leaves_the_rest_free_edge_to_edge(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    auditor = await market.catalog.new_member(coordinator, role="auditor")
    offer = await market.published(provider)
    ex = market.on_exchange(requester)
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    week = (at(monday, 0), at(monday + timedelta(days=7), 0))

    first = await free_of(ex, offer["id"], *week)
    assert (first["time_zone"], first["capacity"], first["state"]) == (
        "Europe/Paris",
        1,
        "published",
    )
    assert periods(first) == [slot(monday, 9, 18), slot(wednesday, 9, (12, 30))]
    assert first["free"][0]["start"] == local(monday, 9).isoformat()  # the local offset

    await book(ex, offer["id"], at(monday, 10), at(monday, 12))
    await book(ex, offer["id"], at(monday, 12, 30), at(monday, 14))
    await book(ex, offer["id"], at(monday, 14), at(monday, 15))  # back to back
    booked = await free_of(ex, offer["id"], *week)
    # Half-open: 9:00–10:00 ends where the booking starts, 15:00 is free again; 12:00–12:30
    # is shorter than the 60 minutes a booking needs.
    assert periods(booked) == [
        slot(monday, 9, 10),
        slot(monday, 15, 18),
        slot(wednesday, 9, (12, 30)),
    ]
    # Any member of the pole may read it: the owner, the coordinator, an auditor.
    for reader in (provider, coordinator, auditor):
        assert (await free_of(market.on_exchange(reader), offer["id"], *week))["free"] == booked[
            "free"
        ]
    # Each free period can be requested as a whole.
    await book(ex, offer["id"], at(monday, 15), at(monday, 18))


async def test_opening_hours_stay_local_across_the_next_daylight_saving_change(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    change = next_dst_change(datetime.now(PARIS).date() + timedelta(days=8))
    wednesday, monday = change - timedelta(days=4), change + timedelta(days=1)
    body = await free_of(
        market.on_exchange(requester),
        offer["id"],
        at(wednesday, 0),
        at(monday + timedelta(days=1), 0),
    )
    assert periods(body) == [slot(wednesday, 9, (12, 30)), slot(monday, 9, 18)]
    before, after = (datetime.fromisoformat(p["start"]) for p in body["free"])
    assert before.time() == after.time() == time(9)
    assert before.utcoffset() != after.utcoffset()
    assert before.utcoffset() == local(wednesday, 9).utcoffset()
    assert after.utcoffset() == local(monday, 9).utcoffset()


async def test_capacity_three_splits_the_free_periods_by_what_remains(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    others = [await market.catalog.new_member(coordinator) for _ in range(2)]
    offer = await market.published(provider, capacity=3)
    monday = next_monday()
    day = (at(monday, 0), at(monday + timedelta(days=1), 0))
    await book(market.on_exchange(requester), offer["id"], at(monday, 10), at(monday, 12))
    await book(market.on_exchange(others[0]), offer["id"], at(monday, 11), at(monday, 13))
    third = await book(market.on_exchange(others[1]), offer["id"], at(monday, 11), at(monday, 12))

    full = await free_of(market.on_exchange(requester), offer["id"], *day)
    assert periods(full) == [
        slot(monday, 9, 10, 3),
        slot(monday, 10, 11, 2),
        slot(monday, 12, 13, 2),
        slot(monday, 13, 18, 3),
    ]
    # A withdrawn request no longer holds anything.
    withdrawn = await market.on_exchange(others[1]).post(f"/requests/{third}/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    again = await free_of(market.on_exchange(requester), offer["id"], *day)
    assert periods(again) == [
        slot(monday, 9, 10, 3),
        slot(monday, 10, 11, 2),
        slot(monday, 11, 12, 1),
        slot(monday, 12, 13, 2),
        slot(monday, 13, 18, 3),
    ]


async def test_closures_unpublished_offers_services_and_bad_ranges(market: Market) -> None:
    _, provider, requester = await parties(market)
    ex = market.on_exchange(requester)
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    week = (at(monday, 0), at(monday + timedelta(days=7), 0))
    closure = {"start_date": wednesday.isoformat(), "end_date": wednesday.isoformat()}
    closed = await market.published(
        provider, availability={**AVAILABILITY, "closures": [{**closure, "reason": "Travaux"}]}
    )
    assert periods(await free_of(ex, closed["id"], *week)) == [slot(monday, 9, 18)]

    paused = await provider.post(f"/offers/{closed['id']}/pause")
    await market.copied(closed["id"], paused.json()["version"])
    body = await free_of(ex, closed["id"], *week)
    assert (body["state"], body["free"], body["bookable_from"]) == ("paused", [], None)

    service = await market.published(
        provider,
        kind="service",
        title="Comptabilité associative",
        unit="hour",
        attributes={"deliverable": "Tenue des comptes et bilan annuel"},
    )
    refused = await ex.get(
        f"/offers/{service['id']}/availability", params={"start": week[0], "end": week[1]}
    )
    assert invalid_fields(problem(refused, 422)) == {"path.offer_id"}

    url = f"/offers/{closed['id']}/availability"
    too_long = await ex.get(url, params={"start": week[0], "end": at(monday + timedelta(93), 0)})
    assert invalid_fields(problem(too_long, 422)) == {"query.end"}
    backwards = await ex.get(url, params={"start": week[1], "end": week[0]})
    assert invalid_fields(problem(backwards, 422)) == {"query.end"}
    naive = await ex.get(url, params={"start": f"{monday}T09:00:00", "end": week[1]})
    assert "query.start" in invalid_fields(problem(naive, 422))
    assert problem(
        await ex.get(
            f"/offers/{uuid.uuid4()}/availability", params=dict(start=week[0], end=week[1])
        ),
        404,
    )


async def test_a_staff_time_week_without_hours_left_has_no_free_period(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(
        provider,
        kind="staff_time",
        title="Comptable à temps partagé",
        unit="hour",
        capacity=2,
        internal_price="30.00",
        reference_value="45.00",
        valuation_basis="cost_price",
        attributes={**STAFF_ATTRIBUTES, "employer_member_id": str(provider.member_id)},
    )
    ex = market.on_exchange(requester)
    monday = next_monday()
    wednesday = monday + timedelta(days=2)
    week = (at(monday, 0), at(monday + timedelta(days=7), 0))
    await book(ex, offer["id"], at(monday, 9), at(monday, 12))
    await book(ex, offer["id"], at(monday, 13), at(monday, 16))
    body = await free_of(ex, offer["id"], *week)
    assert body["weekly_hours_left"] == [{"week_start": monday.isoformat(), "hours_left": 1.0}]
    assert slot(wednesday, 9, (12, 30), 2) in periods(body)

    search = {"kind": "staff_time", "start": at(wednesday, 9), "end": at(wednesday, 10)}
    assert [o["id"] for o in (await ex.get("/availability", params=search)).json()["items"]] == [
        offer["id"]
    ]
    longer = {**search, "end": at(wednesday, 11)}
    assert (await ex.get("/availability", params=longer)).json()["items"] == []

    await book(ex, offer["id"], at(wednesday, 9), at(wednesday, 10))
    full = await free_of(ex, offer["id"], *week)
    assert full["weekly_hours_left"][0]["hours_left"] == 0
    assert full["free"] == []
    assert (await ex.get("/availability", params=search)).json()["items"] == []


async def test_the_kind_search_finds_what_a_request_would_get(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    other = await market.catalog.new_member(coordinator)
    monday = next_monday()
    ask = {"kind": "premises", "start": at(monday, 10), "end": at(monday, 12)}
    closure = {"start_date": monday.isoformat(), "end_date": monday.isoformat(), "reason": "x"}

    free_a = await market.published(provider, title="Salle A libre")
    free_b = await market.published(
        provider, title="Salle B libre", commune="Amboise", insee_code="37003"
    )
    booked = await market.published(provider, title="Salle C réservée")
    await book(market.on_exchange(other), booked["id"], at(monday, 11), at(monday, 13))
    await market.published(
        provider, title="Salle D fermée", availability={**AVAILABILITY, "closures": [closure]}
    )
    next_door = await market.published(provider, title="Salle E réservée à côté")
    await book(market.on_exchange(other), next_door["id"], at(monday, 12), at(monday, 14))
    await market.published(requester, title="Salle F du demandeur")
    paused = await market.published(provider, title="Salle G en pause")
    paused_version = (await provider.post(f"/offers/{paused['id']}/pause")).json()["version"]
    await market.copied(paused["id"], paused_version)

    ex = market.on_exchange(requester)

    async def titles(**params: Any) -> list[str]:
        answer = await ex.get("/availability", params={**ask, **params})
        assert answer.status_code == 200, answer.text
        return [o["title"] for o in answer.json()["items"]]

    assert await titles() == ["Salle A libre", "Salle B libre", "Salle E réservée à côté"]
    first = (await ex.get("/availability", params={**ask, "limit": 2})).json()
    assert [o["id"] for o in first["items"]] == [free_a["id"], free_b["id"]]
    assert first["items"][0]["remaining"] == 1
    rest = (
        await ex.get("/availability", params={**ask, "limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert ([o["id"] for o in rest["items"]], rest["next_cursor"]) == ([next_door["id"]], None)
    assert await titles(commune="amboise") == ["Salle B libre"]
    assert await titles(insee_code="37261") == ["Salle A libre", "Salle E réservée à côté"]
    assert await titles(kind="equipment") == []
    # Outside the opening hours, nothing is free.
    assert await titles(start=at(monday, 7), end=at(monday, 10)) == []
    assert problem(await ex.get("/availability", params={**ask, "kind": "service"}), 422)
    assert problem(await ex.get("/availability", params={**ask, "limit": 101}), 422)

    # What the search found can be requested; then it is no longer free.
    await book(ex, free_a["id"], ask["start"], ask["end"])
    assert await titles() == ["Salle B libre", "Salle E réservée à côté"]


async def test_another_pole_sees_nothing_and_a_token_is_required(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, title="Salle de la Coopérative")
    outsider = await market.catalog.new_pole("Pôle B")
    outsider_offer = await market.published(outsider, title="Salle du pôle B")
    monday = next_monday()
    week = {"start": at(monday, 0), "end": at(monday + timedelta(days=7), 0)}
    ask = {"kind": "premises", "start": at(monday, 10), "end": at(monday, 12)}

    foreign = market.on_exchange(outsider)
    assert problem(await foreign.get(f"/offers/{offer['id']}/availability", params=week), 404)
    assert (await foreign.get("/availability", params=ask)).json()["items"] == []
    mine = market.on_exchange(requester)
    assert problem(await mine.get(f"/offers/{outsider_offer['id']}/availability", params=week), 404)
    found = (await mine.get("/availability", params=ask)).json()["items"]
    assert [o["id"] for o in found] == [offer["id"]]

    anonymous: httpx.AsyncClient = market.exchange
    assert problem(await anonymous.get(f"/offers/{offer['id']}/availability", params=week), 401)
    assert problem(await anonymous.get("/availability", params=ask), 401)
    # Even a malformed query is refused for want of a token first.
    assert problem(await anonymous.get("/availability"), 401)
    assert problem(await anonymous.get(f"/offers/{offer['id']}/availability"), 401)
