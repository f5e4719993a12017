"""API clients, their secrets, the signing keys and the access tokens (OAuth2 client credentials).

A client secret is 32 random bytes, shown once. It is stored as its SHA-256: a slow
password hash protects low-entropy secrets chosen by people, which these are not, and a
fast hash keeps the token endpoint cheap. Secrets are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from catalog.models import ApiClient, Member, SigningKey
from shared.auth import ALGORITHM, INVALID_TOKEN, Principal, Role
from shared.db import utcnow
from shared.errors import Unauthorized
from shared.settings import KernelSettings

CLIENT_ID_PREFIX = "cli_"
_KEY_CREATION_LOCK = 0x7074_6365  # "ptce"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedClient:
    client: ApiClient
    secret: str


def new_client(member: Member, *, role: Role, label: str) -> IssuedClient:
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        id=CLIENT_ID_PREFIX + secrets.token_hex(12),
        pole_id=member.pole_id,
        member_id=member.id,
        role=role.value,
        label=label,
        secret_hash=hash_secret(secret),
    )
    return IssuedClient(client=client, secret=secret)


def _new_signing_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    kid = uuid.uuid4().hex
    public_jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
    public_jwk.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(kid=kid, private_pem=pem, public_jwk=public_jwk)


async def current_signing_key(session: AsyncSession) -> SigningKey:
    """The newest active key; the first call creates one (every replica agrees on it)."""
    key = await _newest_active_key(session)
    if key is not None:
        return key
    # Two replicas starting together: an advisory lock makes them create a single key.
    await session.execute(select(func.pg_advisory_xact_lock(_KEY_CREATION_LOCK)))
    key = await _newest_active_key(session)
    if key is not None:
        return key
    fresh = _new_signing_key()
    await session.execute(insert(SigningKey).values(**fresh.model_dump()))
    await session.commit()
    return fresh


async def _newest_active_key(session: AsyncSession) -> SigningKey | None:
    result = await session.scalars(
        select(SigningKey)
        .where(col(SigningKey.retired_at).is_(None))
        .order_by(col(SigningKey.created_at).desc())
        .limit(1)
    )
    return result.first()


async def public_keys(session: AsyncSession) -> dict[str, Any]:
    """The JWKS: the keys not retired (there is one until a rotation command exists)."""
    await current_signing_key(session)
    keys = (await session.scalars(select(SigningKey).order_by(col(SigningKey.created_at)))).all()
    return {"keys": [key.public_jwk for key in keys if key.retired_at is None]}


async def issue_token(
    session: AsyncSession, settings: KernelSettings, client_id: str, client_secret: str
) -> tuple[str, int]:
    """Check a client's credentials and sign an access token; (token, lifetime in seconds)."""
    client = await session.get(ApiClient, client_id)
    if client is None or not hmac.compare_digest(client.secret_hash, hash_secret(client_secret)):
        raise Unauthorized("Unknown client or wrong secret.", extra={"error": "invalid_client"})
    if client.revoked_at is not None:
        raise Unauthorized("This client was revoked.", extra={"error": "invalid_client"})
    member = await session.get(Member, client.member_id)
    if member is None or member.left_on is not None:
        raise Unauthorized("This client's member left the pole.", extra={"error": "invalid_client"})
    key = await current_signing_key(session)
    now = utcnow()
    ttl = settings.auth_token_ttl_seconds
    claims = {
        "iss": settings.auth_issuer,
        "aud": settings.auth_audience,
        "sub": client.id,
        "pole": str(client.pole_id),
        "member": str(client.member_id),
        "role": client.role,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, key.private_pem, algorithm=ALGORITHM, headers={"kid": key.kid})
    return token, ttl


async def refuse_if_inactive(session: AsyncSession, principal: Principal) -> None:
    """The catalog's own check on every request: a revoked client or a departed member stops now."""
    row = (
        await session.execute(
            select(col(ApiClient.revoked_at), col(Member.left_on))
            .join(Member, col(Member.id) == col(ApiClient.member_id))
            .where(col(ApiClient.id) == principal.client_id)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("This client was revoked.", headers=INVALID_TOKEN)
    if row.left_on is not None:
        raise Unauthorized("This member left the pole.", headers=INVALID_TOKEN)
