"""Who reads which book: a member its own; the coordinator and auditors of a pole every book
of the pole, the pole's own included. Anything else answers 404, as if it did not exist."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import member, pole
from shared.auth import Principal, Role
from shared.errors import NotFound


@dataclass(frozen=True)
class Book:
    id: uuid.UUID
    name: str
    siret: str | None
    """None for the pole's own book."""


def sees_the_whole_pole(principal: Principal) -> bool:
    return principal.role in (Role.coordinator, Role.auditor)


async def readable_book(session: AsyncSession, principal: Principal, book_id: uuid.UUID) -> Book:
    if book_id == principal.pole_id:
        name = await session.scalar(select(pole.c.name).where(pole.c.id == book_id))
        if name is not None and sees_the_whole_pole(principal):
            return Book(book_id, name, None)
        raise NotFound("No such book for you in your pole.")
    row = (
        await session.execute(
            select(member.c.legal_name, member.c.siret).where(
                member.c.id == book_id, member.c.pole_id == principal.pole_id
            )
        )
    ).first()
    if row is None or not (sees_the_whole_pole(principal) or book_id == principal.member_id):
        raise NotFound("No such book for you in your pole.")
    return Book(book_id, row.legal_name, row.siret)
