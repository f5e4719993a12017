"""Hostile input (issue 6): the limits, enforced once in ``shared`` for the three services.

Body size (413, with or without ``Content-Length``), page sizes, string lengths, date ranges
and recurrence counts (422), and throttling (429 for one caller while the others are served).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ptce.testing.api import (
    AVAILABILITY,
    Caller,
    CatalogApi,
    invalid_fields,
    member_body,
    problem,
    room,
)
from ptce.testing.exchange import Market, at, market_api, next_monday, parties
from ptce.testing.ledger import Books
from ptce.testing.plugin import SettingsFactory
from shared.http import create_app
from shared.limits import RateLimiter
from shared.settings import KernelSettings, ServiceSettings

LOW_RATE = {"http_rate_limit_per_second": 0.5, "http_rate_limit_burst": 10}
"""A token every two seconds, ten at once: a flood is refused within a few requests, and a
refill cannot come between two consecutive requests of a test."""


def _cursor(sort_value: Any) -> str:
    """A cursor shaped like the API's, with a sort value it never gives."""
    raw = json.dumps([sort_value, str(uuid.uuid4())]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def _two_pages(caller: Caller, url: str) -> None:
    """``url`` lists two items or more: its first page of one, then the next, by its cursor."""
    first = await caller.get(url, params={"limit": 1})
    assert first.status_code == 200, first.text
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    second = await caller.get(url, params={"limit": 1, "cursor": cursor})
    assert second.status_code == 200, second.text
    assert second.json()["items"] != first.json()["items"]


async def _refused(caller: Caller, method: str, url: str, name: str, **kwargs: Any) -> None:
    """``method url`` gets 422 problem details naming ``name``."""
    body = problem(await caller.request(method, url, **kwargs), 422)
    assert name in invalid_fields(body), (method, url, body)


@asynccontextmanager
async def _served(
    app: FastAPI, *clients: tuple[str, int]
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """The app started, and an HTTP client on it from each client address."""
    async with app.router.lifespan_context(app):
        https = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=client), base_url="http://test"
            )
            for client in clients
        ]
        try:
            yield https
        finally:
            for http in https:
                await http.aclose()


def _app(service: str, settings: ServiceSettings, **update: Any) -> FastAPI:
    definition = importlib.import_module(f"{service}.service").DEFINITION
    changed = settings.model_copy(update={"run_workers": False, **update})
    return create_app(definition, lambda: changed)


# --- body size -------------------------------------------------------------------------------


def test_the_default_limits_never_get_in_the_way_of_normal_use() -> None:
    defaults = KernelSettings.model_fields
    assert defaults["http_max_body_bytes"].default == 1024 * 1024
    assert defaults["http_rate_limit_per_second"].default == 100
    assert defaults["http_rate_limit_burst"].default == 1000


@pytest.mark.parametrize(
    ("service", "url"),
    [("catalog", "/offers"), ("exchange", "/requests"), ("ledger", "/postings")],
)
async def test_a_body_over_the_limit_gets_413_with_or_without_its_length(
    service: str, url: str, service_settings: SettingsFactory
) -> None:
    limit = 4096
    app = _app(service, await service_settings(service), http_max_body_bytes=limit)
    json_type = {"Content-Type": "application/json"}
    pulled = 0

    async def chunks(size: int, count: int | None = None) -> AsyncIterator[bytes]:
        """``count`` chunks of ``size`` bytes, or without end: JSON, ``{}`` then blanks."""
        nonlocal pulled
        sent = 0
        while count is None or sent < count:
            pulled += 1
            sent += 1
            yield b"{}" + b" " * (size - 2) if sent == 1 else b" " * size

    async with _served(app, ("127.0.0.1", 50000)) as (http,):
        declared = await http.post(url, content=b" " * (limit + 1), headers=json_type)
        body = problem(declared, 413)
        assert body["type"].endswith("/body-too-large")
        assert body["max_body_bytes"] == limit
        assert body["request_id"] == declared.headers["x-request-id"]

        # A declared length over the limit: refused before a byte of the body is read.
        lying = await http.post(
            url, content=chunks(1000), headers={**json_type, "Content-Length": str(limit + 1)}
        )
        problem(lying, 413)
        assert pulled == 0

        # No length (chunked), without end: refused as soon as it goes past the limit.
        streamed = await http.post(url, content=chunks(1000), headers=json_type)
        assert "content-length" not in streamed.request.headers
        assert problem(streamed, 413)["type"].endswith("/body-too-large")
        assert pulled == limit // 1000 + 1

        # At the limit, either way, the body goes through (and the caller has no token).
        at_limit = b"{}" + b" " * (limit - 2)
        assert (await http.post(url, content=at_limit, headers=json_type)).status_code == 401
        streamed_at_limit = await http.post(url, content=chunks(1024, 4), headers=json_type)
        assert streamed_at_limit.status_code == 401


