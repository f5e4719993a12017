"""Who may do what on every ledger endpoint: the member whose book it is, another member of
the pole, the coordinator, an auditor, and a member and a coordinator of another pole.

Another pole's coordinator gets 200 on the pole-wide endpoints: they answer about its own
pole (the test checks it never sees this pole's figures). A table must cover every operation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from ptce.testing.api import Caller
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books

ROLES = ("self", "peer", "coordinator", "auditor", "other_member", "other_coordinator")
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}
PERIOD = {"from": "2026-01-01", "to": "2027-01-01"}
YEAR = {"year": 2026}
GRANT = {"kind": "grant", "on": "2026-03-01", "label": "Aide", "amount": "10", "origin": "public"}
RULE = {"basis": "flat", "brackets": [{"amount": "20"}]}


@dataclass
class Cast:
    books: Books
    callers: dict[str, Caller]

    def caller(self, role: str) -> Caller:
        return self.callers[role]


@pytest.fixture
async def cast(module_books: Books) -> Cast:
    """New poles for every test on the module's books: the cells change pole-wide state (a
    dues rule set, dues posted, grants) that other cells and tests read."""
    books = module_books
    catalog = books.market.catalog
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    peer = await catalog.new_member(coordinator)
    auditor = await catalog.new_client(coordinator, peer.member_id, role="auditor")
    other_coordinator = await catalog.new_pole("Autre pôle")
    other_member = await catalog.new_member(other_coordinator)
    await books.knows(coordinator, member, peer, other_coordinator, other_member)
    callers = {
        "self": member,
        "peer": peer,
        "coordinator": coordinator,
        "auditor": auditor,
        "other_member": other_member,
        "other_coordinator": other_coordinator,
    }
    cast = Cast(books, {role: books.on_ledger(caller) for role, caller in callers.items()})
    assert (await cast.caller("coordinator").put("/dues-rules/2026", json=RULE)).status_code == 200
    return cast


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    expected: tuple[int, int, int, int, int, int]  # in the order of ROLES
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    body: dict[str, Any] | None = None


OWN_BOOK = (200, 404, 200, 200, 404, 404)
POLE_WIDE = (403, 403, 200, 200, 403, 200)
COORDINATOR_ONLY = (403, 403, 200, 403, 403, 200)
CASES = [
    Case("GET", "/books/{self}/entries", OWN_BOOK),
    Case("GET", "/books/{pole}/entries", (404, 404, 200, 200, 404, 404)),
    Case("GET", "/books/{self}/fec", OWN_BOOK, params=YEAR),
    Case("GET", "/members/{self}/activity", OWN_BOOK, params=PERIOD),
    Case("GET", "/members/{self}/contributions-in-kind", OWN_BOOK, params=YEAR),
    Case("GET", "/members/{self}/statement", OWN_BOOK, params=PERIOD),
    Case("GET", "/pole/chain", POLE_WIDE),
    Case("GET", "/pole/activity", POLE_WIDE, params=PERIOD),
    Case("GET", "/pole/settlement", POLE_WIDE, params=PERIOD),
    Case("GET", "/fec", POLE_WIDE, params=YEAR),
    Case("GET", "/dues-rules/{year}", (200, 200, 200, 200, 404, 404)),
    Case("PUT", "/dues-rules/{year}", COORDINATOR_ONLY, body=RULE),
    Case("POST", "/dues/{year}", (403, 403, 200, 403, 403, 404)),
    # A grant into the member's book: another pole's coordinator cannot reach it.
    Case(
        "POST", "/postings", (403, 403, 201, 403, 403, 404), body={**GRANT, "member_id": "{self}"}
    ),
]


def _fill(template: str, cast: Cast) -> str:
    me = cast.caller("self")
    return template.format(self=me.member_id, pole=me.pole_id, year=2026)


@pytest.mark.parametrize("case", CASES, ids=lambda case: f"{case.method} {case.path}")
async def test_each_role_gets_what_the_table_says(cast: Cast, case: Case) -> None:
    for role, expected in zip(ROLES, case.expected, strict=True):
        kwargs: dict[str, Any] = {"params": case.params}
        if case.body is not None:
            kwargs["json"] = {
                key: _fill(value, cast) if isinstance(value, str) else value
                for key, value in case.body.items()
            }
        answer = await cast.caller(role).request(case.method, _fill(case.path, cast), **kwargs)
        assert answer.status_code == expected, (role, answer.text)


async def test_the_table_covers_every_operation(cast: Cast) -> None:
    document = (await cast.books.http.get("/openapi.json")).json()
    operations = {(m.upper(), p) for p, methods in document["paths"].items() for m in methods}
    covered = {
        (case.method, case.path.replace("{self}", "{member_id}").replace("{pole}", "{book_id}"))
        for case in CASES
    }
    covered = {(m, p.replace("/books/{member_id}", "/books/{book_id}")) for m, p in covered}
    assert operations == covered | PUBLIC


async def test_another_poles_coordinator_sees_only_its_own_pole(cast: Cast) -> None:
    posted = await cast.caller("coordinator").post("/postings", json=GRANT)
    assert posted.status_code == 201
    mine = await cast.caller("coordinator").get("/pole/chain")
    theirs = await cast.caller("other_coordinator").get("/pole/chain")
    assert mine.json()["entries"] == 1
    assert theirs.json()["entries"] == 0


async def test_a_member_who_left_is_refused_once_the_ledger_knows(cast: Cast) -> None:
    me = cast.caller("self")
    url = f"/books/{me.member_id}/entries"
    assert (await me.get(url)).status_code == 200
    on_catalog = dataclasses.replace(
        cast.caller("coordinator"), http=cast.books.market.catalog.http
    )
    today = datetime.now(UTC).date().isoformat()
    left = await on_catalog.post(f"/members/{me.member_id}/leave", json={"left_on": today})
    assert left.status_code == 200, left.text

    async def refused() -> bool:
        return (await me.get(url)).status_code == 401

    await eventually(refused)
