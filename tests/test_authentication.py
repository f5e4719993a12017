"""Every operation of the three services, called without a valid access token — anonymous, with
an expired token (correctly signed), one signed by another key, one for another audience… —
answers 401 with problem details and a Bearer challenge, except the public operations listed
here: a new endpoint cannot be left open by mistake. What each role may do once authenticated
is in the services' authorization tables (tests/test_*_authorization.py)."""

from __future__ import annotations

import httpx
import pytest

from ptce.testing.api import (
    Caller,
    concrete_path,
    get_token,
    hostile_credentials,
    operations,
    problem,
    walk_refused,
)
from ptce.testing.ledger import Books

PUBLIC = {
    "catalog": {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("POST", "/oauth/token"),
        ("GET", "/.well-known/jwks.json"),
    },
    "exchange": {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/calendars/{token}.ics")},
    "ledger": {("GET", "/healthz"), ("GET", "/readyz")},
}
PROBE = {"catalog": "/pole", "exchange": "/requests", "ledger": "/pole/chain"}
CREDENTIALS = (
    "anonymous",
    "not a bearer token",
    "not a JWT",
    "expired",
    "not yet valid",
    "another audience",
    "another issuer",
    "unknown role",
    "another key",
    "an unknown key",
    "unsigned",
    "HMAC with the public key",
)


def services(books: Books) -> dict[str, httpx.AsyncClient]:
    return {
        "catalog": books.market.catalog.http,
        "exchange": books.market.exchange,
        "ledger": books.http,
    }


@pytest.fixture(scope="module")
async def coordinator(module_books: Books) -> Caller:
    """A coordinator known to every service (its token is the base of the hostile ones)."""
    caller = await module_books.market.catalog.new_pole()
    await module_books.knows(caller)
    return caller


@pytest.fixture(scope="module")
async def hostile(module_books: Books, coordinator: Caller) -> dict[str, dict[str, str]]:
    made = await hostile_credentials(module_books.market.catalog, coordinator)
    assert set(made) == set(CREDENTIALS)
    return made


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_every_operation_but_the_public_ones_refuses_it(
    module_books: Books, hostile: dict[str, dict[str, str]], credential: str
) -> None:
    called, failures = 0, []
    for service, http in services(module_books).items():
        count, failed = await walk_refused(
            http, public=PUBLIC[service], headers=hostile[credential]
        )
        called += count
        failures += [(service, *failure) for failure in failed]
    assert failures == []
    assert called >= 50


async def test_the_refusal_says_why(
    module_books: Books, hostile: dict[str, dict[str, str]]
) -> None:
    for service, http in services(module_books).items():
        url = PROBE[service]
        missing = await http.get(url)
        assert "required" in problem(missing, 401)["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        expired = await http.get(url, headers=hostile["expired"])
        assert "expired" in problem(expired, 401)["detail"]
        assert expired.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_valid_token_passes_every_operation(
    module_books: Books, coordinator: Caller
) -> None:
    """The control: with the coordinator's own token, no operation answers 401 (nor fails),
    so the 401s above are the tokens', not the walk's."""
    for service, http in services(module_books).items():
        for method, path in await operations(http):
            if (method, path) in PUBLIC[service]:
                continue
            answer = await http.request(
                method, concrete_path(path), json={}, headers=coordinator.headers
            )
            assert answer.status_code != 401, (service, method, path, answer.text)
            assert answer.status_code < 500, (service, method, path, answer.text)


async def test_the_public_operations_are_these_and_answer_without_a_token(
    module_books: Books, coordinator: Caller
) -> None:
    for service, http in services(module_books).items():
        documented = await operations(http)
        unsecured = {
            key
            for key, operation in documented.items()
            if not any("HTTPBearer" in scheme for scheme in operation.get("security", []))
        }
        assert unsecured == PUBLIC[service], service
        # Every other operation documents its 401 (the token endpoint its own).
        with_401 = {key for key, operation in documented.items() if "401" in operation["responses"]}
        assert with_401 == set(documented) - PUBLIC[service] | (
            {("POST", "/oauth/token")} if service == "catalog" else set()
        )
        for health in ("/healthz", "/readyz"):
            assert (await http.get(health)).status_code == 200, (service, health)

    catalog = module_books.market.catalog.http
    keys = await catalog.get("/.well-known/jwks.json")
    assert keys.status_code == 200
    assert keys.json()["keys"]
    wrong = await get_token(catalog, coordinator.client_id, "not-the-secret")
    assert problem(wrong, 401)["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown_feed = await module_books.market.exchange.get("/calendars/no-such-feed.ics")
    assert problem(unknown_feed, 404)