# --- bounded input: 422 ----------------------------------------------------------------------


async def test_the_catalog_bounds_page_sizes_strings_numbers_and_dates(
    catalog: CatalogApi,
) -> None:
    coordinator = await catalog.new_pole()
    too_long = "x" * 201
    await _refused(coordinator, "GET", "/members", "query.limit", params={"limit": 201})
    await _refused(coordinator, "GET", "/members", "query.cursor", params={"cursor": "x" * 501})
    await _refused(coordinator, "GET", "/offers", "query.limit", params={"limit": 0})
    await _refused(coordinator, "GET", "/offers", "query.q", params={"q": too_long})
    await _refused(
        coordinator, "GET", "/offers", "query.min_capacity", params={"min_capacity": 10**20}
    )
    await _refused(coordinator, "GET", "/offers", "query.max_price", params={"max_price": "1e400"})
    await _refused(coordinator, "POST", "/offers", "body.title", json=room(title=too_long))
    amenities = {"surface_m2": 35, "seats": 12, "accessible": True, "amenities": ["x"] * 51}
    await _refused(
        coordinator, "POST", "/offers", "body.attributes.amenities", json=room(attributes=amenities)
    )
    closures = [{"start_date": "1999-12-31", "end_date": "2000-01-02"}]
    await _refused(
        coordinator,
        "POST",
        "/offers",
        "body.availability.closures.0.start_date",
        json=room(availability={**AVAILABILITY, "closures": closures}),
    )
    await _refused(
        coordinator, "POST", "/members", "body.joined_on", json=member_body(joined_on="3000-01-01")
    )
    await _refused(
        coordinator, "POST", "/members", "body.legal_name", json=member_body(legal_name="x" * 301)
    )
    await _refused(coordinator, "GET", "/pole/references", "query.on", params={"on": "1999-12-31"})
    await _refused(coordinator, "DELETE", f"/clients/{'x' * 101}", "path.client_id")


