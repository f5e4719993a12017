"""Mass assignment: fields a caller must not set (ids, pole, owner, state, version, frozen terms,
what the server records) are refused with 422 on every write of the three services, naming the
field, and the refused call changes nothing; the same body without them succeeds.

The contract (docs/auth.md, decision 19): every JSON request body, and every object inside one,
refuses the fields it does not declare (``extra="forbid"``). A test reads it off the OpenAPI
documents, a table sends the forbidden fields to every write, and a test checks the table
covers every write. Two kinds of write read no JSON body: the token endpoint (a form, whose
unknown parameters OAuth 2 requires to be ignored) and the operations that take no body at all
(publish, revoke, post the dues…), which never read one: what is sent there is ignored.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest

from ptce.testing.api import (
    AVAILABILITY,
    Caller,
    get_token,
    invalid_fields,
    member_body,
    operations,
    problem,
    room,
    staff_time,
    valid_siret,
)
from ptce.testing.exchange import Bookings
from ptce.testing.ledger import Books

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
EVERY_WEEK = {**AVAILABILITY, "closures": []}
GRANT = {"kind": "grant", "on": "2026-03-01", "label": "Aide", "amount": "10", "origin": "public"}
RULE = {"basis": "flat", "brackets": [{"amount": "20"}]}
TERMS = {"unit_price": "0.00", "currency": "EUR", "quantity": "1"}
WHEN = "2020-01-01T00:00:00+00:00"


@dataclass
class Cast(Bookings):
    books: Books
    callers: dict[str, Caller]
    other_offer: dict[str, Any]

    def caller(self, role: str, service: str) -> Caller:
        http = {
            "catalog": self.books.market.catalog.http,
            "exchange": self.books.market.exchange,
            "ledger": self.books.http,
        }[service]
        return dataclasses.replace(self.callers[role], http=http)

    def id_of(self, role: str) -> str:
        return str(self.callers[role].member_id)


@pytest.fixture(scope="module")
async def cast(module_books: Books) -> Cast:
    """A pole (coordinator, provider, requester) and another pole (coordinator, member)."""
    books = module_books
    catalog = books.market.catalog
    coordinator = await catalog.new_pole("Pôle A")
    provider = await catalog.new_member(coordinator)
    requester = await catalog.new_member(coordinator)
    other_coordinator = await catalog.new_pole("Pôle B")
    other_member = await catalog.new_member(other_coordinator)
    await books.knows(coordinator, provider, requester, other_coordinator, other_member)
    market = books.market
    approval = await market.published(provider, capacity=50, availability=EVERY_WEEK)
    instant = await market.published(
        provider, capacity=50, availability=EVERY_WEEK, booking_mode="instant", title="Salle B"
    )
    theirs = await market.published(other_member, availability=EVERY_WEEK, title="Leur salle")
    callers = {
        "coordinator": coordinator,
        "provider": provider,
        "requester": requester,
        "other_coordinator": other_coordinator,
        "other_member": other_member,
    }
    return Cast(
        market, provider, requester, approval, instant, itertools.count(), books, callers, theirs
    )


# --- what each write acts on ---------------------------------------------------------------

Prepare = Callable[[Cast], Awaitable[dict[str, str]]]


async def nothing(_cast: Cast) -> dict[str, str]:
    return {}


async def own_member(cast: Cast) -> dict[str, str]:
    return {"member_id": cast.id_of("provider")}


async def fresh_member(cast: Cast) -> dict[str, str]:
    created = await cast.caller("coordinator", "catalog").post("/members", json=member_body())
    assert created.status_code == 201, created.text
    return {"member_id": created.json()["id"]}


async def published_offer(cast: Cast) -> dict[str, str]:
    owner = cast.caller("provider", "catalog")
    created = await owner.post("/offers", json=room())
    assert created.status_code == 201, created.text
    offer_id = created.json()["id"]
    done = await owner.post(f"/offers/{offer_id}/publish")
    assert done.status_code == 200, done.text
    return {"offer_id": offer_id, "etag": done.headers["etag"]}


pending = Bookings.pending
accepted = Bookings.accepted
started = Bookings.started
completed = Bookings.completed
series = Bookings.series


_years = itertools.count(2030)


def new_reference(_cast: Cast) -> dict[str, Any]:
    return {
        "code": "volunteer_hour",
        "label": "Heure de bénévolat",
        "amount": "17.50",
        "unit": "hour",
        "valid_from": f"{next(_years)}-01-01",
    }


async def year_2026(_cast: Cast) -> dict[str, str]:
    return {"year": "2026"}


def new_request(cast: Cast) -> dict[str, Any]:
    start, end = cast.next_slot()
    return {"offer_id": cast.approval_offer["id"], "start": start, "end": end}


# --- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    service: str
    method: str
    path: str
    by: str
    """The role that may make it."""
    body: Callable[[Cast], dict[str, Any]]
    forbidden: Callable[[Cast], dict[str, Any]]
    """Fields to try on top of COMMON, with values someone might hope for."""
    prepare: Prepare = nothing
    expected: int = 200
    nested: tuple[str, ...] = ()
    """Objects inside the body (dotted paths) that refuse unknown fields too."""
    read: str | None = None
    """What must not change when the write is refused (a URL, with the prepared ids)."""


def common(cast: Cast) -> dict[str, Any]:
    """Set by the server on every resource: never by a caller."""
    return {
        "id": str(uuid.uuid4()),
        "pole_id": str(cast.callers["other_coordinator"].pole_id),
        "version": 99,
        "state": "archived",
        "created_at": WHEN,
    }


WRITES = [
    # catalog
    Write(
        "catalog",
        "PATCH",
        "/pole",
        "coordinator",
        body=lambda _: {"territory": "Touraine", "exchange_rules": {"answer_within_hours": 48}},
        forbidden=lambda _: {"currency": "CHF"},
        nested=("exchange_rules",),
        read="/pole",
    ),
    Write(
        "catalog",
        "POST",
        "/pole/references",
        "coordinator",
        body=new_reference,
        forbidden=lambda _: {"recorded_at": WHEN, "currency": "CHF"},
        expected=201,
        read="/pole/references",
    ),
    Write(
        "catalog",
        "POST",
        "/members",
        "coordinator",
        body=lambda _: member_body(),
        forbidden=lambda _: {"left_on": "2025-06-30", "updated_at": WHEN},
        expected=201,
        read="/members?include_left=true&limit=200",
    ),
    Write(
        "catalog",
        "PATCH",
        "/members/{member_id}",
        "provider",
        body=lambda _: {"headcount": 20},
        forbidden=lambda cast: {
            "siret": valid_siret(),
            "joined_on": "2020-01-01",
            "left_on": "2026-01-01",
            "member_id": cast.id_of("requester"),
        },
        prepare=own_member,
        read="/members/{member_id}",
    ),
    Write(
        "catalog",
        "POST",
        "/members/{member_id}/leave",
        "coordinator",
        body=lambda _: {"left_on": "2030-01-01"},
        forbidden=lambda cast: {"member_id": cast.id_of("requester"), "joined_on": "2020-01-01"},
        prepare=fresh_member,
        read="/members/{member_id}",
    ),
    Write(
        "catalog",
        "POST",
        "/members/{member_id}/clients",
        "provider",
        body=lambda _: {"label": "Intégration"},
        forbidden=lambda cast: {
            "member_id": cast.id_of("requester"),
            "client_id": "cli_chosen",
            "client_secret": "chosen-secret",
            "secret_hash": "0" * 64,
            "revoked_at": None,
        },
        prepare=own_member,
        expected=201,
        read="/members/{member_id}/clients",
    ),
    Write(
        "catalog",
        "POST",
        "/offers",
        "provider",
        body=lambda _: room(),
        forbidden=lambda _: {"published_at": WHEN, "search": "x", "updated_at": WHEN},
        expected=201,
        nested=("availability", "availability.weekly_hours.0", "attributes"),
        read="/members/{member_id}/offers",
        prepare=own_member,
    ),
    Write(
        "catalog",
        "PATCH",
        "/offers/{offer_id}",
        "provider",
        body=lambda _: {
            "capacity": 2,
            "availability": EVERY_WEEK,
            "attributes": room()["attributes"],
        },
        forbidden=lambda cast: {
            "owner_id": cast.id_of("requester"),
            "kind": "equipment",
            "published_at": WHEN,
        },
        prepare=published_offer,
        nested=("availability", "availability.weekly_hours.0", "attributes"),
        read="/offers/{offer_id}",
    ),
    # exchange
    Write(
        "exchange",
        "POST",
        "/requests",
        "requester",
        body=new_request,
        forbidden=lambda cast: {
            "requester_id": cast.id_of("other_member"),
            "provider_id": cast.id_of("requester"),
            "terms": TERMS,
            "late": False,
            "quantity_used": "0",
            "series_id": str(uuid.uuid4()),
            "answer_by": "2999-01-01T00:00:00+00:00",
        },
        expected=201,
        read="/requests?limit=200",
    ),
    Write(
        "exchange",
        "POST",
        "/series",
        "requester",
        body=lambda cast: {**new_request(cast), "weeks": 2},
        forbidden=lambda cast: {
            "series_id": str(uuid.uuid4()),
            "requester_id": cast.id_of("other_member"),
            "terms": TERMS,
        },
        expected=201,
        read="/requests?limit=200",
    ),
    *[
        Write(
            "exchange",
            "POST",
            f"/requests/{{request_id}}/{action}",
            by,
            body=body,
            forbidden=lambda cast: {
                "terms": TERMS,
                "late": False,
                "provider_id": cast.id_of("requester"),
                "requester_id": cast.id_of("provider"),
                "objection": None,
            },
            prepare=prepare,
            read="/requests/{request_id}",
        )
        for action, by, prepare, body in [
            ("accept", "provider", pending, lambda _: {}),
            ("decline", "provider", pending, lambda _: {"reason": "Complet"}),
            ("withdraw", "requester", pending, lambda _: {}),
            ("cancel", "requester", accepted, lambda _: {"reason": "Empêché"}),
            ("complete", "provider", started, lambda _: {"quantity_used": "0.5"}),
            ("no-show", "provider", started, lambda _: {}),
            ("object", "requester", started, lambda _: {"reason": "Pas encore fait"}),
            (
                "correct",
                "provider",
                completed,
                lambda _: {"quantity_used": "0.25", "reason": "Un quart"},
            ),
        ]
    ],
    Write(
        "exchange",
        "POST",
        "/series/{series_id}/cancel",
        "requester",
        body=lambda _: {"reason": "Fin du cycle"},
        forbidden=lambda _: {"series_id": str(uuid.uuid4()), "late": False},
        prepare=series,
        read="/series/{series_id}",
    ),
    Write(
        "exchange",
        "POST",
        "/calendar-feeds",
        "provider",
        body=lambda cast: {"offer_id": cast.instant_offer["id"], "label": "Salle B"},
        forbidden=lambda cast: {
            "member_id": cast.id_of("requester"),
            "token": "chosen-token",
            "token_hash": "0" * 64,
            "url": "/calendars/chosen-token.ics",
            "revoked_at": None,
        },
        expected=201,
        read="/calendar-feeds",
    ),
    # ledger
    Write(
        "ledger",
        "POST",
        "/postings",
        "coordinator",
        body=lambda cast: {**GRANT, "member_id": cast.id_of("provider")},
        forbidden=lambda cast: {
            "book_id": cast.id_of("other_member"),
            "source": "exchange:chosen",
            "journal": "AC",
            "number": 1,
            "currency": "CHF",
            "entry_date": "2020-01-01",
            "lines": [],
            "hash": "0" * 64,
        },
        expected=201,
        read="/books/{member_id}/entries",
        prepare=own_member,
    ),
    Write(
        "ledger",
        "PUT",
        "/dues-rules/{year}",
        "coordinator",
        body=lambda _: RULE,
        forbidden=lambda _: {"year": 2027, "changed_at": WHEN},
        prepare=year_2026,
        nested=("brackets.0",),
        read="/dues-rules/{year}",
    ),
]


def _with(body: dict[str, Any], where: str, name: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with ``name`` set in the object at dotted path ``where``."""
    copy: dict[str, Any] = _deep(body)
    target: Any = copy
    for part in where.split("."):
        target = target[int(part)] if isinstance(target, list) else target[part]
    target[name] = value
    return copy


