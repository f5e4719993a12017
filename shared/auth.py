"""Who is calling: access tokens issued by the catalog, verified locally by every service.

The catalog signs short-lived JWTs (ES256) for API clients (OAuth2 client credentials) and
publishes its public keys at ``/.well-known/jwks.json``. Every service verifies a token
with those keys, without calling the catalog on the request path: the catalog reads them
from its own database, the other services fetch the JWKS once and again only when a token
names a key they do not know (key rotation), at most every ``JWKS_REFRESH_SECONDS``.

A token carries the pole, the member and the role; it is the only source of them. What a
caller may do is decided from the :class:`Principal`, never from ids in the request.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import httpx
import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Forbidden, Unauthorized
from shared.logging import get_logger
from shared.settings import KernelSettings

log = get_logger(__name__)

ALGORITHM = "ES256"
JWKS_REFRESH_SECONDS = 30.0
LEEWAY_SECONDS = 5
VERIFIED_TOKENS_KEPT = 4096


class Role(StrEnum):
    member = "member"
    """Acts for its own organisation only."""
    coordinator = "coordinator"
    """The pole's animation cell: onboards members, may act on any member's behalf."""
    auditor = "auditor"
    """Reads everything of its pole, changes nothing."""


@dataclass(frozen=True)
class Principal:
    client_id: str
    pole_id: uuid.UUID
    member_id: uuid.UUID
    role: Role

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.coordinator

    def may_act_for(self, member_id: uuid.UUID) -> bool:
        """Whether this caller may change things on behalf of ``member_id`` (same pole)."""
        return self.role is Role.coordinator or (
            self.role is Role.member and self.member_id == member_id
        )


KeyLoader = Callable[[], Awaitable[dict[str, Any]]]
"""Returns a JWKS document (``{"keys": [...]}``)."""


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    kid: str
    key: jwt.PyJWK
    valid_until: float  # expiry + leeway, as time.time()


class TokenVerifier:
    """Checks signature, issuer, audience and expiry; turns claims into a Principal.

    A client sends the same token with every request until it expires: a token that passed
    every check is remembered (the last ``VERIFIED_TOKENS_KEPT``) with its principal, and
    accepted again without the signature check (a tenth of a millisecond of CPU) as long as
    it has not expired and the key that signed it is still one of the known keys. It is the
    same answer a full check would give: the claims cannot change without the signature.
    """

    def __init__(self, settings: KernelSettings, load_keys: KeyLoader) -> None:
        self._settings = settings
        self._load_keys = load_keys
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()
        self._verified: dict[str, _Verified] = {}

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            async with self._lock:
                stale = time.monotonic() - self._loaded_at > JWKS_REFRESH_SECONDS
                if not self._keys or (kid not in self._keys and stale):
                    document = await self._load_keys()
                    self._keys = {
                        key["kid"]: jwt.PyJWK(key, ALGORITHM) for key in document.get("keys", [])
                    }
                    self._loaded_at = time.monotonic()
        if kid not in self._keys:
            raise Unauthorized("The token is signed by an unknown key.")
        return self._keys[kid]

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            if time.time() < known.valid_until and self._keys.get(known.kid) is known.key:
                return known.principal
            del self._verified[token]  # expired, or its key was replaced: check it again
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The token is not a JWT.") from exc
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise Unauthorized("The token's algorithm or key id is not accepted.")
        key = await self._key(header["kid"])
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[ALGORITHM],
                audience=self._settings.auth_audience,
                issuer=self._settings.auth_issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            principal = Principal(
                client_id=str(claims["sub"]),
                pole_id=uuid.UUID(claims["pole"]),
                member_id=uuid.UUID(claims["member"]),
                role=Role(claims["role"]),
            )
            # PyJWT refuses a token once ``exp <= now - leeway``.
            valid_until = float(claims["exp"]) + LEEWAY_SECONDS
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired.") from exc
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise Unauthorized("The token is not valid.") from exc
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = _Verified(principal, header["kid"], key, valid_until)
        return principal


def remote_jwks(settings: KernelSettings) -> KeyLoader:
    """Load the catalog's public keys over HTTP (for the services other than the catalog)."""

    async def load() -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(settings.auth_jwks_url)
                response.raise_for_status()
                document: dict[str, Any] = response.json()
                return document
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("jwks_unavailable", url=settings.auth_jwks_url, error=repr(exc))
            return {"keys": []}

    return load


class RecentMemberChecks:
    """The members a process found still in their pole, and when (monotonic seconds): a
    member read again within ``recheck_seconds`` is not read again."""

    MAX_KEPT = 10_000

    def __init__(self, recheck_seconds: float) -> None:
        self.recheck_seconds = recheck_seconds
        self._checked_at: dict[uuid.UUID, float] = {}

    def fresh(self, member_id: uuid.UUID) -> bool:
        checked_at = self._checked_at.get(member_id)
        return checked_at is not None and time.monotonic() - checked_at < self.recheck_seconds

    def remember(self, member_id: uuid.UUID) -> None:
        if self.recheck_seconds <= 0:
            return
        if len(self._checked_at) >= self.MAX_KEPT:
            self._checked_at.clear()  # rare (members of many poles): all are read again
        self._checked_at[member_id] = time.monotonic()


_bearer = HTTPBearer(auto_error=False, description="An access token from POST /oauth/token.")
NO_TOKEN = {"WWW-Authenticate": "Bearer"}
"""The challenge of a 401 to a request without an access token (RFC 6750 §3)."""
INVALID_TOKEN = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
"""The challenge of a 401 to a token refused: forged, expired, revoked, of a member that left."""


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(
            "An access token is required (Authorization: Bearer …).", headers=NO_TOKEN
        )
    verifier: TokenVerifier = request.app.state.runtime.verifier
    try:
        principal = await verifier.verify(credentials.credentials)
    except Unauthorized as exc:
        exc.headers = INVALID_TOKEN
        raise
    try:
        await request.app.state.runtime.check_principal(principal)
    except Unauthorized as exc:
        exc.headers = INVALID_TOKEN
        raise
    return principal


UNAUTHORIZED_RESPONSE: dict[str, Any] = {
    "description": "No access token, or one refused (forged, expired, another audience, a "
    "revoked client, a member that left): problem details, with WWW-Authenticate: Bearer",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _authenticates(dependant: Dependant) -> bool:
    return any(sub.call is authenticate or _authenticates(sub) for sub in dependant.dependencies)


def document_authentication(router: APIRouter) -> None:
    """Document the 401 of every operation of ``router`` that wants an access token (before
    the router is included in an app); the public ones (health, keys, the token endpoint, a
    calendar feed's secret URL) have none."""
    for route in router.routes:
        if isinstance(route, APIRoute) and _authenticates(route.dependant):
            route.responses.setdefault(401, UNAUTHORIZED_RESPONSE)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


def require_writer(principal: Principal) -> None:
    """Auditors read only."""
    if principal.role is Role.auditor:
        raise Forbidden("An auditor's client may only read.")


def require_coordinator(principal: Principal) -> None:
    if principal.role is not Role.coordinator:
        raise Forbidden("Only the pole's coordinator may do this.")


def require_acting_for(principal: Principal, member_id: uuid.UUID) -> None:
    """The caller acts for ``member_id``: that member itself, or the coordinator."""
    if not principal.may_act_for(member_id):
        raise Forbidden("A member acts only for its own organisation.")
