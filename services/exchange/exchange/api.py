"""The exchange's HTTP API: requests between members and their life cycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel
from sqlalchemy import or_, select, tuple_

from exchange.models import booking_request
from exchange.models import idempotency_key as idempotency_table
from exchange.requests import (
    MoveBody,
    NewRequest,
    create_request,
    move,
    request_fields,
    request_of_pole,
)
from shared.auth import CurrentPrincipal, Role
from shared.contracts.exchange import FrozenTerms
from shared.http import RuntimeDep
from shared.idempotency import IdempotencyKey, claim, fingerprint, remember
from shared.pagination import Page, PageRequest, encode_cursor, page_request
from shared.versioning import etag, set_etag

router = APIRouter(tags=["requests"])


class RequestOut(BaseModel):
    id: uuid.UUID
    offer_id: uuid.UUID
    offer_kind: str
    provider_id: uuid.UUID
    requester_id: uuid.UUID
    state: str
    start: datetime | None
    end: datetime | None
    quantity: Decimal | None
    message: str
    reason: str | None
    late: bool
    quantity_used: Decimal | None
    terms: FrozenTerms | None
    version: int
    created_at: datetime


def _out(row: Any, response: Response | None = None) -> RequestOut:
    if response is not None:
        set_etag(response, row.version)
    return RequestOut(
        id=row.id, message=row.message, created_at=row.created_at, **request_fields(row)
    )


@router.post(
    "/requests",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestOut,
    summary="Request another member's offer (accepted at once if it books instantly)",
    responses={409: {"description": "Not available: the conflicting period is named"}},
)
async def post_request(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    body: NewRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async with runtime.uow() as uow:
        if idempotency_key is not None:
            request_fingerprint = fingerprint("POST /requests", body.model_dump_json())
            replay = await claim(
                uow.session,
                idempotency_table,
                client_id=principal.client_id,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
            )
            if replay is not None:
                return _created(replay.body)
        row = await create_request(uow, principal, body)
        answer = _out(row)
        answer_json = answer.model_dump_json()
        if idempotency_key is not None:
            await remember(
                uow.session,
                idempotency_table,
                client_id=principal.client_id,
                key=idempotency_key,
                status=201,
                body=answer_json,
            )
        await uow.commit()
    return _created(answer_json)


def _created(answer_json: str) -> Response:
    answer = RequestOut.model_validate_json(answer_json)
    return Response(
        answer_json,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers={"Location": f"/requests/{answer.id}", "ETag": etag(answer.version)},
    )


@router.get("/requests/{request_id}", summary="A request the caller is a party to")
async def get_request(
    runtime: RuntimeDep, principal: CurrentPrincipal, request_id: uuid.UUID, response: Response
) -> RequestOut:
    async with runtime.session_factory() as session:
        row = await request_of_pole(session, principal, request_id)
    return _out(row, response)


@router.get(
    "/requests",
    summary="The caller's requests, made or received (all of the pole's: coordinator, auditor)",
)
async def list_requests(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    page: Annotated[PageRequest, Depends(page_request)],
) -> Page[RequestOut]:
    statement = select(booking_request).where(booking_request.c.pole_id == principal.pole_id)
    if principal.role is Role.member:
        statement = statement.where(
            or_(
                booking_request.c.requester_id == principal.member_id,
                booking_request.c.provider_id == principal.member_id,
            )
        )
    if page.after is not None:
        created, last_id = page.after
        statement = statement.where(
            tuple_(booking_request.c.created_at, booking_request.c.id)
            > tuple_(datetime.fromisoformat(str(created)), last_id)
        )
    statement = statement.order_by(booking_request.c.created_at, booking_request.c.id)
    async with runtime.session_factory() as session:
        rows = list((await session.execute(statement.limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page(
        items=[_out(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None,
    )


def _mover(action: str) -> Any:
    async def change_state(
        runtime: RuntimeDep,
        principal: CurrentPrincipal,
        request_id: uuid.UUID,
        response: Response,
        body: MoveBody | None = None,
    ) -> RequestOut:
        async with runtime.uow() as uow:
            row = await move(uow, principal, request_id, action, body or MoveBody())
            await uow.commit()
        return _out(row, response)

    return change_state


for _action, _summary in [
    ("accept", "Accept a request (its provider); the terms are frozen"),
    ("decline", "Decline a request, with a reason (its provider)"),
    ("withdraw", "Withdraw one's own request before it is answered"),
    (
        "cancel",
        "Cancel an accepted request, with a reason (either side); flagged late near the start",
    ),
    ("complete", "Confirm that it took place, with the quantity used (its provider)"),
    ("no_show", "Record that the requester did not come (its provider)"),
]:
    router.add_api_route(
        f"/requests/{{request_id}}/{_action.replace('_', '-')}",
        _mover(_action),
        methods=["POST"],
        summary=_summary,
        responses={
            409: {"description": "Not allowed from the current state (allowed moves given)"}
        },
    )
