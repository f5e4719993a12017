"""The catalog's offers API: write (owner or coordinator), life cycle, search."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from catalog.api import member_of_pole
from catalog.models import Offer
from catalog.offers import (
    BookingMode,
    CreateOffer,
    Kind,
    OfferOut,
    State,
    UpdateOffer,
    move,
    new_offer,
    update_offer,
)
from shared.auth import CurrentPrincipal, Principal, Role, require_acting_for, require_writer
from shared.errors import Forbidden, NotFound, UnprocessableEntity
from shared.http import RuntimeDep
from shared.pagination import Page, PageRequest, encode_cursor, page_request
from shared.versioning import IfMatch, check_if_match, set_etag

router = APIRouter(tags=["offers"])
# The generated column (migration 0003) and the text search configuration it is built with.
SEARCH_VECTOR = literal_column("offer.search", type_=TSVECTOR)
INSEE_CODE = re.compile(r"(?:[0-9]{2}|2A|2B)[0-9]{3}")
SEARCH_CONFIG = literal_column("'ptce_french'::regconfig", type_=REGCONFIG)


def _may_see_unpublished(principal: Principal, offer: Offer) -> bool:
    return (
        principal.role in (Role.coordinator, Role.auditor) or principal.member_id == offer.owner_id
    )


async def _offer_of_pole(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, *, lock: bool = False
) -> Offer:
    statement = select(Offer).where(
        col(Offer.id) == offer_id, col(Offer.pole_id) == principal.pole_id
    )
    if lock:
        statement = statement.with_for_update()
    offer: Offer | None = (await session.scalars(statement)).first()
    if offer is None or (
        offer.state != State.published and not _may_see_unpublished(principal, offer)
    ):
        raise NotFound("No such offer in your pole.")
    return offer


def _out(offer: Offer, response: Response) -> OfferOut:
    set_etag(response, offer.version)
    return OfferOut.model_validate(offer)


@router.post(
    "/offers",
    status_code=status.HTTP_201_CREATED,
    summary="Create an offer, as a draft (its owner, or the coordinator on a member's behalf)",
    responses={
        403: {"description": "An auditor, another member's behalf, or a member that left"},
        404: {"description": "No such member (owner_id) in your pole"},
    },
)
async def create_offer(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: CreateOffer, response: Response
) -> OfferOut:
    require_writer(principal)
    async with runtime.uow() as uow:
        # Another pole's member is unknown (404) before anything is said of acting for it.
        owner = await member_of_pole(uow.session, principal, body.owner_id or principal.member_id)
        require_acting_for(principal, owner.id)
        if owner.left_on is not None:
            raise Forbidden("A member that left the pole cannot offer anything.")
        offer = new_offer(principal.pole_id, owner.id, body)
        await _check_employer(uow.session, principal, offer)
        uow.session.add(offer)
        await uow.commit()
    response.headers["Location"] = f"/offers/{offer.id}"
    return _out(offer, response)


async def _check_employer(session: AsyncSession, principal: Principal, offer: Offer) -> None:
    if offer.kind != Kind.staff_time or not offer.attributes:
        return
    employer = uuid.UUID(str(offer.attributes["employer_member_id"]))
    try:
        await member_of_pole(session, principal, employer)
    except NotFound as exc:
        raise UnprocessableEntity(
            "The employer of record must be a member of the pole.",
            invalid_params=[
                {"name": "body.attributes.employer_member_id", "reason": "not a member of the pole"}
            ],
        ) from exc


@router.get(
    "/offers/{offer_id}",
    summary="One offer (drafts: only to its owner, coordinator, auditor)",
    responses={404: {"description": "No such offer in your pole (for you to see)"}},
)
async def get_offer(
    runtime: RuntimeDep, principal: CurrentPrincipal, offer_id: uuid.UUID, response: Response
) -> OfferOut:
    async with runtime.session_factory() as session:
        offer = await _offer_of_pole(session, principal, offer_id)
    return _out(offer, response)


@router.patch(
    "/offers/{offer_id}",
    summary="Change an offer; If-Match with its ETag is required",
    responses={
        403: {"description": "An auditor, or another member's offer"},
        404: {"description": "No such offer in your pole (for you to see)"},
        409: {"description": "The offer is archived"},
        412: {"description": "The offer changed since that ETag"},
        428: {"description": "If-Match missing"},
    },
)
async def patch_offer(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    offer_id: uuid.UUID,
    body: UpdateOffer,
    response: Response,
    if_match: IfMatch = None,
) -> OfferOut:
    async with runtime.uow() as uow:
        offer = await _offer_of_pole(uow.session, principal, offer_id, lock=True)
        require_writer(principal)
        require_acting_for(principal, offer.owner_id)
        check_if_match(offer.version, if_match, required=True)
        update_offer(uow, offer, body)
        await _check_employer(uow.session, principal, offer)
        await uow.commit()
    return _out(offer, response)


def _mover(action: str) -> Any:
    async def change_state(
        *,
        runtime: RuntimeDep,
        principal: CurrentPrincipal,
        offer_id: uuid.UUID,
        response: Response,
        if_match: IfMatch = None,
    ) -> OfferOut:
        async with runtime.uow() as uow:
            offer = await _offer_of_pole(uow.session, principal, offer_id, lock=True)
            require_writer(principal)
            require_acting_for(principal, offer.owner_id)
            check_if_match(offer.version, if_match)
            move(uow, offer, action)
            await uow.commit()
        return _out(offer, response)

    return change_state


for _action, _summary in [
    ("publish", "Publish a draft or paused offer (it must be complete)"),
    ("pause", "Stop taking requests for now"),
    ("archive", "Withdraw an offer for good"),
]:
    router.add_api_route(
        f"/offers/{{offer_id}}/{_action}",
        _mover(_action),
        methods=["POST"],
        summary=_summary,
        responses={
            403: {"description": "An auditor, or another member's offer"},
            404: {"description": "No such offer in your pole (for you to see)"},
            409: {"description": "Not allowed from the current state (allowed moves given)"},
            412: {"description": "If-Match does not name the current version"},
        },
    )


# --- search ------------------------------------------------------------------------------


class Sort(StrEnum):
    relevance = "relevance"
    price = "price"
    newest = "newest"
    alphabetical = "title"


class OfferSearch:
    """Query parameters of the search (a FastAPI dependency)."""

    def __init__(
        self,
        *,
        q: Annotated[
            str | None, Query(max_length=200, description="French full-text query.")
        ] = None,
        kind: Kind | None = None,
        commune: Annotated[
            str | None, Query(max_length=200, description="Commune name or INSEE code.")
        ] = None,
        owner_id: uuid.UUID | None = None,
        max_price: Annotated[Decimal | None, Query(ge=0, le=10_000_000, decimal_places=2)] = None,
        booking_mode: BookingMode | None = None,
        min_capacity: Annotated[int | None, Query(ge=1, le=10_000)] = None,
        sort: Sort | None = None,
    ) -> None:
        self.q = q.strip() if q and q.strip() else None
        self.kind = kind
        self.commune = commune
        self.owner_id = owner_id
        self.max_price = max_price
        self.booking_mode = booking_mode
        self.min_capacity = min_capacity
        self.sort = sort or (Sort.relevance if self.q else Sort.alphabetical)
        if self.sort is Sort.relevance and self.q is None:
            raise UnprocessableEntity(
                "Sorting by relevance needs a query.",
                invalid_params=[{"name": "query.sort", "reason": "relevance needs q"}],
            )


def _sort_key(search: OfferSearch, query: Any) -> ColumnElement[Any]:
    match search.sort:
        case Sort.relevance:
            # Negated so that every sort is ascending, which keeps the cursor logic single.
            return -cast(func.ts_rank(SEARCH_VECTOR, query), Float)
        case Sort.price:
            return func.coalesce(col(Offer.internal_price), literal(Decimal(0)))
        case Sort.newest:
            return -func.extract("epoch", col(Offer.published_at))
        case Sort.alphabetical:
            return func.lower(col(Offer.title))


def text_query(q: str) -> ColumnElement[Any]:
    """The tsquery of a user's search: web-search syntax, or every word as a prefix.

    The French Snowball stemmer leaves some plurals alone ("vélos" stays "velos"), so the
    prefix form lets "vélo" find "vélos"; accents and case are handled by ``ptce_french``.
    """
    exact = func.websearch_to_tsquery(SEARCH_CONFIG, q)
    words = re.findall(r"\w+", q)
    if not words:
        return exact
    prefixes = func.to_tsquery(SEARCH_CONFIG, " & ".join(f"{word}:*" for word in words))
    return exact.op("||")(prefixes)


def search_statement(principal: Principal, search: OfferSearch, page: PageRequest) -> Select[Any]:
    """The published offers of the caller's pole matching ``search``, one page of them."""
    query = text_query(search.q or "")
    conditions: list[ColumnElement[bool]] = [
        col(Offer.pole_id) == principal.pole_id,
        col(Offer.state) == State.published.value,
    ]
    if search.q:
        conditions.append(SEARCH_VECTOR.op("@@")(query))
    if search.kind:
        conditions.append(col(Offer.kind) == search.kind.value)
    if search.commune and INSEE_CODE.fullmatch(search.commune.strip().upper()):
        conditions.append(col(Offer.insee_code) == search.commune.strip().upper())
    elif search.commune:
        conditions.append(func.ptce_fold(col(Offer.commune)) == func.ptce_fold(search.commune))
    if search.owner_id:
        conditions.append(col(Offer.owner_id) == search.owner_id)
    if search.max_price is not None:
        conditions.append(col(Offer.internal_price) <= search.max_price)
    if search.booking_mode:
        conditions.append(col(Offer.booking_mode) == search.booking_mode.value)
    if search.min_capacity:
        conditions.append(col(Offer.capacity) >= search.min_capacity)
    key = _sort_key(search, query).label("sort_key")
    statement = select(Offer, key).where(and_(*conditions))
    if page.after is not None:
        after_id = page.after[1]
        after_key = _typed_key(search.sort, page.after[0])
        statement = statement.where(
            or_(
                key.element > literal(after_key),
                and_(key.element == literal(after_key), col(Offer.id) > after_id),
            )
        )
    return statement.order_by(key.element, col(Offer.id)).limit(page.limit + 1)


