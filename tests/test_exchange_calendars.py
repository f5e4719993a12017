"""Calendar feeds of bookings (RFC 5545) at secret, revocable URLs, read by a real parser."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from icalendar import Calendar, Event
from sqlalchemy import text

from ptce.testing.api import Caller, problem
from ptce.testing.exchange import PARIS, Market, at, next_monday, parties


@pytest.fixture
def market(module_market: Market) -> Market:
    """One market for the module: each test keeps to poles of its own, which see nothing else."""
    return module_market


async def _book(market: Market, requester: Caller, offer: dict[str, Any], **period: str) -> str:
    asked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "message": "Pour notre AG", **period}
    )
    assert asked.status_code == 201, asked.text
    request_id: str = asked.json()["id"]
    return request_id


async def _move(market: Market, request_id: str, start: datetime, end: datetime) -> None:
    """Put a request's period anywhere (the API only books ahead, with notice)."""
    async with market.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE booking_request SET period = tstzrange(:start, :end, '[)') WHERE id = :id"
            ),
            {"start": start, "end": end, "id": uuid.UUID(request_id)},
        )


async def _new_feed(caller: Caller, market: Market, offer_id: str | None = None) -> dict[str, Any]:
    created = await market.on_exchange(caller).post(
        "/calendar-feeds", json={"offer_id": offer_id, "label": "Salle du rez-de-chaussée"}
    )
    assert created.status_code == 201, created.text
    feed: dict[str, Any] = created.json()
    return feed


async def _read(market: Market, feed: dict[str, Any]) -> tuple[httpx.Response, Calendar]:
    """Fetch a feed as a calendar client does: no Authorization header at all."""
    response = await market.exchange.get(feed["url"])
    assert response.status_code == 200, response.text
    assert "authorization" not in response.request.headers
    calendar = Calendar.from_ical(response.content)
    assert isinstance(calendar, Calendar)
    return response, calendar


def _events(calendar: Calendar) -> dict[str, Event]:
    return {str(event["UID"]): event for event in calendar.events}


def _local_start(event: Event) -> datetime:
    start = event.start
    assert isinstance(start, datetime)
    return start


def _uid(request_id: str) -> str:
    return f"{request_id}@ptce-exchange"


def next_dst_change(after: date) -> date:
    """The next day on which Paris changes its UTC offset (a Sunday of March or October)."""
    day = after
    while (
        datetime.combine(day, time(12), PARIS).utcoffset()
        == datetime.combine(day + timedelta(days=1), time(12), PARIS).utcoffset()
    ):
        day += timedelta(days=1)
    return day + timedelta(days=1)


