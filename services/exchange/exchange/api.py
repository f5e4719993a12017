"""The exchange's HTTP API: requests between members and their life cycle."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select, tuple_

from exchange.models import booking_request
from exchange.models import idempotency_key as idempotency_table
from exchange.requests import (
    CancelSeries,
    MoveBody,
    NewRequest,
    NewSeries,
    book,
    cancel_series,
    create_request,
    create_series,
    move,
    object_to_completion,
    request_fields,
    request_of_pole,
    series_rows,
)
from shared.auth import CurrentPrincipal, Principal, Role
from shared.contracts.exchange import FrozenTerms
from shared.http import RuntimeDep
from shared.idempotency import IdempotencyKey, claim, fingerprint, remember
from shared.pagination import Page, PageRequest, encode_cursor, page_request
from shared.runtime import ServiceRuntime
from shared.uow import ConnectionUnitOfWork
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
    fee_percent: int | None = Field(
        description="A late cancellation's or a no-show's share of the booked price owed to "
        "the provider, by the pole's rule when it was recorded."
    )
    quantity_used: Decimal | None
    terms: FrozenTerms | None
    series_id: uuid.UUID | None
    objection: str | None
    answer_by: datetime | None = Field(description="A pending request expires then.")
    version: int
    created_at: datetime


def request_answer(row: Any, response: Response | None = None) -> RequestOut:
    if response is not None:
        set_etag(response, row.version)
    return RequestOut(
        id=row.id,
        message=row.message,
        answer_by=row.answer_by if row.state == "requested" else None,
        created_at=row.created_at,
        **request_fields(row),
    )


async def _idempotent_create(
    runtime: ServiceRuntime,
    principal: Principal,
    *,
    idempotency_key: str | None,
    route: str,
    body: BaseModel,
    create: Callable[[ConnectionUnitOfWork], Awaitable[str]],
) -> str:
    """Run ``create`` (which answers a JSON body) once per ``Idempotency-Key``: a retry gets
    the first answer's bytes; without a key, every call creates. A unit of work on a Core
    connection: what creates runs Core statements only."""
    async with runtime.connection_uow() as uow:
        if idempotency_key is not None:
            request_fingerprint = fingerprint(route, body.model_dump_json())
            replay = await claim(
                uow.connection,
                idempotency_table,
                client_id=principal.client_id,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
            )
            if replay is not None:
                return replay.body
        answer_json = await create(uow)
        if idempotency_key is not None:
            await remember(
                uow.connection,
                idempotency_table,
                client_id=principal.client_id,
                key=idempotency_key,
                status=201,
                body=answer_json,
            )
        await uow.commit()
    return answer_json


@router.post(
    "/requests",
    status_code=status.HTTP_201_CREATED,
    response_model=RequestOut,
    summary="Request another member's offer (accepted at once if it books instantly)",
    responses={
        403: {"description": "An auditor's client"},
        404: {"description": "No such offer in your pole"},
        409: {"description": "Not available: the conflicting period is named"},
    },
)
async def post_request(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    body: NewRequest,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if idempotency_key is None:
        row = await book(runtime, principal, body)
        return _created(
            request_answer(row).model_dump_json(), f"/requests/{row.id}", etag(row.version)
        )

    async def create(uow: ConnectionUnitOfWork) -> str:
        return request_answer(await create_request(uow, principal, body)).model_dump_json()

    answer_json = await _idempotent_create(
        runtime,
        principal,
        idempotency_key=idempotency_key,
        route="POST /requests",
        body=body,
        create=create,
    )
    answer = json.loads(answer_json)  # fresh or replayed: its id and version, not revalidated
    return _created(answer_json, f"/requests/{answer['id']}", etag(answer["version"]))


def _created(answer_json: str, location: str, entity_tag: str | None = None) -> Response:
    headers = {"Location": location}
    if entity_tag is not None:
        headers["ETag"] = entity_tag
    return Response(
        answer_json,
        status_code=status.HTTP_201_CREATED,
        media_type="application/json",
        headers=headers,
    )


class OccurrenceConflict(BaseModel):
    start: datetime
    end: datetime
    detail: str
    conflicting_period: dict[str, datetime] | None = None


class SeriesOut(BaseModel):
    series_id: uuid.UUID
    booked: list[RequestOut] = Field(description="Occurrences booked, in order.")
    conflicts: list[OccurrenceConflict] = Field(
        description="Occurrences that could not be booked, and why (partial series only)."
    )


@router.post(
    "/series",
    status_code=status.HTTP_201_CREATED,
    response_model=SeriesOut,
    summary="Book a period every week (all or nothing, or partial: the caller's choice)",
    responses={
        403: {"description": "An auditor's client"},
        404: {"description": "No such offer in your pole"},
        409: {"description": "Occurrences cannot be booked (all or nothing): they are listed"},
    },
)
async def post_series(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    body: NewSeries,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def create(uow: ConnectionUnitOfWork) -> str:
        outcome = await create_series(uow, principal, body)
        return SeriesOut(
            series_id=outcome.series_id,
            booked=[request_answer(row) for row in outcome.booked],
            conflicts=[OccurrenceConflict.model_validate(c) for c in outcome.conflicts],
        ).model_dump_json()

    answer_json = await _idempotent_create(
        runtime,
        principal,
        idempotency_key=idempotency_key,
        route="POST /series",
        body=body,
        create=create,
    )
    series_id = json.loads(answer_json)["series_id"]
    return _created(answer_json, f"/series/{series_id}")


class SeriesState(BaseModel):
    series_id: uuid.UUID
    occurrences: list[RequestOut]


@router.get(
    "/series/{series_id}",
    summary="The occurrences of a weekly series",
    responses={404: {"description": "No such series for you in your pole"}},
)
async def get_series(
    runtime: RuntimeDep, principal: CurrentPrincipal, series_id: uuid.UUID
) -> SeriesState:
    async with runtime.session_factory() as session:
        rows = await series_rows(session, principal, series_id)
    return SeriesState(series_id=series_id, occurrences=[request_answer(row) for row in rows])


@router.post(
    "/series/{series_id}/cancel",
    summary="Cancel the rest of a series: its occurrences from a date on (now by default)",
    responses={
        403: {"description": "An auditor's client"},
        404: {"description": "No such series for you in your pole"},
    },
)
async def post_cancel_series(
    runtime: RuntimeDep, principal: CurrentPrincipal, series_id: uuid.UUID, body: CancelSeries
) -> SeriesState:
    async with runtime.uow() as uow:
        moved = await cancel_series(uow, principal, series_id, body)
        await uow.commit()
    return SeriesState(series_id=series_id, occurrences=[request_answer(row) for row in moved])


class Objection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=1000)


@router.post(
    "/requests/{request_id}/object",
    summary="Object to the automatic completion of a booking (either side)",
    responses={
        403: {"description": "An auditor's client"},
        404: {"description": "No such request for you in your pole"},
        409: {"description": "Not an accepted booking, or already objected to"},
    },
)
async def post_objection(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    request_id: uuid.UUID,
    body: Objection,
    response: Response,
) -> RequestOut:
    async with runtime.uow() as uow:
        row = await object_to_completion(uow, principal, request_id, body.reason)
        await uow.commit()
    return request_answer(row, response)


@router.get(
    "/requests/{request_id}",
    summary="A request the caller is a party to",
    responses={404: {"description": "No such request for you in your pole"}},
)
async def get_request(
    runtime: RuntimeDep, principal: CurrentPrincipal, request_id: uuid.UUID, response: Response
) -> RequestOut:
    async with runtime.session_factory() as session:
        row = await request_of_pole(session, principal, request_id)
    return request_answer(row, response)


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
    after = page.after_as(datetime.fromisoformat)
    if after is not None:
        statement = statement.where(
            tuple_(booking_request.c.created_at, booking_request.c.id) > tuple_(*after)
        )
    statement = statement.order_by(booking_request.c.created_at, booking_request.c.id)
    async with runtime.session_factory() as session:
        rows = list((await session.execute(statement.limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page(
        items=[request_answer(row) for row in rows],
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
        # No transaction: a move is one compare-and-set statement with its event.
        async with runtime.connection_uow(autocommit=True) as uow:
            row = await move(uow, principal, request_id, action, body or MoveBody())
        return request_answer(row, response)

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
            403: {"description": "Not the party that makes this move, or an auditor's client"},
            404: {"description": "No such request for you in your pole"},
            409: {"description": "Not allowed from the current state (allowed moves given)"},
        },
    )