async def test_the_exchange_bounds_pages_strings_periods_and_series(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    ex = market.on_exchange(requester)
    day = next_monday()
    ask = {"offer_id": offer["id"], "start": at(day, 10), "end": at(day, 12)}
    week = {"start": at(day, 0), "end": at(day + timedelta(days=7), 0)}
    # Cursors the API gave still lead to the next page; forged ones are 422, never a 500.
    for made in (ask, {**ask, "start": at(day, 14), "end": at(day, 16)}):
        assert (await ex.post("/requests", json=made)).status_code == 201
    for label in ("Agenda", "Salle"):
        assert (await ex.post("/calendar-feeds", json={"label": label})).status_code == 201
    await _two_pages(ex, "/requests")
    await _two_pages(ex, "/calendar-feeds")

    await _refused(ex, "GET", "/requests", "query.limit", params={"limit": 201})
    await _refused(ex, "GET", "/requests", "query.cursor", params={"cursor": _cursor("not a date")})
    await _refused(
        ex, "GET", "/calendar-feeds", "query.cursor", params={"cursor": _cursor({"a": 1})}
    )
    await _refused(
        ex, "GET", "/availability", "query.limit", params={"kind": "premises", **week, "limit": 101}
    )
    # Date ranges: at most 92 days of availability, instants within the years 2000-2999.
    availability = f"/offers/{offer['id']}/availability"
    long_range = {"start": at(day, 0), "end": at(day + timedelta(days=93), 0)}
    await _refused(ex, "GET", availability, "query.end", params=long_range)
    await _refused(
        ex,
        "GET",
        availability,
        "query.start",
        params={"start": "1999-12-30T00:00:00+00:00", "end": "2000-01-02T00:00:00+00:00"},
    )
    await _refused(
        ex,
        "GET",
        "/availability",
        "query.start",
        params={"kind": "premises", "start": "9999-12-20T00:00Z", "end": "9999-12-30T00:00Z"},
    )
    # Strings, and a request's period: at most 366 days, before the year 3000.
    await _refused(ex, "POST", "/requests", "body.message", json={**ask, "message": "x" * 2001})
    a_year_and_more = {**ask, "end": at(day + timedelta(days=367), 12)}
    await _refused(ex, "POST", "/requests", "body", json=a_year_and_more)
    far = {**ask, "start": "3000-01-06T10:00:00+01:00", "end": "3000-01-06T12:00:00+01:00"}
    await _refused(ex, "POST", "/requests", "body.start", json=far)
    # Recurrence: at most 52 weekly occurrences, the last one before the year 3000.
    series = {**ask, "weeks": 10}
    await _refused(ex, "POST", "/series", "body.weeks", json={**series, "weeks": 53})
    late = {**series, "start": "2999-11-04T10:00:00+01:00", "end": "2999-11-04T12:00:00+01:00"}
    await _refused(ex, "POST", "/series", "body", json=late)
    await _refused(
        ex, "POST", "/calendar-feeds", "body.label", json={"label": "x" * 201, "offer_id": None}
    )
    feed = await market.exchange.get(f"/calendars/{'x' * 101}.ics")
    assert "path.token" in invalid_fields(problem(feed, 422))


async def test_the_ledger_bounds_pages_strings_periods_and_rules(books: Books) -> None:
    coordinator = await books.market.catalog.new_pole()
    await books.knows(coordinator)
    led = books.on_ledger(coordinator)
    entries = f"/books/{coordinator.member_id}/entries"
    posting = {"kind": "grant", "label": "Subvention", "amount": "100.00", "origin": "public"}
    for on in ("2026-03-01", "2026-03-02"):
        posted = await led.post("/postings", json={**posting, "on": on})
        assert posted.status_code == 201, posted.text
    await _two_pages(led, f"/books/{posted.json()['entries'][0]['book_id']}/entries")

    await _refused(led, "GET", entries, "query.limit", params={"limit": 201})
    await _refused(led, "GET", entries, "query.cursor", params={"cursor": _cursor("not a date")})
    await _refused(led, "GET", entries, "query.from", params={"from": "0001-01-01"})
    # Report periods: five years at most, within the years 2000-2999.
    await _refused(
        led, "GET", "/pole/activity", "query.to", params={"from": "2020-01-01", "to": "2025-01-02"}
    )
    await _refused(
        led,
        "GET",
        "/pole/activity",
        "query.from",
        params={"from": "9998-01-01", "to": "9999-01-01"},
    )
    await _refused(
        led,
        "POST",
        "/postings",
        "body.label",
        json={**posting, "on": "2026-03-01", "label": "x" * 301},
    )
    await _refused(led, "POST", "/postings", "body.on", json={**posting, "on": "1999-12-31"})
    brackets = [{"up_to": str(n + 1), "amount": "10"} for n in range(20)] + [{"amount": "10"}]
    await _refused(
        led,
        "PUT",
        "/dues-rules/2026",
        "body.brackets",
        json={"basis": "headcount", "brackets": brackets},
    )
    await _refused(
        led,
        "PUT",
        "/dues-rules/2026",
        "body.brackets.0.up_to",
        json={"basis": "turnover", "brackets": [{"up_to": "1e15", "amount": "1"}, {"amount": "2"}]},
    )
    await _refused(
        led, "GET", "/fec", "query.journals", params={"year": 2026, "journals": "X" * 101}
    )
    await _refused(led, "GET", "/fec", "query.year", params={"year": 3000})


# --- throttling: 429 -------------------------------------------------------------------------


def test_a_bucket_refills_at_its_rate_up_to_its_burst_and_callers_are_bounded() -> None:
    now = 0.0
    limiter = RateLimiter(2.0, 3, max_callers=2, clock=lambda: now)
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)  # a refused call takes nothing
    assert limiter.take("b") == 0  # another caller, its own bucket
    now += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") == pytest.approx(0.5)
    now += 3600  # idle for an hour: a full bucket, never more than the burst
    assert [limiter.take("a") for _ in range(4)][-1] == pytest.approx(0.5)
    limiter.take("c")
    assert len(limiter) == 2  # the least recently seen caller ("b") was dropped