async def test_a_feed_shows_the_offer_bookings_with_their_status(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    offer = await market.published(provider)
    other_offer = await market.published(provider, title="Camion frigorifique")
    day = next_monday()
    pending = await _book(market, requester, offer, start=at(day, 9), end=at(day, 11))
    accepted = await _book(market, requester, offer, start=at(day, 11), end=at(day, 13))
    cancelled = await _book(market, requester, offer, start=at(day, 14), end=at(day, 16))
    declined = await _book(market, requester, offer, start=at(day, 16), end=at(day, 17))
    long_ago = await _book(market, requester, offer, start=at(day, 17), end=at(day, 18))
    elsewhere = await _book(market, requester, other_offer, start=at(day, 9), end=at(day, 11))
    ex = market.on_exchange(provider)
    for request_id in (accepted, cancelled, long_ago):
        assert (await ex.post(f"/requests/{request_id}/accept")).status_code == 200
    await ex.post(f"/requests/{cancelled}/cancel", json={"reason": "Dégât des eaux"})
    await ex.post(f"/requests/{declined}/decline", json={"reason": "Fermé"})
    ended = datetime.now(PARIS) - timedelta(days=91)
    await _move(market, long_ago, ended - timedelta(hours=2), ended)

    feed = await _new_feed(provider, market, offer["id"])
    assert feed["offer_id"] == offer["id"]
    assert feed["url"].startswith("/calendars/")
    assert feed["url"].endswith(".ics")
    response, calendar = await _read(market, feed)
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["cache-control"] == "private, max-age=300"
    assert calendar["VERSION"] == "2.0"
    assert calendar["X-WR-CALNAME"] == "Salle du rez-de-chaussée"
    assert (calendar["CALSCALE"], calendar["METHOD"]) == ("GREGORIAN", "PUBLISH")
    assert "PRODID" in calendar
    events = _events(calendar)
    assert {uid: str(event["STATUS"]) for uid, event in events.items()} == {
        _uid(pending): "TENTATIVE",
        _uid(accepted): "CONFIRMED",
        _uid(cancelled): "CANCELLED",
    }
    confirmed = events[_uid(accepted)]
    assert confirmed["SUMMARY"] == f"{offer['title']} (accepted)"
    assert confirmed["SEQUENCE"] == 2
    assert confirmed.start == datetime.fromisoformat(at(day, 11))
    assert confirmed.end == datetime.fromisoformat(at(day, 13))
    assert confirmed["DESCRIPTION"] == "Pour notre AG"  # the provider is a party

    unchanged = await market.exchange.get(
        feed["url"], headers={"If-None-Match": response.headers["etag"]}
    )
    assert unchanged.status_code == 304

    # The coordinator's feed of the same offer: the same bookings, but nobody's message.
    _, seen_by_coordinator = await _read(market, await _new_feed(coordinator, market, offer["id"]))
    assert set(_events(seen_by_coordinator)) == set(events)
    assert all("DESCRIPTION" not in event for event in seen_by_coordinator.events)

    # The requester's own feed: every booking it is a party to, whatever the offer.
    _, requesters = await _read(market, await _new_feed(requester, market))
    assert set(_events(requesters)) == {*events, _uid(elsewhere)}
    bystander = await market.catalog.new_member(coordinator)
    _, bystanders = await _read(market, await _new_feed(bystander, market))
    assert bystanders.events == []


async def test_local_times_hold_across_a_daylight_saving_change(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    change = next_dst_change(datetime.now(PARIS).date())
    monday_before, monday_after = change - timedelta(days=6), change + timedelta(days=1)
    before = await _book(market, requester, offer, start=at(day, 9), end=at(day, 12))
    after = await _book(market, requester, offer, start=at(day, 14), end=at(day, 17))
    for request_id, monday in ((before, monday_before), (after, monday_after)):
        start = datetime.combine(monday, time(9), PARIS)
        await _move(market, request_id, start, start + timedelta(hours=3))

    response, calendar = await _read(market, await _new_feed(provider, market, offer["id"]))
    events = _events(calendar)
    starts = [_local_start(events[_uid(before)]), _local_start(events[_uid(after)])]
    assert [(s.date(), s.time()) for s in starts] == [
        (monday_before, time(9)),
        (monday_after, time(9)),
    ]
    assert {str(s.tzinfo) for s in starts} == {"Europe/Paris"}
    offsets = [s.utcoffset() for s in starts]
    assert offsets[0] != offsets[1]
    assert set(offsets) == {timedelta(hours=1), timedelta(hours=2)}
    for monday in (monday_before, monday_after):
        assert f"DTSTART;TZID=Europe/Paris:{monday:%Y%m%d}T090000" in response.text

    # The VTIMEZONE sent, on its own, gives the same offsets on both sides of the change.
    [vtimezone] = calendar.timezones
    assert vtimezone.tz_name == "Europe/Paris"
    sent_zone = vtimezone.to_tz(lookup_tzid=False)
    for monday, offset in zip((monday_before, monday_after), offsets, strict=True):
        assert datetime.combine(monday, time(9), sent_zone).utcoffset() == offset


async def test_a_feed_is_revoked_and_only_its_member_sees_it(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    auditor = await market.catalog.new_member(coordinator, role="auditor")
    outsider = await market.catalog.new_pole("Pôle B")
    offer = await market.published(provider)
    day = next_monday()
    await _book(market, requester, offer, start=at(day, 9), end=at(day, 11))

    # Another member's offer: seen, not its own (403); another pole's: not seen (404).
    for stranger, status in ((requester, 403), (outsider, 404)):
        refused = await market.on_exchange(stranger).post(
            "/calendar-feeds", json={"offer_id": offer["id"], "label": "Pas à moi"}
        )
        assert problem(refused, status)
    unknown = await market.on_exchange(provider).post(
        "/calendar-feeds", json={"offer_id": str(uuid.uuid4()), "label": "Nulle part"}
    )
    assert problem(unknown, 404)
    by_auditor = await market.on_exchange(auditor).post(
        "/calendar-feeds", json={"offer_id": None, "label": "Audit"}
    )
    assert problem(by_auditor, 403)
    assert problem(await market.exchange.get(f"/calendars/{uuid.uuid4().hex}.ics"), 404)

    feed = await _new_feed(provider, market, offer["id"])
    listed = (await market.on_exchange(provider).get("/calendar-feeds")).json()
    assert [item["id"] for item in listed["items"]] == [feed["id"]]
    assert set(listed["items"][0]) == {"id", "offer_id", "label", "created_at"}
    for stranger in (requester, outsider, coordinator):
        assert (await market.on_exchange(stranger).get("/calendar-feeds")).json()["items"] == []
    for stranger in (requester, outsider):
        revoking = await market.on_exchange(stranger).delete(f"/calendar-feeds/{feed['id']}")
        assert problem(revoking, 404)
    await _read(market, feed)

    revoked = await market.on_exchange(provider).delete(f"/calendar-feeds/{feed['id']}")
    assert revoked.status_code == 204
    assert problem(await market.exchange.get(feed["url"]), 404)
    assert (await market.on_exchange(provider).get("/calendar-feeds")).json()["items"] == []
    again = await market.on_exchange(provider).delete(f"/calendar-feeds/{feed['id']}")
    assert problem(again, 404)

    # The coordinator may revoke a member's feed of its pole.
    second = await _new_feed(provider, market)
    by_coordinator = await market.on_exchange(coordinator).delete(f"/calendar-feeds/{second['id']}")
    assert by_coordinator.status_code == 204
    assert problem(await market.exchange.get(second["url"]), 404)
