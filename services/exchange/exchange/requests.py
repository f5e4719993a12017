"""Requests between members: the checks against the offer, the holds, the life cycle.

Who may move a request, and from where:

| from | to | by |
| --- | --- | --- |
| requested | accepted | the provider (automatic for instant-booking offers) |
| requested | declined | the provider, with a reason |
| requested | withdrawn | the requester |
| accepted | cancelled | either side, with a reason; late when within 48 h of the start |
| accepted | completed | the provider, once started, with the quantity used (booked by default) |
| accepted | no_show | the provider, once started |

"The provider" is the offer's owner, or the pole's coordinator acting for it.
A pending (``requested``) request holds its slot: it counts against the capacity exactly like
an accepted one, so two members cannot both be promised the same room.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from asyncpg.exceptions import ExclusionViolationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from exchange.models import HOLDING_STATES, booking_request, offer, pole
from shared.auth import Principal, Role
from shared.contracts.exchange import (
    FrozenTerms,
    RequestAccepted,
    RequestCancelled,
    RequestCompleted,
    RequestDeclined,
    RequestNoShow,
    RequestRequested,
    RequestSnapshot,
    RequestWithdrawn,
)
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, NotFound, UnprocessableEntity
from shared.uow import UnitOfWork

PERIOD_KINDS = ("premises", "equipment", "staff_time")
CENT = Decimal("0.01")


class NewRequest(BaseModel):
    """Ask for an offer: a period ``[start, end)`` (premises, equipment, staff time), or a
    quantity (a service; ``start``/``end`` then optional, the wished dates)."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID
    start: AwareDatetime | None = Field(default=None, description="With its UTC offset.")
    end: AwareDatetime | None = Field(default=None, description="Excluded: [start, end).")
    quantity: Decimal | None = Field(default=None, gt=0, le=100_000, decimal_places=2)
    message: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _period(self) -> NewRequest:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start (periods are [start, end), never empty)")
        return self