def _deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _deep(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep(item) for item in value]
    return value


@pytest.mark.parametrize(
    "write", WRITES, ids=lambda write: f"{write.service} {write.method} {write.path}"
)
async def test_fields_a_caller_must_not_set_are_refused(cast: Cast, write: Write) -> None:
    ids = await write.prepare(cast)
    caller = cast.caller(write.by, write.service)
    url = write.path.format(**ids)
    headers = {"If-Match": ids["etag"]} if "etag" in ids else {}
    body = write.body(cast)
    forbidden = {**common(cast), **write.forbidden(cast)}
    assert not set(forbidden) & set(body), "a forbidden field is part of the legitimate body"

    async def read() -> tuple[int, Any]:
        if write.read is None:
            return 0, None
        answer = await caller.get(write.read.format(**{"member_id": caller.member_id, **ids}))
        seen: dict[str, Any] | list[Any] = answer.json()
        if isinstance(seen, dict):
            seen.pop("request_id", None)  # a problem's: every answer has its own
        return answer.status_code, seen

    if write.service == "ledger":
        await cast.books.quiet()  # the ledger posts earlier tests' exchanges in the background
    before = await read()
    attempts = [(name, value, "") for name, value in forbidden.items()]
    hostile_value = str(cast.callers["other_coordinator"].pole_id)
    attempts += [("pole_id", hostile_value, where) for where in write.nested]
    for name, value, where in attempts:
        sent = _with(body, where, name, value) if where else {**body, name: value}
        answer = await caller.request(write.method, url, json=sent, headers=headers)
        field = ".".join(["body", *([where] if where else []), name])
        assert field in invalid_fields(problem(answer, 422)), (field, answer.text)
    assert await read() == before, "a refused write changed something"

    done = await caller.request(write.method, url, json=body, headers=headers)
    assert done.status_code == write.expected, done.text


