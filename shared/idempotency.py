"""``Idempotency-Key`` for POSTs that create things: a retry returns the first answer.

The key is recorded, per API client, in the same transaction as what the request creates,
with a fingerprint of the request and, at the end, the answer. A concurrent request with the
same key waits on the first one's row (PostgreSQL makes a unique insert wait for the
transaction that holds it), then returns its answer: a hundred simultaneous retries create
one thing. The same key with another request body is refused (422). Only successful answers
are kept: a request that failed left nothing, so its retry is a new attempt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Header
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.errors import UnprocessableEntity

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Retrying with the same key returns the first answer and creates nothing.",
    ),
]


def idempotency_table(metadata: MetaData) -> Table:
    return Table(
        "idempotency_key",
        metadata,
        Column("client_id", String(100), nullable=False),
        Column("key", String(200), nullable=False),
        Column("fingerprint", String(64), nullable=False),
        Column("status", Integer),
        # The answer's bytes, so that a replay is byte for byte the first answer.
        Column("response", Text),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("client_id", "key", name="pk_idempotency_key"),
    )


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


async def claim(
    session: AsyncSession | AsyncConnection,
    table: Table,
    *,
    client_id: str,
    key: str,
    request_fingerprint: str,
) -> Replay | None:
    """Take the key for this transaction, or return the answer already given for it."""
    inserted = await session.scalar(
        insert(table)
        .values(client_id=client_id, key=key, fingerprint=request_fingerprint)
        .on_conflict_do_nothing()
        .returning(table.c.key)
    )
    if inserted is not None:
        return None
    first = (
        await session.execute(
            select(table.c.fingerprint, table.c.status, table.c.response).where(
                table.c.client_id == client_id, table.c.key == key
            )
        )
    ).one()
    if first.fingerprint != request_fingerprint:
        raise UnprocessableEntity(
            "This Idempotency-Key was used for another request.",
            invalid_params=[
                {"name": "header.idempotency-key", "reason": "used for another request"}
            ],
        )
    return Replay(status=first.status, body=first.response)


async def remember(
    session: AsyncSession | AsyncConnection,
    table: Table,
    *,
    client_id: str,
    key: str,
    status: int,
    body: str,
) -> None:
    """Record the answer, in the transaction that made it."""
    await session.execute(
        update(table)
        .where(table.c.client_id == client_id, table.c.key == key)
        .values(status=status, response=body)
    )


async def purge_keys(session: AsyncSession, table: Table, *, before: datetime) -> int:
    """Forget the keys recorded before ``before``: a retry after that is a new request."""
    result = await session.execute(delete(table).where(table.c.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
