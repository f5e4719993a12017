"""Who may do what on every catalog endpoint: the member concerned (the owner), another member
of its pole (a neighbour), the coordinator, an auditor, and a member and a coordinator of
another pole. Callers without a valid token are refused everywhere: tests/test_authentication.py.

Each cell starts from a fresh target (a member, a client, an offer) when the action changes
it, so that one role's success never hides another's answer. A test checks that the table
covers every operation of the OpenAPI document, so that a new endpoint cannot be left out.
The rule (docs/auth.md): 404 for what the caller may not see — another pole's, or what is
private to another member of its own pole (a draft) —, 403 for what it sees but may not do.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ptce.testing.api import Caller, CatalogApi, member_body, room
from ptce.testing.exchange import Market
from shared.errors import PROBLEM_JSON

ROLES = ("owner", "neighbour", "coordinator", "auditor", "other_member", "other_coordinator")
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/oauth/token"),
    ("GET", "/.well-known/jwks.json"),
}


@dataclass
class Cast:
    catalog: CatalogApi
    callers: dict[str, Caller]
    counter: itertools.count[int]

    @property
    def owner(self) -> Caller:
        return self.callers["owner"]


async def new_cast(catalog: CatalogApi) -> Cast:
    coordinator = await catalog.new_pole("Pôle A")
    owner = await catalog.new_member(coordinator)
    neighbour = await catalog.new_member(coordinator)
    auditor = await catalog.new_client(coordinator, neighbour.member_id, role="auditor")
    other_coordinator = await catalog.new_pole("Pôle B")
    other_member = await catalog.new_member(other_coordinator)
    callers = {
        "owner": owner,
        "neighbour": neighbour,
        "coordinator": coordinator,
        "auditor": auditor,
        "other_member": other_member,
        "other_coordinator": other_coordinator,
    }
    return Cast(catalog, callers, itertools.count())


@pytest.fixture(scope="module")
async def cast(module_market: Market) -> Cast:
    """One cast for the whole table: each cell still acts on a fresh target when it changes it."""
    return await new_cast(module_market.catalog)


@pytest.fixture
async def fresh_cast(module_market: Market) -> Cast:
    """A cast of its own, for a test that reads whole lists."""
    return await new_cast(module_market.catalog)


@dataclass(frozen=True)
class Target:
    params: dict[str, str] = field(default_factory=dict)
    owner: Caller | None = None
    """The member concerned, when the cell made one (it then plays the owner)."""
    headers: dict[str, str] = field(default_factory=dict)


async def nothing(_cast: Cast) -> Target:
    return Target()


async def the_owner(cast: Cast) -> Target:
    return Target({"member_id": str(cast.owner.member_id)})


async def fresh_member(cast: Cast) -> Target:
    member = await cast.catalog.new_member(cast.callers["coordinator"])
    return Target({"member_id": str(member.member_id)}, owner=member)


async def fresh_client(cast: Cast) -> Target:
    created = await cast.callers["coordinator"].post(
        f"/members/{cast.owner.member_id}/clients", json={"label": "spare"}
    )
    assert created.status_code == 201, created.text
    return Target({"client_id": created.json()["id"]})


async def draft(cast: Cast) -> Target:
    created = await cast.owner.post("/offers", json=room())
    assert created.status_code == 201, created.text
    return Target({"offer_id": created.json()["id"]}, headers={"If-Match": created.headers["etag"]})


async def published(cast: Cast) -> Target:
    target = await draft(cast)
    done = await cast.owner.post(f"/offers/{target.params['offer_id']}/publish")
    assert done.status_code == 200, done.text
    return Target(target.params, headers={"If-Match": done.headers["etag"]})


def new_reference(cast: Cast) -> dict[str, Any]:
    return {
        "code": f"reference_{next(cast.counter)}",
        "label": "Heure de bénévolat",
        "amount": "17.50",
        "unit": "hour",
        "valid_from": "2026-01-01",
    }


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    prepare: Callable[[Cast], Awaitable[Target]]
    expected: tuple[int, int, int, int, int, int]  # in the order of ROLES
    body: Callable[[Cast], dict[str, Any]] | None = None
    label: str = ""


EVERYONE_IN_THEIR_POLE = (200, 200, 200, 200, 200, 200)
THE_POLE_READS = (200, 200, 200, 200, 404, 404)
EACH_COORDINATOR = (403, 403, 201, 403, 403, 201)
OWNER_OR_COORDINATOR = (200, 403, 200, 403, 404, 404)
# A draft is private to its owner (and the coordinator and auditors): a neighbour gets 404.
DRAFT_OWNER_OR_COORDINATOR = (200, 404, 200, 403, 404, 404)
CASES = [
    Case("GET", "/pole", nothing, EVERYONE_IN_THEIR_POLE),
    Case(
        "PATCH",
        "/pole",
        nothing,
        (403, 403, 200, 403, 403, 200),
        body=lambda _: {"territory": "Touraine"},
    ),
    Case("GET", "/pole/references", nothing, EVERYONE_IN_THEIR_POLE),
    Case("POST", "/pole/references", nothing, EACH_COORDINATOR, body=new_reference),
    Case("GET", "/members", nothing, EVERYONE_IN_THEIR_POLE),
    Case("POST", "/members", nothing, EACH_COORDINATOR, body=lambda _: member_body()),
    Case("GET", "/members/{member_id}", the_owner, THE_POLE_READS),
    Case(
        "PATCH",
        "/members/{member_id}",
        the_owner,
        OWNER_OR_COORDINATOR,
        body=lambda _: {"headcount": 3},
    ),
    Case(
        "POST",
        "/members/{member_id}/leave",
        fresh_member,
        (403, 403, 200, 403, 404, 404),
        body=lambda _: {"left_on": "2030-01-01"},
    ),
    Case("GET", "/members/{member_id}/clients", the_owner, (200, 403, 200, 200, 404, 404)),
    Case(
        "POST",
        "/members/{member_id}/clients",
        the_owner,
        (201, 403, 201, 403, 404, 404),
        body=lambda _: {"label": "Intégration"},
    ),
    Case(
        "POST",
        "/members/{member_id}/clients",
        the_owner,
        (403, 403, 201, 403, 404, 404),
        body=lambda _: {"label": "Audit", "role": "auditor"},
        label="of another role",
    ),
    Case("DELETE", "/clients/{client_id}", fresh_client, (204, 403, 204, 403, 404, 404)),
    # Each pole's members offer in their own pole…
    Case("POST", "/offers", nothing, (201, 201, 201, 403, 201, 201), body=lambda _: room()),
    # …and only the coordinator of the owner's pole on its behalf.
    Case(
        "POST",
        "/offers",
        nothing,
        (201, 403, 201, 403, 404, 404),
        body=lambda cast: room(owner_id=str(cast.owner.member_id)),
        label="on the owner's behalf",
    ),
    Case("GET", "/offers", nothing, EVERYONE_IN_THEIR_POLE),
    Case("GET", "/offers/{offer_id}", published, THE_POLE_READS),
    Case("GET", "/offers/{offer_id}", draft, (200, 404, 200, 200, 404, 404), label="a draft"),
    Case(
        "PATCH",
        "/offers/{offer_id}",
        published,
        OWNER_OR_COORDINATOR,
        body=lambda _: {"capacity": 2},
    ),
    Case(
        "PATCH",
        "/offers/{offer_id}",
        draft,
        DRAFT_OWNER_OR_COORDINATOR,
        body=lambda _: {"capacity": 2},
        label="a draft",
    ),
    Case("POST", "/offers/{offer_id}/publish", draft, DRAFT_OWNER_OR_COORDINATOR),
    Case("POST", "/offers/{offer_id}/pause", published, OWNER_OR_COORDINATOR),
    Case("POST", "/offers/{offer_id}/archive", published, OWNER_OR_COORDINATOR),
    Case("GET", "/members/{member_id}/offers", the_owner, THE_POLE_READS),
]


@pytest.mark.parametrize(
    "case", CASES, ids=lambda case: f"{case.method} {case.path} {case.label}".strip()
)
async def test_each_role_gets_what_the_table_says(cast: Cast, case: Case) -> None:
    answers = {}
    for role in ROLES:
        target = await case.prepare(cast)
        caller = target.owner if role == "owner" and target.owner else cast.callers[role]
        kwargs: dict[str, Any] = {"headers": target.headers}
        if case.body is not None:
            kwargs["json"] = case.body(cast)
        answer = await caller.request(case.method, case.path.format(**target.params), **kwargs)
        answers[role] = answer.status_code
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == PROBLEM_JSON, (role, answer.text)
    assert answers == dict(zip(ROLES, case.expected, strict=True))


async def test_the_table_covers_every_operation(cast: Cast) -> None:
    document = (await cast.catalog.http.get("/openapi.json")).json()
    operations = {(m.upper(), p) for p, methods in document["paths"].items() for m in methods}
    assert operations == {(case.method, case.path) for case in CASES} | PUBLIC


async def test_another_pole_reads_nothing_of_this_one(fresh_cast: Cast) -> None:
    cast = fresh_cast
    coordinator = cast.callers["coordinator"]
    offer = (await published(cast)).params["offer_id"]
    hidden = (await draft(cast)).params["offer_id"]
    assert (await coordinator.post("/pole/references", json=new_reference(cast))).status_code == 201
    everyone = (await coordinator.get("/members", params={"limit": 200})).json()["items"]
    ours = {str(coordinator.pole_id), offer, hidden} | {member["id"] for member in everyone}
    lists = ["/pole", "/pole/references", "/members?include_left=true&limit=200", "/offers"]
    for role in ("other_member", "other_coordinator"):
        caller = cast.callers[role]
        for url in [*lists, f"/members/{caller.member_id}/offers", "/offers?q=salle"]:
            answer = await caller.get(url)
            assert answer.status_code == 200, (role, url)
            assert not {found for found in ours if found in answer.text}, (role, url)

    # Within the pole, a draft is its owner's, the coordinator's and the auditors' only.
    for role in ("owner", "neighbour", "coordinator", "auditor"):
        caller = cast.callers[role]
        listed = (await caller.get(f"/members/{cast.owner.member_id}/offers")).json()["items"]
        searched = (await caller.get("/offers", params={"limit": 200})).json()["items"]
        assert offer in {item["id"] for item in listed} & {item["id"] for item in searched}
        assert (hidden in {item["id"] for item in listed}) is (role != "neighbour"), role
        assert hidden not in {item["id"] for item in searched}, role