# Operations that read no body: what is sent with them is ignored (checked below).
BODILESS = {
    ("catalog", "DELETE", "/clients/{client_id}"),
    ("catalog", "POST", "/offers/{offer_id}/publish"),
    ("catalog", "POST", "/offers/{offer_id}/pause"),
    ("catalog", "POST", "/offers/{offer_id}/archive"),
    ("exchange", "DELETE", "/calendar-feeds/{feed_id}"),
    ("ledger", "POST", "/dues/{year}"),
}
FORM = {("catalog", "POST", "/oauth/token")}


def services(books: Books) -> dict[str, httpx.AsyncClient]:
    return {
        "catalog": books.market.catalog.http,
        "exchange": books.market.exchange,
        "ledger": books.http,
    }


async def test_the_table_covers_every_write(cast: Cast) -> None:
    with_json: set[tuple[str, str, str]] = set()
    without: set[tuple[str, str, str]] = set()
    for service, http in services(cast.books).items():
        for (method, path), operation in (await operations(http)).items():
            if method not in WRITE_METHODS:
                continue
            content = operation.get("requestBody", {}).get("content", {})
            (with_json if "application/json" in content else without).add((service, method, path))
    assert with_json == {(write.service, write.method, write.path) for write in WRITES}
    assert without == BODILESS | FORM