async def run_search(
    session: AsyncSession, principal: Principal, search: OfferSearch, page: PageRequest
) -> list[tuple[Offer, Any]]:
    """One page of the search, as (offer, sort key) rows."""
    # asyncpg prepares statements; after five runs PostgreSQL may switch to a generic plan,
    # made without the values, which for this query ignores the pole/kind/price index and
    # was measured 1.5-2x slower (bench/catalog_search.py). Plan each search with its values.
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    result = await session.execute(search_statement(principal, search, page))
    return [(offer, key) for offer, key in result.all()]


@router.get("/offers", summary="Search the published offers of the caller's pole")
async def search_offers(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    search: Annotated[OfferSearch, Depends()],
    page: Annotated[PageRequest, Depends(page_request)],
) -> Page[OfferOut]:
    async with runtime.session_factory() as session:
        rows = await run_search(session, principal, search, page)
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    next_cursor = None
    if more:
        last_offer, last_key = rows[-1]
        next_cursor = encode_cursor(_plain(last_key), last_offer.id)
    return Page(
        items=[OfferOut.model_validate(offer) for offer, _ in rows], next_cursor=next_cursor
    )


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _typed_key(sort: Sort, value: Any) -> Any:
    """The cursor's sort value back in the type its column compares with."""
    try:
        match sort:
            case Sort.relevance:
                return float(value)
            case Sort.price | Sort.newest:
                return Decimal(str(value))
            case Sort.alphabetical:
                return str(value)
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise UnprocessableEntity(
            "The cursor does not belong to this sort.",
            invalid_params=[{"name": "query.cursor", "reason": "not from this sort"}],
        ) from exc


@router.get(
    "/members/{member_id}/offers",
    summary="A member's offers in every state (published only, to other members)",
    responses={404: {"description": "No such member in your pole"}},
)
async def member_offers(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    member_id: uuid.UUID,
    page: Annotated[PageRequest, Depends(page_request)],
) -> Page[OfferOut]:
    async with runtime.session_factory() as session:
        member = await member_of_pole(session, principal, member_id)
        statement = select(Offer).where(col(Offer.owner_id) == member.id)
        sees_all = principal.role in (Role.coordinator, Role.auditor) or (
            principal.member_id == member.id
        )
        if not sees_all:
            statement = statement.where(col(Offer.state) == State.published.value)
        if page.after is not None:
            statement = statement.where(col(Offer.id) > page.after[1])
        offers = list(
            (await session.scalars(statement.order_by(col(Offer.id)).limit(page.limit + 1))).all()
        )
    more = len(offers) > page.limit
    offers = offers[: page.limit]
    return Page(
        items=[OfferOut.model_validate(o) for o in offers],
        next_cursor=encode_cursor(0, offers[-1].id) if more else None,
    )
