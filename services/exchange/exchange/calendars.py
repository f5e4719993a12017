"""iCalendar feeds (RFC 5545) of bookings, at secret, revocable URLs.

A member makes a feed of the bookings of one of its own offers (the coordinator: of any offer
of its pole), or of all the bookings it is a party to, as provider or requester. Calendar
clients cannot send a bearer token, so the feed's URL carries the credential: a random token,
shown once and stored as its SHA-256, like API client secrets. Revoking a feed, or the member
leaving the pole, makes its URL answer 404.

A feed holds the bookings with a period that hold their slot (``requested``: TENTATIVE;
``accepted``, ``completed``, ``no_show``: CONFIRMED) and the cancelled ones (CANCELLED, so that
calendar clients remove them), whose period ended less than :data:`HISTORY` ago, at most
:data:`MAX_EVENTS` of them (the earliest). Times are in the pole's time zone, with its
VTIMEZONE. A request's message is shown only in the feeds of its parties.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Path, Response, status
from icalendar import Calendar, Event
from icalendar.enums import STATUS
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from exchange.models import booking_request, calendar_feed, member, offer
from exchange.requests import pole_of
from shared.auth import CurrentPrincipal, Principal, require_writer
from shared.db import utcnow
from shared.errors import Forbidden, NotFound, Problem
from shared.http import RuntimeDep
from shared.pagination import Page, PageRequest, encode_cursor, page_request

router = APIRouter(tags=["calendars"])

FEED_PATH = "/calendars/{token}.ics"
HISTORY = timedelta(days=90)
MAX_EVENTS = 2000
CACHE_CONTROL = "private, max-age=300"
CALENDAR_MEDIA_TYPE = "text/calendar; charset=utf-8"
PRODID = "-//PTCE//exchange calendar feeds//FR"
UID_DOMAIN = "ptce-exchange"

EVENT_STATUS: dict[str, STATUS] = {
    "requested": STATUS.TENTATIVE,
    "accepted": STATUS.CONFIRMED,
    "completed": STATUS.CONFIRMED,
    "no_show": STATUS.CONFIRMED,
    "cancelled": STATUS.CANCELLED,
}


class NewFeed(BaseModel):
    """A feed of one offer's bookings, or (``offer_id`` null) of all the caller's bookings."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID | None = Field(
        default=None,
        description="One of your offers (any of the pole's: coordinator); null: all your bookings.",
    )
    label: str = Field(min_length=1, max_length=200, description="The calendar's name.")


class FeedOut(BaseModel):
    id: uuid.UUID
    offer_id: uuid.UUID | None
    label: str
    created_at: datetime


class CreatedFeed(FeedOut):
    url: str = Field(description="The feed's secret URL path: shown only in this answer.")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _feed_out(row: Any) -> FeedOut:
    return FeedOut(id=row.id, offer_id=row.offer_id, label=row.label, created_at=row.created_at)


async def _check_offer_of_caller(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID
) -> None:
    """404 for an offer the caller may not see (another pole's, or another member's that is
    not published); 403 for one it sees but that is not its own."""
    found = (
        await session.execute(
            select(offer.c.owner_id, offer.c.state).where(
                offer.c.id == offer_id, offer.c.pole_id == principal.pole_id
            )
        )
    ).first()
    if found is None or (found.state != "published" and not principal.may_act_for(found.owner_id)):
        raise NotFound("No such offer in your pole.")
    if not principal.may_act_for(found.owner_id):
        raise Forbidden("A feed of an offer is for its owner (or the coordinator).")


@router.post(
    "/calendar-feeds",
    status_code=status.HTTP_201_CREATED,
    summary="Make a secret calendar URL of one of your offers' bookings, or of all yours",
    responses={
        403: {"model": Problem, "description": "An auditor's client; another member's offer"},
        404: {"model": Problem, "description": "No such offer in your pole"},
    },
)
async def create_feed(
    runtime: RuntimeDep, principal: CurrentPrincipal, body: NewFeed
) -> CreatedFeed:
    require_writer(principal)
    token = secrets.token_urlsafe(32)
    values = {
        "id": uuid.uuid4(),
        "pole_id": principal.pole_id,
        "member_id": principal.member_id,
        "offer_id": body.offer_id,
        "label": body.label,
        "token_hash": hash_token(token),
        "created_at": utcnow(),
    }
    async with runtime.uow() as uow:
        if body.offer_id is not None:
            await _check_offer_of_caller(uow.session, principal, body.offer_id)
        await uow.session.execute(insert(calendar_feed).values(**values))
        await uow.commit()
    return CreatedFeed(
        id=values["id"],
        offer_id=body.offer_id,
        label=body.label,
        created_at=values["created_at"],
        url=FEED_PATH.format(token=token),
    )