def _open_objects(schema: dict[str, Any], components: dict[str, Any], where: str) -> set[str]:
    """Where, in a request body's schema, an object accepts fields it does not declare."""
    found: set[str] = set()
    if "$ref" in schema:
        return _open_objects(components[schema["$ref"].rsplit("/", 1)[1]], components, where)
    if schema.get("type") == "object" and schema.get("additionalProperties", True) is not False:
        found.add(where)
    for name, sub in schema.get("properties", {}).items():
        found |= _open_objects(sub, components, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        found |= _open_objects(schema["items"], components, f"{where}.0")
    for alternatives in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(alternatives, []):
            found |= _open_objects(sub, components, where)
    return found


async def test_every_json_body_refuses_what_it_does_not_declare(cast: Cast) -> None:
    """Read off the OpenAPI documents: ``additionalProperties: false`` on every object of every
    JSON request body. An offer's ``attributes`` depend on its kind and are checked against
    the kind's model (which refuses unknown fields too: the table above sends one)."""
    found = set()
    for service, http in services(cast.books).items():
        document = (await http.get("/openapi.json")).json()
        components = document["components"]["schemas"]
        for (method, path), operation in (await operations(http)).items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                schema = content["application/json"]["schema"]
                found |= {
                    f"{service} {method} {path} {where}"
                    for where in _open_objects(schema, components, "body")
                }
    assert found == {
        "catalog POST /offers body.attributes",
        "catalog PATCH /offers/{offer_id} body.attributes",
    }


async def test_what_is_sent_where_no_body_is_read_is_ignored(cast: Cast) -> None:
    """Nothing of a body reaches these operations: the server alone decides the outcome."""
    hostile = {
        **common(cast),
        "owner_id": cast.id_of("requester"),
        "member_id": cast.id_of("other_member"),
        "amount": "1",
    }
    covered = set()

    # Offers' moves: the state is the move's, the owner and the pole stay.
    owner = cast.caller("provider", "catalog")
    for action, state in (("pause", "paused"), ("publish", "published"), ("archive", "archived")):
        ids = await published_offer(cast) if action != "publish" else await _draft(cast)
        moved = await owner.post(f"/offers/{ids['offer_id']}/{action}", json=hostile)
        assert moved.status_code == 200, moved.text
        assert moved.json()["state"] == state
        assert moved.json()["owner_id"] == cast.id_of("provider")
        assert moved.json()["pole_id"] == str(cast.callers["coordinator"].pole_id)
        assert moved.json()["version"] == int(ids["etag"].strip('"')) + 1
        covered.add(("catalog", "POST", f"/offers/{{offer_id}}/{action}"))

    # Revoking a client revokes the one in the path, not one the body names.
    spare = await owner.post(f"/members/{cast.id_of('provider')}/clients", json={"label": "x"})
    kept = await owner.post(f"/members/{cast.id_of('provider')}/clients", json={"label": "y"})
    revoked = await owner.request(
        "DELETE", f"/clients/{spare.json()['id']}", json={**hostile, "id": kept.json()["id"]}
    )
    assert revoked.status_code == 204
    still = await get_token(
        cast.books.market.catalog.http, kept.json()["id"], kept.json()["client_secret"]
    )
    assert still.status_code == 200
    covered.add(("catalog", "DELETE", "/clients/{client_id}"))

    # Revoking a feed: the same.
    provider = cast.caller("provider", "exchange")
    feeds = []
    for label in ("un", "deux"):
        made = await provider.post("/calendar-feeds", json={"offer_id": None, "label": label})
        assert made.status_code == 201, made.text
        feeds.append(made.json())
    gone = await provider.request(
        "DELETE", f"/calendar-feeds/{feeds[0]['id']}", json={**hostile, "id": feeds[1]["id"]}
    )
    assert gone.status_code == 204
    assert (await cast.books.market.exchange.get(feeds[1]["url"])).status_code == 200
    covered.add(("exchange", "DELETE", "/calendar-feeds/{feed_id}"))

    # The dues: the pole's rule and members, never another pole's nor an amount sent.
    ledger = cast.caller("coordinator", "ledger")
    assert (await ledger.put("/dues-rules/2027", json=RULE)).status_code == 200
    posted = await ledger.post("/dues/2027", json=hostile)
    assert posted.status_code == 200, posted.text
    assert {Decimal(row["amount"]) for row in posted.json()} == {Decimal(20)}
    assert cast.id_of("other_member") not in {row["member_id"] for row in posted.json()}
    theirs = await cast.caller("other_member", "ledger").get(
        f"/books/{cast.id_of('other_member')}/entries"
    )
    assert theirs.status_code == 200
    assert theirs.json()["items"] == []
    covered.add(("ledger", "POST", "/dues/{year}"))
    assert covered == BODILESS


async def _draft(cast: Cast) -> dict[str, str]:
    created = await cast.caller("provider", "catalog").post("/offers", json=room())
    assert created.status_code == 201, created.text
    return {"offer_id": created.json()["id"], "etag": created.headers["etag"]}


async def test_the_token_endpoint_ignores_what_it_does_not_know(cast: Cast) -> None:
    """A form may name a role, a pole or a member: the token says what the client is."""
    member = cast.callers["provider"]
    catalog = cast.books.market.catalog.http
    answer = await catalog.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": member.client_id,
            "client_secret": member.client_secret,
            "role": "coordinator",
            "pole": str(cast.callers["other_coordinator"].pole_id),
            "member": cast.id_of("other_member"),
            "sub": cast.callers["other_coordinator"].client_id,
            "scope": "admin",
            "aud": "another-service",
        },
    )
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert (claims["role"], claims["pole"], claims["member"], claims["sub"], claims["aud"]) == (
        "member",
        str(member.pole_id),
        str(member.member_id),
        member.client_id,
        "ptce",
    )


