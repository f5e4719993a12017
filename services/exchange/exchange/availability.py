"""When offers are free: an offer's free periods over a range, and the offers free for a period.

The rules are those a request must pass (``exchange.requests``): opening hours and closures
in the pole's time zone, the notice, the booking length, the capacity against the holds
(``HOLDING_STATES``), the weekly cap of staff time. The pure functions first (rules and holds
in, periods out), then the queries and the routes.

- An offer's free periods are cut from its opening windows: one window of one local day is
  built from local wall-clock times with ``zoneinfo`` (09:00 stays 09:00 across a
  daylight-saving change), days in a closure are left out, then the instants where the holds
  use the whole capacity; each period carries the ``remaining`` capacity and is split where
  that changes. Periods are half-open ``[start, end)``: a booking ending at 10:00 leaves 10:00
  free. Each free period lies within one declared window, as a request on one day must.
- What starts before ``now + min_notice_hours`` is clipped out (``bookable_from``); a run of
  contiguous free time shorter than ``min_booking_minutes`` is left out, as it cannot be booked.
- A staff time with ``max_hours_per_week``: the hours left per week are given, and a week
  with too few hours left for the shortest booking has no free period.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate, pairwise
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from exchange.models import HOLDING_STATES, booking_request, offer
from exchange.requests import (
    EPSILON_HOURS,
    PERIOD_KINDS,
    check_period,
    closed_on,
    hours_by_week,
    peak_holds,
    pole_of,
    week_of,
    weekly_cap_exceeded,
)
from shared.auth import CurrentPrincipal
from shared.db import utcnow
from shared.errors import NotFound, UnprocessableEntity
from shared.http import RuntimeDep
from shared.limits import Instant
from shared.pagination import DEFAULT_LIMIT, Page, PageRequest, encode_cursor, page_request

MAX_RANGE = timedelta(days=92)
MAX_PAGE = 100
# Offers examined per query in the search; their holds come in one more query.
SEARCH_BATCH = 200
# Holds fetched around a range: enough to cover the ISO weeks the range touches.
WEEK_MARGIN = timedelta(days=8)

router = APIRouter(tags=["availability"])


# --- Pure: availability rules and holds in, periods out -------------------------------------


@dataclass(frozen=True)
class FreePeriod:
    start: datetime
    end: datetime
    remaining: int


def bookable_from(availability: dict[str, Any], now: datetime) -> datetime:
    """The first instant a request may start (``check_period``'s notice), up to the minute."""
    earliest = now + timedelta(hours=availability.get("min_notice_hours") or 0)
    floor = earliest.replace(second=0, microsecond=0)
    return floor if floor == earliest else floor + timedelta(minutes=1)


def opening_windows(
    availability: dict[str, Any], zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The whole opening windows (UTC) of the local days ``[start, end)`` touches, but those
    of closed days; a window is one declared ``weekly_hours`` entry on one local day."""
    hours = sorted(
        {
            (w["weekday"], time.fromisoformat(w["opens"]), time.fromisoformat(w["closes"]))
            for w in availability.get("weekly_hours", [])
        }
    )
    day = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    windows: list[tuple[datetime, datetime]] = []
    while day <= last:
        for weekday, opens, closes in hours:
            if weekday != day.weekday():
                continue
            # Wall-clock times of that day, in that day's offset: DST changes move nothing.
            local_open = datetime.combine(day, opens, zone)
            local_close = datetime.combine(day, closes, zone)
            if closed_on(availability, local_open, local_close):
                continue
            opened, closed = local_open.astimezone(UTC), local_close.astimezone(UTC)
            if opened < closed and opened < end and start < closed:
                windows.append((opened, closed))
        day += timedelta(days=1)
    return sorted(windows)


def hold_steps(holds: Iterable[Any]) -> tuple[list[datetime], list[int]]:
    """How many holds there are from each instant on (until the next one); 0 before the first."""
    changes: dict[datetime, int] = {}
    for hold in holds:
        lower, upper = hold.period.lower.astimezone(UTC), hold.period.upper.astimezone(UTC)
        changes[lower] = changes.get(lower, 0) + 1
        changes[upper] = changes.get(upper, 0) - 1
    instants = sorted(changes)
    return instants, list(accumulate(changes[instant] for instant in instants))


def _holds_at(steps: tuple[list[datetime], list[int]], instant: datetime) -> int:
    instants, counts = steps
    index = bisect_right(instants, instant) - 1
    return counts[index] if index >= 0 else 0


def _window_pieces(
    window: tuple[datetime, datetime], steps: tuple[list[datetime], list[int]], capacity: int
) -> list[FreePeriod]:
    opened, closed = window
    instants = steps[0]
    inner = instants[bisect_right(instants, opened) : bisect_left(instants, closed)]
    pieces: list[FreePeriod] = []
    for lower, upper in pairwise([opened, *inner, closed]):
        remaining = capacity - _holds_at(steps, lower)
        if remaining <= 0:
            continue
        if pieces and pieces[-1].end == lower and pieces[-1].remaining == remaining:
            pieces[-1] = FreePeriod(pieces[-1].start, upper, remaining)
        else:
            pieces.append(FreePeriod(lower, upper, remaining))
    return pieces


def _clip(pieces: Iterable[FreePeriod], lower: datetime, upper: datetime) -> list[FreePeriod]:
    return [
        FreePeriod(max(piece.start, lower), min(piece.end, upper), piece.remaining)
        for piece in pieces
        if piece.start < upper and lower < piece.end
    ]


def _runs(pieces: list[FreePeriod]) -> list[list[FreePeriod]]:
    """Contiguous pieces together (a booking may span them while some capacity remains)."""
    runs: list[list[FreePeriod]] = []
    for piece in pieces:
        if runs and runs[-1][-1].end == piece.start:
            runs[-1].append(piece)
        else:
            runs.append([piece])
    return runs


def weekly_hours_left(
    cap: float, holds: Iterable[Any], zone: ZoneInfo, start: datetime, end: datetime
) -> dict[date, float]:
    """The hours a capped staff time has left in each week ``[start, end)`` touches."""
    used = hours_by_week(holds, zone)
    week, last = week_of(start, zone), week_of(end - timedelta(microseconds=1), zone)
    left: dict[date, float] = {}
    while week <= last:
        left[week] = max(0.0, cap - used.get(week, 0.0))
        week += timedelta(weeks=1)
    return left


def free_periods(
    *,
    availability: dict[str, Any],
    time_zone: str,
    capacity: int,
    holds: Sequence[Any],
    start: datetime,
    end: datetime,
    now: datetime,
    weekly_cap: float | None = None,
) -> list[FreePeriod]:
    """The free periods of an offer within ``[start, end)``, in the pole's time zone."""
    zone = ZoneInfo(time_zone)
    earliest = bookable_from(availability, now)
    shortest = timedelta(minutes=availability.get("min_booking_minutes") or 0)
    steps = hold_steps(holds)
    closed_weeks: set[date] = set()
    if weekly_cap is not None:
        # Too few hours left for the shortest booking (or none at all): the week is full.
        needed = max(shortest.total_seconds() / 3600, EPSILON_HOURS)
        left = weekly_hours_left(weekly_cap, holds, zone, start, end)
        closed_weeks = {week for week, hours in left.items() if hours + EPSILON_HOURS < needed}
    free: list[FreePeriod] = []
    for window in opening_windows(availability, zone, start, end):
        if week_of(window[0], zone) in closed_weeks:
            continue
        pieces = _clip(_window_pieces(window, steps, capacity), earliest, window[1])
        for run in _runs(pieces):
            if run[-1].end - run[0].start >= shortest:
                free.extend(_clip(run, start, end))
    return [
        FreePeriod(piece.start.astimezone(zone), piece.end.astimezone(zone), piece.remaining)
        for piece in free
    ]


def remaining_for_period(
    offer_row: Any,
    *,
    time_zone: str,
    start: datetime,
    end: datetime,
    now: datetime,
    holds: Sequence[Any],
) -> int | None:
    """The capacity left for the whole ``[start, end)`` if a request for it would pass the
    offer's rules (``check_period``, capacity at every instant, weekly cap), else None."""
    try:
        check_period(offer_row, time_zone, start, end, now)
    except UnprocessableEntity:
        return None
    period: Range[datetime] = Range(start, end, bounds="[)")
    overlapping = [h for h in holds if h.period.lower < end and start < h.period.upper]
    overlapping.sort(key=lambda hold: hold.period.lower)
    peak, _ = peak_holds(period, overlapping)
    if peak + 1 > offer_row.capacity:
        return None
    cap = (offer_row.attributes or {}).get("max_hours_per_week")
    if (
        offer_row.kind == "staff_time"
        and cap is not None
        and weekly_cap_exceeded(float(cap), period, holds, ZoneInfo(time_zone))
    ):
        return None
    return int(offer_row.capacity) - peak


# --- Queries --------------------------------------------------------------------------------


def check_range(start: datetime, end: datetime) -> None:
    """422 naming ``query.end`` unless ``start < end <= start + 92 days``."""
    if end <= start:
        raise UnprocessableEntity(
            "end must be after start (periods are [start, end)).",
            invalid_params=[{"name": "query.end", "reason": "must be after start"}],
        )
    if end - start > MAX_RANGE:
        raise UnprocessableEntity(
            f"A range covers at most {MAX_RANGE.days} days.",
            invalid_params=[
                {"name": "query.end", "reason": f"at most {MAX_RANGE.days} days after start"}
            ],
        )


async def _time_zone(session: AsyncSession, pole_id: uuid.UUID) -> str:
    zone: str = (await pole_of(session, pole_id)).time_zone
    return zone


async def holds_of(
    session: AsyncSession, offer_ids: Sequence[uuid.UUID], lower: datetime, upper: datetime
) -> dict[uuid.UUID, list[Any]]:
    """The holds of several offers overlapping ``[lower, upper)``, in one query."""
    found: dict[uuid.UUID, list[Any]] = {offer_id: [] for offer_id in offer_ids}
    if not offer_ids:
        return found
    rows = await session.execute(
        select(booking_request.c.offer_id, booking_request.c.period)
        .where(
            booking_request.c.offer_id.in_(offer_ids),
            booking_request.c.state.in_(HOLDING_STATES),
            booking_request.c.period.op("&&")(Range(lower, upper, bounds="[)")),
        )
        .order_by(func.lower(booking_request.c.period))
    )
    for row in rows:
        found[row.offer_id].append(row)
    return found


# --- Routes ---------------------------------------------------------------------------------


class FreeOut(BaseModel):
    start: datetime = Field(description="Local time, with its UTC offset.")
    end: datetime = Field(description="Excluded: [start, end).")
    remaining: int = Field(description="The capacity still free all along the period.")


class WeekOut(BaseModel):
    week_start: date = Field(description="The week's Monday, local.")
    hours_left: float


class OfferAvailability(BaseModel):
    offer_id: uuid.UUID
    kind: str
    state: str = Field(description="Only a published offer has free periods.")
    time_zone: str
    capacity: int
    start: datetime
    end: datetime
    bookable_from: datetime | None = Field(
        description="now + min_notice_hours: nothing earlier can be requested."
    )
    min_booking_minutes: int | None
    max_booking_minutes: int | None
    max_hours_per_week: float | None = Field(description="Staff time: the weekly cap.")
    weekly_hours_left: list[WeekOut] | None = Field(
        description="Staff time with a weekly cap: the hours left in each week of the range."
    )
    free: list[FreeOut]


class FreeOffer(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    kind: str
    title: str
    commune: str | None
    insee_code: str | None
    unit: str | None
    booking_mode: str
    internal_price: Decimal | None
    capacity: int
    remaining: int = Field(description="The capacity still free all along the period.")


Start = Annotated[Instant, Query(description="With its UTC offset.")]
End = Annotated[Instant, Query(description="Excluded; at most 92 days after start.")]


def search_page(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page.")
    ] = None,
) -> PageRequest:
    return page_request(limit=limit, cursor=cursor)


@router.get(
    "/offers/{offer_id}/availability",
    summary="An offer's free periods over a range (at most 92 days), in the pole's time zone",
    responses={
        404: {"description": "No such offer in the caller's pole"},
        422: {"description": "A bad range, or a service (booked by quantity: no calendar)"},
    },
)
async def offer_availability(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    offer_id: uuid.UUID,
    start: Start,
    end: End,
) -> OfferAvailability:
    check_range(start, end)
    async with runtime.session_factory() as session:
        row = (
            await session.execute(
                select(offer).where(offer.c.id == offer_id, offer.c.pole_id == principal.pole_id)
            )
        ).first()
        if row is None:
            raise NotFound("No such offer in your pole.")
        if row.kind not in PERIOD_KINDS:
            raise UnprocessableEntity(
                f"A {row.kind} is requested for a quantity: it has no calendar.",
                invalid_params=[{"name": "path.offer_id", "reason": f"a {row.kind} offer"}],
            )
        time_zone = await _time_zone(session, principal.pole_id)
        published = row.state == "published"
        holds: list[Any] = []
        if published:
            held = await holds_of(session, [row.id], start - WEEK_MARGIN, end + WEEK_MARGIN)
            holds = held[row.id]
    return _offer_answer(row, time_zone=time_zone, start=start, end=end, holds=holds)


def _offer_answer(
    row: Any, *, time_zone: str, start: datetime, end: datetime, holds: list[Any]
) -> OfferAvailability:
    zone = ZoneInfo(time_zone)
    availability: dict[str, Any] = row.availability
    now = utcnow()
    published = row.state == "published"
    cap_value = (row.attributes or {}).get("max_hours_per_week")
    cap = float(cap_value) if row.kind == "staff_time" and cap_value is not None else None
    free = (
        free_periods(
            availability=availability,
            time_zone=time_zone,
            capacity=row.capacity,
            holds=holds,
            start=start,
            end=end,
            now=now,
            weekly_cap=cap,
        )
        if published
        else []
    )
    weeks = (
        [
            WeekOut(week_start=week, hours_left=round(hours, 2))
            for week, hours in weekly_hours_left(cap, holds, zone, start, end).items()
        ]
        if cap is not None and published
        else None
    )
    return OfferAvailability(
        offer_id=row.id,
        kind=row.kind,
        state=row.state,
        time_zone=time_zone,
        capacity=row.capacity,
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        bookable_from=bookable_from(availability, now).astimezone(zone) if published else None,
        min_booking_minutes=availability.get("min_booking_minutes"),
        max_booking_minutes=availability.get("max_booking_minutes"),
        max_hours_per_week=cap,
        weekly_hours_left=weeks,
        free=[FreeOut(start=p.start, end=p.end, remaining=p.remaining) for p in free],
    )


@router.get(
    "/availability",
    summary="The published offers of a kind, of the caller's pole, free for a whole period",
    description=(
        "Free as a request would find them: opening hours, closures, notice, booking length, "
        "capacity at every instant, weekly cap of staff time. The caller's own offers are left "
        "out. Ordered by title, then id."
    ),
)
async def search_availability(
    *,
    runtime: RuntimeDep,
    principal: CurrentPrincipal,
    kind: Annotated[Literal["premises", "equipment", "staff_time"], Query()],
    start: Start,
    end: End,
    page: Annotated[PageRequest, Depends(search_page)],
    commune: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    insee_code: Annotated[str | None, Query(pattern=r"^[0-9][0-9AB][0-9]{3}$")] = None,
) -> Page[FreeOffer]:
    check_range(start, end)
    statement = select(offer).where(
        offer.c.pole_id == principal.pole_id,
        offer.c.kind == kind,
        offer.c.state == "published",
        offer.c.owner_id != principal.member_id,
    )
    if commune is not None:
        statement = statement.where(func.lower(offer.c.commune) == commune.lower())
    if insee_code is not None:
        statement = statement.where(offer.c.insee_code == insee_code)
    statement = statement.order_by(offer.c.title, offer.c.id)
    after = page.after
    found: list[FreeOffer] = []
    async with runtime.session_factory() as session:
        time_zone = await _time_zone(session, principal.pole_id)
        now = utcnow()
        while len(found) <= page.limit:
            batch_statement = statement
            if after is not None:
                batch_statement = batch_statement.where(
                    tuple_(offer.c.title, offer.c.id) > tuple_(str(after[0]), after[1])
                )
            batch = list((await session.execute(batch_statement.limit(SEARCH_BATCH))).all())
            held = await holds_of(
                session, [row.id for row in batch], start - WEEK_MARGIN, end + WEEK_MARGIN
            )
            found.extend(
                _free_offer(row, remaining)
                for row in batch
                if (
                    remaining := remaining_for_period(
                        row, time_zone=time_zone, start=start, end=end, now=now, holds=held[row.id]
                    )
                )
                is not None
            )
            if len(batch) < SEARCH_BATCH:
                break
            after = (batch[-1].title, batch[-1].id)
    more = len(found) > page.limit
    found = found[: page.limit]
    return Page(
        items=found,
        next_cursor=encode_cursor(found[-1].title, found[-1].id) if more else None,
    )


def _free_offer(row: Any, remaining: int) -> FreeOffer:
    return FreeOffer(
        id=row.id,
        owner_id=row.owner_id,
        kind=row.kind,
        title=row.title,
        commune=row.commune,
        insee_code=row.insee_code,
        unit=row.unit,
        booking_mode=row.booking_mode,
        internal_price=row.internal_price,
        capacity=row.capacity,
        remaining=remaining,
    )