async def test_one_member_flooding_gets_429_while_the_others_are_served(
    service_settings: SettingsFactory,
) -> None:
    async def settings(service: str) -> ServiceSettings:
        made = await service_settings(service)
        return made.model_copy(update=LOW_RATE) if service == "exchange" else made

    async with market_api(settings) as market:
        coordinator, flooder, other = await parties(market)
        # A second client of the flooding member: a member's clients share one bucket.
        flooder_again = await market.catalog.new_client(
            coordinator, flooder.member_id, role="member"
        )
        answers: list[httpx.Response] = []
        while len(answers) < 50 and (not answers or answers[-1].status_code != 429):
            answers.append(await market.on_exchange(flooder).get("/requests"))
        statuses = [answer.status_code for answer in answers]
        assert statuses[-1] == 429, statuses
        assert statuses.count(200) >= LOW_RATE["http_rate_limit_burst"]
        refused = problem(answers[-1], 429)
        assert refused["type"].endswith("/too-many-requests")
        retry_after = int(answers[-1].headers["retry-after"])
        assert 1 <= retry_after <= 2
        problem(await market.on_exchange(flooder_again).get("/requests"), 429)

        # The others, of the same pole, are served as before.
        assert (await market.on_exchange(other).get("/requests")).status_code == 200
        assert (await market.on_exchange(coordinator).get("/requests")).status_code == 200
        for _ in range(15):  # health and readiness are never throttled
            assert (await market.exchange.get("/healthz")).status_code == 200

        await asyncio.sleep(retry_after)
        assert (await market.on_exchange(flooder).get("/requests")).status_code == 200


async def test_calls_without_a_valid_token_are_counted_per_client_address(
    service_settings: SettingsFactory,
) -> None:
    app = _app("catalog", await service_settings("catalog"), **LOW_RATE)
    addresses = [
        ("192.0.2.10", 40000),
        ("198.51.100.7", 40000),
        ("2001:db8:1:2::10", 40000),
        ("2001:db8:1:2::99", 40001),  # the same /64
        ("2001:db8:1:3::1", 40000),
    ]
    async with _served(app, *addresses) as (here, there, v6, v6_same_net, v6_elsewhere):
        keys = "/.well-known/jwks.json"
        for flooding in (here, v6):
            statuses = [(await flooding.get(keys)).status_code for _ in range(12)]
            assert statuses[:10] == [200] * 10
            assert statuses[-1] == 429, statuses
        assert (await there.get(keys)).status_code == 200
        assert (await v6_elsewhere.get(keys)).status_code == 200
        problem(await v6_same_net.get(keys), 429)
        # A token that does not verify counts for the address it comes from.
        forged = {"Authorization": "Bearer not.a.token"}
        problem(await here.get("/pole", headers=forged), 429)
        assert (await there.get("/pole", headers=forged)).status_code == 401
        assert (await here.get("/healthz")).status_code == 200
        assert (await here.get("/readyz")).status_code == 200

    # A member has its own bucket, whatever its address's.
    async with _served(app, ("192.0.2.10", 40000)) as (http,):
        catalog = CatalogApi(http=http, runtime=app.state.runtime)
        coordinator = await catalog.new_pole()  # its token request: the address's bucket
        while (await http.get(keys)).status_code != 429:
            pass
        statuses = [(await coordinator.get("/pole")).status_code for _ in range(12)]
        assert statuses[:10] == [200] * 10
        assert statuses[-1] == 429