async def test_ids_of_another_pole_in_a_body_reach_nothing(cast: Cast) -> None:
    """The ids a body may carry (an owner, an employer, an offer, a member's book) are looked
    up in the caller's pole only: another pole's answer 404 (or 422 where the id is a field of
    the offer's description), and nothing of that pole changes."""
    other = cast.id_of("other_member")
    catalog = cast.caller("coordinator", "catalog")
    on_behalf = await catalog.post("/offers", json=room(owner_id=other))
    assert problem(on_behalf, 404)
    employer = await cast.caller("provider", "catalog").post(
        "/offers", json=staff_time(cast.callers["other_member"].member_id)
    )
    assert "body.attributes.employer_member_id" in invalid_fields(problem(employer, 422))

    requester = cast.caller("requester", "exchange")
    start, end = cast.next_slot()
    theirs = {"offer_id": cast.other_offer["id"], "start": start, "end": end}
    assert problem(await requester.post("/requests", json=theirs), 404)
    assert problem(await requester.post("/series", json={**theirs, "weeks": 2}), 404)
    feed = {"offer_id": cast.other_offer["id"], "label": "Leur salle"}
    assert problem(
        await cast.caller("coordinator", "exchange").post("/calendar-feeds", json=feed), 404
    )

    ledger = cast.caller("coordinator", "ledger")
    assert problem(await ledger.post("/postings", json={**GRANT, "member_id": other}), 404)
    assert problem(await ledger.post("/postings", json=_settlement(cast, to=other)), 404)

    their_offers = await cast.caller("other_member", "catalog").get(f"/members/{other}/offers")
    assert [offer["id"] for offer in their_offers.json()["items"]] == [cast.other_offer["id"]]
    their_requests = await cast.caller("other_member", "exchange").get("/requests")
    assert their_requests.json()["items"] == []
    their_book = await cast.caller("other_member", "ledger").get(f"/books/{other}/entries")
    assert their_book.json()["items"] == []


def _settlement(cast: Cast, *, to: str) -> dict[str, Any]:
    """The provider pays ``to`` back: a settlement posting."""
    return {
        "kind": "settlement",
        "on": "2026-03-01",
        "label": "Règlement",
        "amount": "10",
        "member_id": cast.id_of("provider"),
        "to_member_id": to,
    }


async def test_a_field_that_does_not_apply_is_refused_not_ignored(cast: Cast) -> None:
    """Declared fields that a kind of write does not use are refused too: a caller never
    believes it set what the server computes or ignores."""
    requester = cast.caller("requester", "exchange")
    cheap = {**new_request(cast), "quantity": "0.01"}  # a period's quantity is computed
    assert "body.quantity" in invalid_fields(
        problem(await requester.post("/requests", json=cheap), 422)
    )

    ledger = cast.caller("coordinator", "ledger")
    elsewhere = {**GRANT, "to_member_id": cast.id_of("requester")}
    assert problem(await ledger.post("/postings", json=elsewhere), 422)
    settle = _settlement(cast, to=cast.id_of("requester"))
    assert problem(await ledger.post("/postings", json={**settle, "origin": "public"}), 422)
    assert (await ledger.post("/postings", json=settle)).status_code == 201
