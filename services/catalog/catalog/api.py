"""The catalog's HTTP API: tokens and keys, the caller's pole, members and their clients."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Response, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from catalog import credentials
from catalog.members import (
    MemberLeaves,
    MemberOut,
    RegisterMember,
    UpdateMember,
    member_leaves,
    register_member,
    update_member,
)
from catalog.models import ApiClient, Member, Pole, ValuationReference
from catalog.poles import RecordReference, UpdatePole, record_reference, update_pole
from shared.auth import (
    CurrentPrincipal,
    Principal,
    Role,
    require_acting_for,
    require_coordinator,
    require_writer,
)
from shared.contracts.catalog import ExchangeRules
from shared.db import utcnow
from shared.errors import Conflict, NotFound, Unauthorized
from shared.http import RuntimeDep
from shared.limits import Day
from shared.pagination import Page, PageRequest, encode_cursor, page_request
from shared.versioning import IfMatch, check_if_match, set_etag

router = APIRouter()
_basic = HTTPBasic(auto_error=False)


# --- tokens and keys -------------------------------------------------------------------


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


@router.post(
    "/oauth/token",
    tags=["auth"],
    summary="Get an access token (OAuth2 client credentials)",
    responses={401: {"description": "Unknown, wrong or revoked client (`error`: invalid_client)"}},
)
async def token(
    *,
    runtime: RuntimeDep,
    response: Response,
    grant_type: Annotated[str, Form(pattern="^client_credentials$")],
    client_id: Annotated[str | None, Form(max_length=100)] = None,
    client_secret: Annotated[str | None, Form(max_length=200)] = None,
    basic: Annotated[HTTPBasicCredentials | None, Depends(_basic)] = None,
) -> TokenOut:
    """Other form fields (``scope``, a ``role`` or ``pole`` of one's choosing…) are ignored, as
    OAuth 2 requires (RFC 6749 §3.2): the token says what the client is, nothing else."""
    if basic is not None:
        client_id, client_secret = basic.username, basic.password
    # Every 401 names how to authenticate (RFC 9110 §15.5.2; RFC 6749 §5.2).
    challenge = {"WWW-Authenticate": 'Basic realm="ptce"'}
    if not client_id or not client_secret:
        raise Unauthorized(
            "Client credentials are required (form fields or HTTP Basic).",
            extra={"error": "invalid_client"},
            headers=challenge,
        )
    try:
        async with runtime.session_factory() as session:
            access_token, ttl = await credentials.issue_token(
                session, runtime.settings, client_id, client_secret
            )
    except Unauthorized as exc:
        exc.headers = challenge
        raise
    response.headers["Cache-Control"] = "no-store"
    return TokenOut(access_token=access_token, expires_in=ttl)


@router.get("/.well-known/jwks.json", tags=["auth"], summary="Public keys of the access tokens")
async def jwks(runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.session_factory() as session:
        return await credentials.public_keys(session)


# --- the caller's pole -----------------------------------------------------------------


class PoleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    territory: str
    time_zone: str
    currency: str
    exchange_rules: ExchangeRules
    version: int


async def _pole(session: Any, principal: Principal, *, lock: bool = False) -> Pole:
    statement = select(Pole).where(col(Pole.id) == principal.pole_id)
    if lock:
        statement = statement.with_for_update()
    pole: Pole | None = (await session.scalars(statement)).first()
    if pole is None:
        raise NotFound("No such pole.")
    return pole


@router.get("/pole", tags=["poles"], summary="The caller's pole and its settings")
async def get_pole(runtime: RuntimeDep, principal: CurrentPrincipal, response: Response) -> PoleOut:
    async with runtime.session_factory() as session:
        pole = await _pole(session, principal)
    set_etag(response, pole.version)
    return PoleOut.model_validate(pole)


@router.patch(
    "/pole",
    tags=["poles"],
    summary="Change the pole's name, territory, time zone or exchange rules (coordinator)",
    responses={
        403: {"description": "Not the coordinator"},
        412: {"description": "If-Match does not name the current version"},
    },
)
async def patch_pole(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    body: UpdatePole,
    response: Response,
    if_match: IfMatch = None,
) -> PoleOut:
    require_coordinator(principal)
    async with runtime.uow() as uow:
        pole = await _pole(uow.session, principal, lock=True)
        check_if_match(pole.version, if_match)
        update_pole(uow, pole, body)
        await uow.commit()
    set_etag(response, pole.version)
    return PoleOut.model_validate(pole)


class ReferenceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    label: str
    amount: Decimal
    unit: str
    valid_from: date
    recorded_at: datetime


@router.get(
    "/pole/references",
    tags=["poles"],
    summary="The pole's valuation references: their history, or those in effect on a date",
)
async def list_references(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    on: Annotated[Day | None, Query(description="Only the values in effect on this date.")] = None,
) -> list[ReferenceOut]:
    statement = select(ValuationReference).where(
        col(ValuationReference.pole_id) == principal.pole_id
    )
    if on is not None:
        statement = (
            statement.where(col(ValuationReference.valid_from) <= on)
            .ext(distinct_on(col(ValuationReference.code)))
            .order_by(col(ValuationReference.code), col(ValuationReference.valid_from).desc())
        )
    else:
        statement = statement.order_by(
            col(ValuationReference.code), col(ValuationReference.valid_from)
        )
    async with runtime.session_factory() as session:
        references = (await session.scalars(statement)).all()
    return [ReferenceOut.model_validate(r) for r in references]


@router.post(
    "/pole/references",
    tags=["poles"],
    status_code=status.HTTP_201_CREATED,
    summary="Record a reference's value from a date on (coordinator); never changes the past",
    responses={
        403: {"description": "Not the coordinator"},
        409: {"description": "A value of this reference already starts on or after it"},
    },
)
async def post_reference(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: RecordReference
) -> ReferenceOut:
    require_coordinator(principal)
    async with runtime.uow() as uow:
        pole = await _pole(uow.session, principal, lock=True)
        reference = await record_reference(uow, pole, body)
        await uow.commit()
    return ReferenceOut.model_validate(reference)


# --- members ---------------------------------------------------------------------------


async def member_of_pole(
    session: Any, principal: Principal, member_id: uuid.UUID, *, lock: bool = False
) -> Member:
    statement = select(Member).where(
        col(Member.id) == member_id, col(Member.pole_id) == principal.pole_id
    )
    if lock:
        statement = statement.with_for_update()
    member: Member | None = (await session.scalars(statement)).first()
    if member is None:
        # Another pole's member is as unknown as one that does not exist.
        raise NotFound("No such member in your pole.")
    return member


@router.post(
    "/members",
    tags=["members"],
    status_code=status.HTTP_201_CREATED,
    summary="Onboard a member (coordinator)",
    responses={
        403: {"description": "Not the coordinator"},
        409: {"description": "A member with this SIRET is already in the pole"},
    },
)
async def create_member(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: RegisterMember, response: Response
) -> MemberOut:
    require_coordinator(principal)
    try:
        member = await register_member(runtime.uow(), principal.pole_id, body)
    except IntegrityError as exc:
        raise Conflict("A member with this SIRET is already in the pole.") from exc
    set_etag(response, member.version)
    response.headers["Location"] = f"/members/{member.id}"
    return MemberOut.model_validate(member)


@router.get("/members", tags=["members"], summary="The members of the caller's pole")
async def list_members(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    page: Annotated[PageRequest, Depends(page_request)],
    include_left: bool = False,
) -> Page[MemberOut]:
    statement = select(Member).where(col(Member.pole_id) == principal.pole_id)
    if not include_left:
        statement = statement.where(col(Member.left_on).is_(None))
    if page.after is not None:
        name, last_id = page.after
        statement = statement.where(
            tuple_(col(Member.legal_name), col(Member.id)) > tuple_(str(name), last_id)
        )
    statement = statement.order_by(col(Member.legal_name), col(Member.id)).limit(page.limit + 1)
    async with runtime.session_factory() as session:
        rows = list((await session.scalars(statement)).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page(
        items=[MemberOut.model_validate(m) for m in rows],
        next_cursor=encode_cursor(rows[-1].legal_name, rows[-1].id) if more else None,
    )


@router.get(
    "/members/{member_id}",
    tags=["members"],
    summary="One member of the caller's pole",
    responses={404: {"description": "No such member in your pole"}},
)
async def get_member(
    runtime: RuntimeDep, principal: CurrentPrincipal, member_id: uuid.UUID, response: Response
) -> MemberOut:
    async with runtime.session_factory() as session:
        member = await member_of_pole(session, principal, member_id)
    set_etag(response, member.version)
    return MemberOut.model_validate(member)


@router.patch(
    "/members/{member_id}",
    tags=["members"],
    summary="Change a member's details (the member itself or the coordinator)",
    responses={
        403: {"description": "An auditor, or another member"},
        404: {"description": "No such member in your pole"},
        409: {"description": "The member left the pole"},
        412: {"description": "If-Match does not name the current version"},
    },
)
async def patch_member(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    member_id: uuid.UUID,
    body: UpdateMember,
    response: Response,
    if_match: IfMatch = None,
) -> MemberOut:
    async with runtime.uow() as uow:
        member = await member_of_pole(uow.session, principal, member_id, lock=True)
        require_writer(principal)
        require_acting_for(principal, member.id)
        check_if_match(member.version, if_match)
        update_member(uow, member, body)
        await uow.commit()
    set_etag(response, member.version)
    return MemberOut.model_validate(member)


@router.post(
    "/members/{member_id}/leave",
    tags=["members"],
    summary="Record that a member left the pole (coordinator)",
    responses={
        403: {"description": "Not the coordinator"},
        404: {"description": "No such member in your pole"},
        409: {"description": "The member already left, or would leave before it joined"},
    },
)
async def leave(
    runtime: RuntimeDep, principal: CurrentPrincipal, member_id: uuid.UUID, body: MemberLeaves
) -> MemberOut:
    async with runtime.uow() as uow:
        member = await member_of_pole(uow.session, principal, member_id, lock=True)
        require_coordinator(principal)
        member_leaves(uow, member, body)
        await uow.commit()
    return MemberOut.model_validate(member)


# --- API clients -----------------------------------------------------------------------


class NewClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)
    role: Role = Role.member


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    member_id: uuid.UUID
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


class ClientWithSecret(ClientOut):
    client_secret: str = Field(description="Shown this once; only its hash is kept.")


@router.post(
    "/members/{member_id}/clients",
    tags=["credentials"],
    status_code=status.HTTP_201_CREATED,
    summary="Create an API client for a member; its secret is shown once",
    responses={
        403: {"description": "An auditor, another member, or a role only the coordinator gives"},
        404: {"description": "No such member in your pole"},
        409: {"description": "The member left the pole"},
    },
)
async def create_client(
    runtime: RuntimeDep, principal: CurrentPrincipal, member_id: uuid.UUID, body: NewClient
) -> ClientWithSecret:
    async with runtime.uow() as uow:
        member = await member_of_pole(uow.session, principal, member_id)
        require_writer(principal)
        require_acting_for(principal, member.id)
        if body.role is not Role.member:
            require_coordinator(principal)
        if member.left_on is not None:
            raise Conflict("This member left the pole.")
        issued = credentials.new_client(member, role=body.role, label=body.label)
        uow.session.add(issued.client)
        await uow.commit()
        return ClientWithSecret(
            **ClientOut.model_validate(issued.client).model_dump(), client_secret=issued.secret
        )


@router.get(
    "/members/{member_id}/clients",
    tags=["credentials"],
    summary="A member's API clients",
    responses={
        403: {"description": "Another member's (for a member)"},
        404: {"description": "No such member in your pole"},
    },
)
async def list_clients(
    runtime: RuntimeDep, principal: CurrentPrincipal, member_id: uuid.UUID
) -> list[ClientOut]:
    async with runtime.session_factory() as session:
        member = await member_of_pole(session, principal, member_id)
        if principal.role is Role.member:
            require_acting_for(principal, member.id)
        clients = await session.scalars(
            select(ApiClient)
            .where(col(ApiClient.member_id) == member.id)
            .order_by(col(ApiClient.created_at))
        )
        return [ClientOut.model_validate(c) for c in clients]


@router.delete(
    "/clients/{client_id}",
    tags=["credentials"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API client: it gets no more tokens, and the catalog refuses its tokens now",
    responses={
        403: {"description": "An auditor, or another member's client"},
        404: {"description": "No such client in your pole"},
    },
)
async def revoke_client(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    client_id: Annotated[str, Path(max_length=100)],
) -> Response:
    async with runtime.uow() as uow:
        client = (
            await uow.session.scalars(
                select(ApiClient)
                .where(col(ApiClient.id) == client_id, col(ApiClient.pole_id) == principal.pole_id)
                .with_for_update()
            )
        ).first()
        if client is None:
            raise NotFound("No such client in your pole.")
        require_writer(principal)
        require_acting_for(principal, client.member_id)
        if client.revoked_at is None:
            client.revoked_at = utcnow()
        await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