class MoveBody(BaseModel):
    """What a move may carry: a reason (required to decline or cancel), the quantity used
    (to complete; the booked quantity when left out)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    quantity_used: Decimal | None = Field(default=None, ge=0, le=100_000, decimal_places=2)


LATE_CANCELLATION = timedelta(hours=48)
ALLOWED: dict[str, dict[str, str]] = {
    "requested": {"accept": "accepted", "decline": "declined", "withdraw": "withdrawn"},
    "accepted": {"cancel": "cancelled", "complete": "completed", "no_show": "no_show"},
}
PROVIDER_MOVES = {"accept", "decline", "complete", "no_show"}
EVENTS: dict[str, type[RequestSnapshot]] = {
    "requested": RequestRequested,
    "accepted": RequestAccepted,
    "declined": RequestDeclined,
    "withdrawn": RequestWithdrawn,
    "cancelled": RequestCancelled,
    "completed": RequestCompleted,
    "no_show": RequestNoShow,
}


def _invalid(field: str, reason: str, detail: str | None = None) -> UnprocessableEntity:
    return UnprocessableEntity(
        detail or reason, invalid_params=[{"name": f"body.{field}", "reason": reason}]
    )


def _clock(value: str) -> time:
    return time.fromisoformat(value)


def _within_opening_hours(availability: dict[str, Any], start: datetime, end: datetime) -> bool:
    """Start and end fall in opening windows of their local days; on one day, in one window.

    A booking over several days (a room for two days) includes the nights between them.
    """
    windows = [
        (w["weekday"], _clock(w["opens"]), _clock(w["closes"]))
        for w in availability.get("weekly_hours", [])
    ]
    if start.date() == end.date():
        return any(
            day == start.weekday() and opens <= start.time() and end.time() <= closes
            for day, opens, closes in windows
        )
    starts_open = any(
        day == start.weekday() and opens <= start.time() < closes for day, opens, closes in windows
    )
    last_day = (end - timedelta(microseconds=1)).date()
    ends_open = any(
        day == end.weekday() and opens < end.time() <= closes for day, opens, closes in windows
    ) or (end.time() == time(0) and any(day == last_day.weekday() for day, _, _ in windows))
    return starts_open and ends_open


def _closed_on(availability: dict[str, Any], start: datetime, end: datetime) -> str | None:
    last_day = (end - timedelta(microseconds=1)).date()
    for closure in availability.get("closures", []):
        if (
            closure["start_date"] <= last_day.isoformat()
            and start.date().isoformat() <= closure["end_date"]
        ):
            return f"{closure['start_date']}–{closure['end_date']} {closure.get('reason', '')}"
    return None


def check_period(
    offer_row: Any, time_zone: str, start: datetime, end: datetime, now: datetime
) -> None:
    """The period against the offer's rules, in the pole's time zone; 422 naming the rule."""
    availability: dict[str, Any] = offer_row.availability
    zone = ZoneInfo(time_zone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    minutes = (end - start).total_seconds() / 60
    notice = availability.get("min_notice_hours") or 0
    if start < now + timedelta(hours=notice):
        raise _invalid("start", f"needs {notice} h notice and cannot be in the past")
    low, high = availability.get("min_booking_minutes"), availability.get("max_booking_minutes")
    if low is not None and minutes < low:
        raise _invalid("end", f"shorter than the minimum of {low} minutes")
    if high is not None and minutes > high:
        raise _invalid("end", f"longer than the maximum of {high} minutes")
    if not _within_opening_hours(availability, local_start, local_end):
        raise _invalid("start", f"outside the opening hours ({time_zone})")
    if closure := _closed_on(availability, local_start, local_end):
        raise _invalid("start", f"the offer is closed: {closure}")


def quantity_of(unit: str, start: datetime, end: datetime, time_zone: str) -> Decimal:
    """How many units a period is: hours (to the cent), half-days or days touched (local)."""
    zone = ZoneInfo(time_zone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    last = local_end - timedelta(microseconds=1)
    match unit:
        case "hour":
            hours = Decimal((end - start).total_seconds()) / 3600
            return hours.quantize(CENT, ROUND_HALF_UP)
        case "day":
            return Decimal((last.date() - local_start.date()).days + 1)
        case "half_day":

            def half(moment: datetime) -> int:
                return moment.toordinal() * 2 + (1 if moment.hour >= 13 else 0)

            return Decimal(half(last) - half(local_start) + 1)
        case _:
            return Decimal(1)


def freeze_terms(offer_row: Any, quantity: Decimal, currency: str) -> FrozenTerms:
    attributes = offer_row.attributes or {}
    staff = offer_row.kind == "staff_time"
    fee = attributes.get("management_fee_percent") if staff else None
    employer = attributes.get("employer_member_id") if staff else None
    return FrozenTerms(
        unit=offer_row.unit,
        quantity=quantity,
        internal_price=offer_row.internal_price,
        reference_value=offer_row.reference_value,
        valuation_basis=offer_row.valuation_basis,
        currency=currency,
        management_fee_percent=Decimal(str(fee)) if fee is not None else None,
        employer_member_id=uuid.UUID(str(employer)) if employer else None,
        staff_regime=attributes.get("regime") if staff else None,
        offer_version=offer_row.version,
    )


async def _locked_offer(session: AsyncSession, principal: Principal, offer_id: uuid.UUID) -> Any:
    # The offer's row lock serialises every booking of one offer: the capacity and weekly-cap
    # checks below see every committed hold (and the exclusion constraint backs capacity one).
    row = (
        await session.execute(
            select(offer)
            .where(offer.c.id == offer_id, offer.c.pole_id == principal.pole_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("No such offer in your pole.")
    return row


async def _overlapping(
    session: AsyncSession, offer_id: uuid.UUID, period: Range[datetime]
) -> list[Any]:
    return list(
        (
            await session.execute(
                select(booking_request.c.id, booking_request.c.period)
                .where(
                    booking_request.c.offer_id == offer_id,
                    booking_request.c.state.in_(HOLDING_STATES),
                    booking_request.c.period.op("&&")(period),
                )
                .order_by(func.lower(booking_request.c.period))
            )
        ).all()
    )


def _peak(period: Range[datetime], others: list[Any]) -> tuple[int, Any]:
    """The most holds at one instant of ``period`` (checked where each hold begins)."""
    assert period.lower is not None
    instants = [period.lower, *[o.period.lower for o in others if o.period.lower > period.lower]]
    peak, at = 0, None
    for instant in instants:
        holding = [o for o in others if o.period.lower <= instant < o.period.upper]
        if len(holding) > peak:
            peak, at = len(holding), holding[0]
    return peak, at


def _conflict(period: Any, with_row: Any) -> Conflict:
    """409 naming the committed period the request runs into."""
    conflicting = with_row.period if with_row is not None else period
    return Conflict(
        "The offer is already committed for part of that period.",
        extra={
            "conflicting_period": {
                "start": conflicting.lower.isoformat(),
                "end": conflicting.upper.isoformat(),
            }
        },
    )


async def _check_weekly_cap(
    session: AsyncSession, offer_row: Any, period: Range[datetime], time_zone: str
) -> None:
    cap = (offer_row.attributes or {}).get("max_hours_per_week")
    if cap is None:
        return
    assert period.lower is not None
    assert period.upper is not None
    zone = ZoneInfo(time_zone)
    local_start = period.lower.astimezone(zone)
    week_start = datetime.combine(
        local_start.date() - timedelta(days=local_start.weekday()), time(0), zone
    )
    week_end = datetime.combine(
        period.upper.astimezone(zone).date() + timedelta(days=7), time(0), zone
    )
    hours_by_week: dict[int, float] = {}
    rows = await _overlapping(session, offer_row.id, Range(week_start, week_end, bounds="[)"))
    for existing in [*[r.period for r in rows], period]:
        week = existing.lower.astimezone(zone).isocalendar()
        key = week.year * 100 + week.week
        hours = (existing.upper - existing.lower).total_seconds() / 3600
        hours_by_week[key] = hours_by_week.get(key, 0.0) + hours
    over = {week: hours for week, hours in hours_by_week.items() if hours > float(cap) + 1e-9}
    if over:
        raise Conflict(
            f"This would exceed the {cap} hours a week this staff time can be shared.",
            extra={"max_hours_per_week": float(cap)},
        )


async def create_request(uow: UnitOfWork, principal: Principal, command: NewRequest) -> Any:
    if principal.role is Role.auditor:
        raise Forbidden("An auditor's client may only read.")
    session = uow.session
    offer_row = await _locked_offer(session, principal, command.offer_id)
    if offer_row.state != "published":
        raise Conflict(f"The offer is {offer_row.state}: it takes no requests.")
    if offer_row.owner_id == principal.member_id:
        raise _invalid("offer_id", "an offer cannot be requested by its own owner")
    settings = (await session.execute(select(pole).where(pole.c.id == principal.pole_id))).one()
    now = utcnow()
    period: Range[datetime] | None = None
    if offer_row.kind in PERIOD_KINDS:
        if command.start is None or command.end is None:
            raise _invalid("start", f"a {offer_row.kind} offer is booked for a period")
        period = Range(command.start, command.end, bounds="[)")
        check_period(offer_row, settings.time_zone, command.start, command.end, now)
        quantity = quantity_of(offer_row.unit, command.start, command.end, settings.time_zone)
        peak, at = _peak(period, await _overlapping(session, offer_row.id, period))
        if peak + 1 > offer_row.capacity:
            raise _conflict(period, at)
        if offer_row.kind == "staff_time":
            await _check_weekly_cap(session, offer_row, period, settings.time_zone)
    else:
        if command.quantity is None:
            raise _invalid("quantity", "a service is requested for a quantity")
        quantity = command.quantity
    instant = offer_row.booking_mode == "instant"
    state = "accepted" if instant else "requested"
    terms = freeze_terms(offer_row, quantity, settings.currency) if instant else None
    values = {
        "id": uuid.uuid4(),
        "pole_id": principal.pole_id,
        "offer_id": offer_row.id,
        "offer_kind": offer_row.kind,
        "provider_id": offer_row.owner_id,
        "requester_id": principal.member_id,
        "period": period,
        "quantity": quantity,
        "message": command.message,
        "state": state,
        "exclusive": offer_row.capacity == 1,
        "terms": terms.model_dump(mode="json") if terms else None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    try:
        async with session.begin_nested():
            await session.execute(insert(booking_request).values(**values))
    except IntegrityError as exc:
        if isinstance(getattr(exc.orig, "__cause__", None), ExclusionViolationError):
            others = await _overlapping(session, offer_row.id, values["period"])
            raise _conflict(values["period"], others[0] if others else None) from exc
        raise
    row = await _reload(session, values["id"])
    uow.publish(snapshot(RequestRequested, row))
    if instant:
        uow.publish(snapshot(RequestAccepted, row))
    return row


async def _reload(session: AsyncSession, request_id: uuid.UUID) -> Any:
    statement = select(booking_request).where(booking_request.c.id == request_id)
    return (await session.execute(statement)).one()


def request_fields(row: Any) -> dict[str, Any]:
    """A request row as the fields its API answer and its events share."""
    return {
        "offer_id": row.offer_id,
        "offer_kind": row.offer_kind,
        "provider_id": row.provider_id,
        "requester_id": row.requester_id,
        "state": row.state,
        "start": row.period.lower if row.period is not None else None,
        "end": row.period.upper if row.period is not None else None,
        "quantity": row.quantity,
        "reason": row.reason,
        "late": row.late,
        "quantity_used": row.quantity_used,
        "terms": FrozenTerms.model_validate(row.terms) if row.terms else None,
        "version": row.version,
    }


def snapshot(kind: type[RequestSnapshot], row: Any) -> RequestSnapshot:
    return kind(
        request_id=row.id, pole_id=row.pole_id, changed_at=row.updated_at, **request_fields(row)
    )


async def request_of_pole(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID, *, lock: bool = False
) -> Any:
    statement = select(booking_request).where(
        booking_request.c.id == request_id, booking_request.c.pole_id == principal.pole_id
    )
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).first()
    sees = row is not None and (
        principal.role in (Role.coordinator, Role.auditor)
        or principal.member_id in (row.provider_id, row.requester_id)
    )
    if not sees:
        raise NotFound("No such request for you in your pole.")
    return row


async def move(
    uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, action: str, body: MoveBody
) -> Any:
    session = uow.session
    row = await request_of_pole(session, principal, request_id, lock=True)
    target = ALLOWED.get(row.state, {}).get(action)
    if target is None:
        raise Conflict(
            f"A {row.state} request cannot be moved by {action}.",
            extra={"state": row.state, "allowed": sorted(ALLOWED.get(row.state, {}))},
        )
    _check_mover(principal, row, action)
    now = utcnow()
    changes: dict[str, Any] = {"state": target, "version": row.version + 1, "updated_at": now}
    if action in ("decline", "cancel") and body.reason is None:
        raise _invalid("reason", f"a reason is required to {action}")
    if body.quantity_used is not None and action != "complete":
        raise _invalid("quantity_used", "only a completion records the quantity used")
    if body.reason is not None:
        changes["reason"] = body.reason
    started = row.period is None or row.period.lower <= now
    if action in ("complete", "no_show") and not started:
        raise Conflict(
            f"A request cannot be marked {target} before it starts.",
            extra={"state": row.state, "allowed": sorted(ALLOWED[row.state])},
        )
    if action == "cancel":
        changes["late"] = row.period is not None and now > row.period.lower - LATE_CANCELLATION
    if action == "complete":
        changes["quantity_used"] = (
            body.quantity_used if body.quantity_used is not None else row.quantity
        )
    if target == "accepted":
        offer_row = (await session.execute(select(offer).where(offer.c.id == row.offer_id))).one()
        currency = (
            await session.execute(select(pole.c.currency).where(pole.c.id == row.pole_id))
        ).scalar_one()
        changes["terms"] = freeze_terms(offer_row, row.quantity, currency).model_dump(mode="json")
    await session.execute(
        update(booking_request).where(booking_request.c.id == row.id).values(**changes)
    )
    moved = await _reload(session, row.id)
    uow.publish(snapshot(EVENTS[target], moved))
    return moved


def _check_mover(principal: Principal, row: Any, action: str) -> None:
    if principal.role is Role.auditor:
        raise Forbidden("An auditor's client may only read.")
    provider_side = principal.member_id == row.provider_id or principal.is_coordinator
    requester_side = principal.member_id == row.requester_id or principal.is_coordinator
    if action in PROVIDER_MOVES and not provider_side:
        raise Forbidden(f"Only the provider may {action.replace('_', ' ')} a request.")
    if action == "withdraw" and principal.member_id != row.requester_id:
        raise Forbidden("Only the requester withdraws its request.")
    if action == "cancel" and not (provider_side or requester_side):
        raise Forbidden("Only a party to the request may cancel it.")