@router.get("/calendar-feeds", summary="Your calendar feeds not revoked (without their URL)")
async def list_feeds(
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    page: Annotated[PageRequest, Depends(page_request)],
) -> Page[FeedOut]:
    statement = select(calendar_feed).where(
        calendar_feed.c.pole_id == principal.pole_id,
        calendar_feed.c.member_id == principal.member_id,
        calendar_feed.c.revoked_at.is_(None),
    )
    after = page.after_as(datetime.fromisoformat)
    if after is not None:
        statement = statement.where(
            tuple_(calendar_feed.c.created_at, calendar_feed.c.id) > tuple_(*after)
        )
    statement = statement.order_by(calendar_feed.c.created_at, calendar_feed.c.id)
    async with runtime.session_factory() as session:
        rows = list((await session.execute(statement.limit(page.limit + 1))).all())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return Page(
        items=[_feed_out(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None,
    )


@router.delete(
    "/calendar-feeds/{feed_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke a calendar feed: its URL answers 404 from now on",
    responses={404: {"model": Problem, "description": "No such feed of yours (or revoked)"}},
)
async def revoke_feed(
    runtime: RuntimeDep, principal: CurrentPrincipal, feed_id: uuid.UUID
) -> Response:
    require_writer(principal)
    statement = update(calendar_feed).where(
        calendar_feed.c.id == feed_id,
        calendar_feed.c.pole_id == principal.pole_id,
        calendar_feed.c.revoked_at.is_(None),
    )
    if not principal.is_coordinator:
        statement = statement.where(calendar_feed.c.member_id == principal.member_id)
    async with runtime.uow() as uow:
        revoked = await uow.session.execute(
            statement.values(revoked_at=utcnow()).returning(calendar_feed.c.id)
        )
        if revoked.first() is None:
            raise NotFound("No such calendar feed of yours in your pole.")
        await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _live_feed(session: AsyncSession, token: str) -> Any:
    found = (
        await session.execute(
            select(calendar_feed, member.c.left_on)
            .outerjoin(member, member.c.id == calendar_feed.c.member_id)
            .where(
                calendar_feed.c.token_hash == hash_token(token),
                calendar_feed.c.revoked_at.is_(None),
            )
        )
    ).first()
    if found is None or found.left_on is not None:
        raise NotFound("No such calendar feed.")
    return found


async def _feed_bookings(session: AsyncSession, feed: Any, *, ended_after: datetime) -> list[Any]:
    statement = (
        select(booking_request, offer.c.title)
        .join(
            offer,
            (offer.c.id == booking_request.c.offer_id) & (offer.c.pole_id == feed.pole_id),
        )
        .where(
            booking_request.c.pole_id == feed.pole_id,
            booking_request.c.period.is_not(None),
            booking_request.c.state.in_(EVENT_STATUS),
            func.upper(booking_request.c.period) > ended_after,
        )
        .order_by(func.lower(booking_request.c.period), booking_request.c.id)
        .limit(MAX_EVENTS)
    )
    if feed.offer_id is not None:
        statement = statement.where(booking_request.c.offer_id == feed.offer_id)
    else:
        statement = statement.where(
            or_(
                booking_request.c.provider_id == feed.member_id,
                booking_request.c.requester_id == feed.member_id,
            )
        )
    return list((await session.execute(statement)).all())


def render_feed(feed: Any, bookings: Sequence[Any], zone: ZoneInfo) -> bytes:
    calendar = Calendar.new(
        prodid=PRODID,
        name=feed.label,
        calscale="GREGORIAN",
        method="PUBLISH",
        uid=f"{feed.id}@{UID_DOMAIN}",
    )
    for booking in bookings:
        is_party = feed.member_id in (booking.provider_id, booking.requester_id)
        calendar.add_component(
            Event.new(
                uid=f"{booking.id}@{UID_DOMAIN}",
                stamp=booking.updated_at.astimezone(UTC),
                sequence=booking.version,
                summary=f"{booking.title} ({booking.state.replace('_', ' ')})",
                start=booking.period.lower.astimezone(zone),
                end=booking.period.upper.astimezone(zone),
                status=EVENT_STATUS[booking.state],
                description=(booking.message or None) if is_party else None,
            )
        )
    if bookings:
        # The VTIMEZONE covers the events' dates only: by default it would list every
        # transition from 1970 to 2038, in every answer.
        calendar.add_missing_timezones(
            first_date=min(b.period.lower for b in bookings).astimezone(zone).date()
            - timedelta(days=1),
            last_date=max(b.period.upper for b in bookings).astimezone(zone).date()
            + timedelta(days=1),
        )
    ical: bytes = calendar.to_ical()
    return ical


def _matches(if_none_match: str | None, tag: str) -> bool:
    if if_none_match is None:
        return False
    candidates = {candidate.strip().removeprefix("W/") for candidate in if_none_match.split(",")}
    return tag in candidates or "*" in candidates


@router.get(
    FEED_PATH,
    response_class=Response,
    summary="A calendar feed (public: its secret URL is the credential)",
    responses={
        200: {"content": {"text/calendar": {}}, "description": "The bookings as iCalendar"},
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
        404: {"model": Problem, "description": "Unknown or revoked feed"},
    },
)
async def read_feed(
    runtime: RuntimeDep,
    token: Annotated[str, Path(max_length=100)],
    if_none_match: Annotated[str | None, Header(max_length=1000)] = None,
) -> Response:
    async with runtime.session_factory() as session:
        feed = await _live_feed(session, token)
        time_zone = (await pole_of(session, feed.pole_id)).time_zone
        bookings = await _feed_bookings(session, feed, ended_after=utcnow() - HISTORY)
    body = render_feed(feed, bookings, ZoneInfo(time_zone))
    tag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": tag}
    if _matches(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=CALENDAR_MEDIA_TYPE, headers=headers)
