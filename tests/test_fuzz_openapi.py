"""Hostile input (issue 6): Schemathesis fuzzes the OpenAPI document of each service.

For every operation of the catalog, the exchange and the ledger, Schemathesis generates
requests from the document the service publishes, valid ones and invalid ones (positive and
negative modes), sent with the token of a real member or of the pole's coordinator, so that
they get past authentication. Three times in four, a parameter or body field gets a real value
where a generated one would rarely pass: the id of a real thing of the pole (offer, request,
series, book, feed…), a date in a period, ``If-Match: *``, so that the fuzzer reaches past the
404s and 422s too. Each answer must be no server error (5xx), have a documented status code
and content type, and a body and headers that match the document.

The services run in process, wired by the real broker (as the ``books`` fixture). Schemathesis
and Hypothesis are synchronous: they run in a worker thread and send each request through
the services' event loop. Generation is derandomised (the same requests on every run, unless
``PTCE_FUZZ_SEED`` names another seed, to explore by hand), bounded (``PTCE_FUZZ_EXAMPLES``
examples per operation and mode, 12 unless told) and never shrinks:
a failure is reported with the request that caused it (as a curl command), and the run goes
on, so that one run lists every failing operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, reject, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from ptce.testing.api import Caller, invalid_fields, problem, room, staff_time
from ptce.testing.exchange import PARIS, at, next_monday
from ptce.testing.ledger import Books, books_api
from ptce.testing.plugin import SettingsFactory
from shared.settings import ServiceSettings

EXAMPLES = int(os.environ.get("PTCE_FUZZ_EXAMPLES", "12"))
"""Examples per operation and generation mode."""
SEED = os.environ.get("PTCE_FUZZ_SEED")
"""Another seed, to explore other requests than the derandomised ones (by hand)."""

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]

pytestmark = pytest.mark.filterwarnings(
    # Schemathesis draws some choices with the `random` module; Hypothesis seeds it anyway.
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

UNTHROTTLED = {"http_rate_limit_per_second": 100_000.0, "http_rate_limit_burst": 100_000}
"""The fuzzer sends more than a member's burst: its answers must be the operations', not 429."""


@pytest.fixture(scope="module")
async def fuzzed_books(module_service_settings: SettingsFactory) -> AsyncIterator[Books]:
    """The three services in process (as ``module_books``), without throttling."""

    async def unthrottled(service: str) -> ServiceSettings:
        return (await module_service_settings(service)).model_copy(update=UNTHROTTLED)

    async with books_api(unthrottled) as books:
        yield books


@dataclass
class Scene:
    """A pole with something of everything, the callers the fuzzer sends as, and real values
    by name of path or query parameter or body field (``query.start``: of a query parameter
    only): the ids of real things, the dates, periods and amounts the services accept; per
    operation where a generic id would end the run (the fuzzer makes only a member of no
    further use leave, revokes only its client, deletes only a feed of no further use)."""

    callers: dict[str, Caller]
    values: dict[str, list[Any]]
    values_of_operation: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    def candidates(self, path: str, location: str, name: str) -> list[Any]:
        return self.values_of_operation.get(
            (path, name), self.values.get(f"{location}.{name}", self.values.get(name, []))
        )


def _created(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def _scene(books: Books) -> Scene:
    market = books.market
    catalog = market.catalog
    coordinator = await catalog.new_pole("Pôle fuzzé")
    provider = await catalog.new_member(coordinator)
    requester = await catalog.new_member(coordinator)
    leaving = await catalog.new_member(coordinator)

    approval = await market.published(provider)
    instant = await market.published(provider, booking_mode="instant", title="Salle B")
    staff = await market.published(provider, **staff_time(provider.member_id))
    draft = _created(await requester.post("/offers", json=room(title="Brouillon")))

    ex = market.on_exchange(requester)
    day = next_monday()
    pending = _created(
        await ex.post(
            "/requests",
            json={"offer_id": approval["id"], "start": at(day, 10), "end": at(day, 12)},
        )
    )
    accepted = _created(
        await ex.post(
            "/requests",
            json={"offer_id": instant["id"], "start": at(day, 10), "end": at(day, 12)},
        )
    )
    done = _created(
        await ex.post(
            "/requests",
            json={"offer_id": instant["id"], "start": at(day, 14), "end": at(day, 16)},
        )
    )
    await market.shift_period(done["id"], start_in=timedelta(hours=-3), length=timedelta(hours=2))
    _created(
        await market.on_exchange(provider).post(f"/requests/{done['id']}/complete"), status=200
    )
    week_after = day + timedelta(weeks=1)
    series = _created(
        await ex.post(
            "/series",
            json={
                "offer_id": instant["id"],
                "start": at(week_after, 10),
                "end": at(week_after, 12),
                "weeks": 2,
            },
        )
    )
    feeds = [
        _created(await ex.post("/calendar-feeds", json={"label": "Mes réservations"})),
        _created(
            await market.on_exchange(provider).post(
                "/calendar-feeds", json={"offer_id": instant["id"], "label": "Salle B"}
            )
        ),
    ]
    deleted_feed = _created(await ex.post("/calendar-feeds", json={"label": "À supprimer"}))

    await books.knows(coordinator, provider, requester, leaving)
    led = books.on_ledger(coordinator)
    year = datetime.now(PARIS).year
    posted = _created(
        await led.post(
            "/postings",
            json={
                "kind": "grant",
                "on": f"{year}-01-15",
                "label": "Subvention de fonctionnement",
                "amount": "1000.00",
                "origin": "public",
            },
        )
    )
    dues = {"basis": "headcount", "brackets": [{"up_to": "10", "amount": "50"}, {"amount": "90"}]}
    _created(await led.put(f"/dues-rules/{year}", json=dues), status=200)

    members = [requester, provider, coordinator, leaving]
    later = next_monday(weeks=3)
    return Scene(
        callers={"member": requester, "coordinator": coordinator},
        values={
            "member_id": [str(caller.member_id) for caller in members],
            "offer_id": [approval["id"], instant["id"], staff["id"], draft["id"]],
            "request_id": [pending["id"], accepted["id"], done["id"]],
            "series_id": [series["series_id"]],
            "feed_id": [feed["id"] for feed in feeds],
            "token": [
                feed["url"].removeprefix("/calendars/").removesuffix(".ics") for feed in feeds
            ],
            "book_id": sorted({entry["book_id"] for entry in posted["entries"]}),
            "year": [str(year)],
            "to_member_id": [str(caller.member_id) for caller in members],
            "on": [f"{year}-02-01"],
            "from": [f"{year}-01-01"],
            "to": [f"{year + 1}-01-01"],
            "query.start": [at(later, 0)],
            "query.end": [at(later + timedelta(days=7), 0)],
            "body.start": [at(later, 10)],
            "body.end": [at(later, 12)],
            "amount": ["120.00"],
            "brackets": [[{"amount": "50.00"}]],
            "header.if-match": ["*"],
        },
        values_of_operation={
            ("/members/{member_id}/leave", "member_id"): [str(leaving.member_id)],
            ("/clients/{client_id}", "client_id"): [leaving.client_id],
            ("/calendar-feeds/{feed_id}", "feed_id"): [deleted_feed["id"]],
        },
    )


@dataclass
class Outcome:
    sent: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    authenticated: set[str] = field(default_factory=set)
    """The operations that want an access token."""

    def fail(self, operation: str, kind: str, message: str) -> None:
        """Keep the first example of each kind of failure of each operation."""
        self.failures.setdefault((operation, kind), message)


@dataclass
class Fuzzer:
    """Runs in a worker thread; sends each request through the services' event loop."""

    scene: Scene
    http: httpx.AsyncClient
    loop: asyncio.AbstractEventLoop
    document: dict[str, Any]
    outcome: Outcome = field(default_factory=Outcome)
    base_url = "http://fuzzed"

    def _resolved(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            found: dict[str, Any] = self.document["components"]["schemas"][
                schema["$ref"].removeprefix("#/components/schemas/")
            ]
            return found
        return schema

    def declared(self, operation: Any) -> dict[str, set[str]]:
        """The names of the operation's parameters by location, and of its JSON body's fields."""
        names: dict[str, set[str]] = {"path": set(), "query": set(), "header": set()}
        for parameter in operation.definition.raw.get("parameters", []):
            names.setdefault(parameter["in"], set()).add(parameter["name"])
        content = operation.definition.raw.get("requestBody", {}).get("content", {})
        schema = self._resolved(content.get("application/json", {}).get("schema", {}))
        names["body"] = set(schema.get("properties", {}))
        for option in schema.get("anyOf", []):
            names["body"] |= set(self._resolved(option).get("properties", {}))
        return names

    def all(self, schema: Any) -> Outcome:
        for result in schema.get_all_operations():
            operation = result.ok()
            security = operation.definition.raw.get("security", [])
            if any("HTTPBearer" in requirement for requirement in security):
                self.outcome.authenticated.add(f"{operation.method.upper()} {operation.path}")
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                with contextlib.suppress(Unsatisfiable):  # nothing to negate: no parameters
                    self.operation(operation, mode)
        return self.outcome

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        label = f"{operation.method.upper()} {operation.path}"
        callers = sorted(self.scene.callers.items())
        strategy = operation.as_strategy(generation_mode=mode)
        declared = self.declared(operation)

        @settings(
            max_examples=EXAMPLES,
            derandomize=SEED is None,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def run(data: st.DataObject) -> None:
            case = data.draw(strategy, label="case")
            role, caller = data.draw(st.sampled_from(callers), label="caller")
            # Real values, three times in four, where generated ones would rarely be accepted
            # (also for the optional parameters and fields left out).
            located = [
                ("path", case.path_parameters),
                ("query", case.query),
                ("header", case.headers),
            ]
            if isinstance(case.body, dict):
                located.append(("body", case.body))
            for location, values in located:
                for name in sorted(set(values) | declared[location]):
                    known = self.scene.candidates(operation.path, location, name)
                    if not known:
                        continue
                    if data.draw(st.integers(0, 3), label=f"real {name}") > 0:
                        values[name] = data.draw(st.sampled_from(known), label=name)
            try:
                kwargs = case.as_transport_kwargs(base_url=self.base_url)
                prepared = requests.Request(**kwargs).prepare()
                headers = {
                    name: value if isinstance(value, str) else value.decode("latin-1")
                    for name, value in prepared.headers.items()
                }
                assert prepared.body is None or isinstance(prepared.body, str | bytes)
                request = self.http.build_request(
                    str(prepared.method),
                    str(prepared.url).removeprefix(self.base_url),
                    headers={**headers, **caller.headers},
                    content=prepared.body,
                )
            except (ValueError, TypeError, requests.RequestException, httpx.HTTPError):
                reject()  # not sendable over HTTP: nothing to learn from it
            future = asyncio.run_coroutine_threadsafe(self.http.send(request), self.loop)
            try:
                response = future.result(timeout=60)
            except Exception as exc:  # the app raised: a server error
                curl = case.as_curl_command()
                self.outcome.fail(label, "exception", f"{role}: {exc!r}\n{curl}")
                return
            self.outcome.sent += 1
            self.outcome.statuses[label, response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as group:
                for failure in group.exceptions:
                    kind = f"{failure.title} ({response.status_code})"
                    self.outcome.fail(label, kind, f"{role}: {group}")

        if SEED is not None:
            run = seed(int(SEED))(run)
        run()


async def _fuzz_service(books: Books, service: str) -> Outcome:
    http = {
        "catalog": books.market.catalog.http,
        "exchange": books.market.exchange,
        "ledger": books.http,
    }[service]
    scene = await _scene(books)
    document = (await http.get("/openapi.json")).json()
    fuzzer = Fuzzer(scene, http, asyncio.get_running_loop(), document)
    return await asyncio.to_thread(fuzzer.all, schemathesis.openapi.from_dict(document))


@pytest.mark.parametrize("service", ["catalog", "exchange", "ledger"])
async def test_the_fuzzer_finds_no_server_error_and_no_answer_off_the_document(
    fuzzed_books: Books, service: str
) -> None:
    started = time.perf_counter()
    outcome = await _fuzz_service(fuzzed_books, service)
    elapsed = time.perf_counter() - started
    seen = sorted(outcome.statuses.items())
    print(f"\n{service}: {outcome.sent} requests in {elapsed:.1f} s")
    for (label, status), count in seen:
        print(f"  {label:55} {status} × {count}")
    failures = sorted(outcome.failures.items())
    assert not failures, "\n".join(
        [f"{len(failures)} failures:", *(f"  {label} — {kind}" for (label, kind), _ in failures)]
        + [f"\n{label} — {kind}\n{message}" for (label, kind), message in failures]
    )
    # Past authentication: a real caller's token is never refused.
    refused = {label for label, status in outcome.statuses if status == 401}
    assert not refused & outcome.authenticated, seen
    # Past the 404s: every operation with a path parameter answered something else at least once.
    reached = {label for (label, status) in outcome.statuses if status != 404}
    assert reached == {label for label, _ in outcome.statuses}, seen


async def test_a_nul_character_in_any_text_is_refused_with_422(fuzzed_books: Books) -> None:
    """Found by the fuzzer: PostgreSQL stores no U+0000 in text (nor its escape in JSON), and
    a request carrying one in a body field, a JSON attribute or a query parameter was a 500."""
    market = fuzzed_books.market
    coordinator = await market.catalog.new_pole()
    await fuzzed_books.knows(coordinator)
    nul = "a\x00b"
    amenities = {"surface_m2": 35, "seats": 12, "accessible": True, "amenities": [nul]}
    grant = {"kind": "grant", "on": "2026-03-01", "label": nul, "amount": "1", "origin": "public"}
    answers = [
        await coordinator.post("/offers", json=room(title=nul)),
        await coordinator.post("/offers", json=room(attributes=amenities)),
        await coordinator.get("/offers", params={"q": nul}),
        await market.on_exchange(coordinator).post("/calendar-feeds", json={"label": nul}),
        await fuzzed_books.on_ledger(coordinator).post("/postings", json=grant),
    ]
    for answer in answers:
        assert "NUL" in problem(answer, 422)["detail"], answer.request.url


async def test_details_that_cannot_be_null_are_refused_with_422(fuzzed_books: Books) -> None:
    """Found by the fuzzer: a member's ``insee_code``, an offer's ``description`` or
    ``availability`` set to null were a 500 (and a null availability was stored: the offer
    could no longer be published)."""
    catalog = fuzzed_books.market.catalog
    coordinator = await catalog.new_pole()
    member = await catalog.new_member(coordinator)
    nulled = await coordinator.patch(f"/members/{member.member_id}", json={"insee_code": None})
    assert "insee_code" in problem(nulled, 422)["detail"]
    offer = _created(await coordinator.post("/offers", json=room()))
    for name in ("description", "availability"):
        changed = await coordinator.patch(
            f"/offers/{offer['id']}",
            json={name: None},
            headers={"If-Match": f'"{offer["version"]}"'},
        )
        assert f"body.{name}" in invalid_fields(problem(changed, 422))
    published = await coordinator.post(f"/offers/{offer['id']}/publish")
    assert published.status_code == 200, published.text
