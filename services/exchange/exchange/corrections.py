"""Correcting a completed exchange: the quantity used was wrong.

Only the provider (or the pole's coordinator) corrects, with a reason; the request stays
``completed`` and its version moves on. The event ``request.corrected`` carries the new
snapshot: the ledger reverses what it posted for the earlier versions and posts the new
figures, so a past figure is never edited, only reversed and replaced.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from exchange.api import RequestOut, request_answer
from exchange.models import booking_request
from exchange.requests import request_of_pole, snapshot
from shared.auth import CurrentPrincipal, Principal, Role
from shared.contracts.exchange import RequestCorrected
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, UnprocessableEntity
from shared.http import RuntimeDep
from shared.uow import UnitOfWork

router = APIRouter(tags=["requests"])


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity_used: Decimal = Field(ge=0, le=100_000, decimal_places=2)
    reason: str = Field(min_length=1, max_length=1000)


async def correct(
    uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, body: Correction
) -> Any:
    session = uow.session
    row = await request_of_pole(session, principal, request_id, lock=True)
    if principal.role is Role.auditor or not (
        principal.is_coordinator or principal.member_id == row.provider_id
    ):
        raise Forbidden("Only the provider (or the coordinator) corrects an exchange.")
    if row.state != "completed":
        raise Conflict(
            f"Only a completed exchange is corrected; this one is {row.state}.",
            extra={"state": row.state, "allowed": []},
        )
    if row.quantity_used == body.quantity_used:
        raise UnprocessableEntity(
            "That is already the quantity used.",
            invalid_params=[{"name": "body.quantity_used", "reason": "unchanged"}],
        )
    await session.execute(
        update(booking_request)
        .where(booking_request.c.id == row.id)
        .values(
            quantity_used=body.quantity_used,
            reason=body.reason,
            version=row.version + 1,
            updated_at=utcnow(),
        )
    )
    corrected = (
        await session.execute(select(booking_request).where(booking_request.c.id == row.id))
    ).one()
    uow.publish(snapshot(RequestCorrected, corrected))
    return corrected


@router.post(
    "/requests/{request_id}/correct",
    summary="Correct the quantity used of a completed exchange (its provider, the coordinator)",
    responses={
        403: {"description": "Neither its provider nor the coordinator"},
        404: {"description": "No such request for you in your pole"},
        409: {"description": "Not a completed exchange"},
    },
)
async def post_correction(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    body: Correction,
    response: Response,
) -> RequestOut:
    async with runtime.uow() as uow:
        row = await correct(uow, principal, request_id, body)
        await uow.commit()
    return request_answer(row, response)
