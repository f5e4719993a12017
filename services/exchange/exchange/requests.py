"""Requests between members: the checks against the offer, the holds, the life cycle.

Who may move a request, and from where:

| from | to | by |
| --- | --- | --- |
| requested | accepted | the provider (automatic for instant-booking offers) |
| requested | declined | the provider, with a reason |
| requested | withdrawn | the requester |
| requested | expired | the scheduler, when no answer came by ``answer_by`` (deadlines.py) |
| accepted | cancelled | either side, with a reason; late when close to the start (pole rule) |
| accepted | completed | the provider, once started, with the quantity used (booked by default); |
| | | or the scheduler after the end plus the pole's grace, unless a party objected |
| accepted | no_show | the provider, once started |

"The provider" is the offer's owner, or the pole's coordinator acting for it.
A pending (``requested``) request holds its slot: it counts against the capacity exactly like
an accepted one, so two members cannot both be promised the same room.
"""

from __future__ import annotations

import re
import uuid
from collections import namedtuple
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from asyncpg.exceptions import ExclusionViolationError
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import bindparam, exists, func, insert, literal_column, select, update
from sqlalchemy.dialects.postgresql import TSTZRANGE, Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import ColumnElement

from exchange.models import HOLDING_STATES, booking_request, offer, pole
from shared.auth import Principal, Role
from shared.contracts.catalog import ExchangeRules
from shared.contracts.exchange import (
    FrozenTerms,
    RequestAccepted,
    RequestCancelled,
    RequestCompleted,
    RequestDeclined,
    RequestExpired,
    RequestNoShow,
    RequestObjected,
    RequestRequested,
    RequestSnapshot,
    RequestWithdrawn,
)
from shared.db import utcnow
from shared.driver import DriverConnection, hot
from shared.errors import Conflict, Forbidden, NotFound, NotReadyYet, UnprocessableEntity
from shared.limits import END_OF_INSTANTS, Instant
from shared.runtime import ServiceRuntime
from shared.uow import BaseUnitOfWork, ConnectionUnitOfWork, UnitOfWork

PERIOD_KINDS = ("premises", "equipment", "staff_time")
MAX_PERIOD = timedelta(days=366)
"""The longest period a request may name: the longest booking an offer may allow."""
CENT = Decimal("0.01")

Database = AsyncSession | AsyncConnection | DriverConnection
"""Where a statement runs: a unit of work's session, or (cheaper in Python) its connection,
or outside any transaction its :class:`~shared.driver.DriverConnection` (``uow.db``), where
the statements declared ``hot`` skip SQLAlchemy's execution."""


class NewRequest(BaseModel):
    """Ask for an offer: a period ``[start, end)`` (premises, equipment, staff time), or a
    quantity (a service; ``start``/``end`` then optional, the wished dates)."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID
    start: Instant | None = Field(default=None, description="With its UTC offset.")
    end: Instant | None = Field(
        default=None, description="Excluded: [start, end); at most 366 days after start."
    )
    quantity: Decimal | None = Field(default=None, gt=0, le=100_000, decimal_places=2)
    message: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _period(self) -> NewRequest:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.end is not None:
            if self.end <= self.start:
                raise ValueError("end must be after start (periods are [start, end), never empty)")
            if self.end - self.start > MAX_PERIOD:
                raise ValueError(f"a period lasts at most {MAX_PERIOD.days} days")
        return self


class MoveBody(BaseModel):
    """What a move may carry: a reason (required to decline or cancel), the quantity used
    (to complete; the booked quantity when left out)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, min_length=1, max_length=1000)
    quantity_used: Decimal | None = Field(default=None, ge=0, le=100_000, decimal_places=2)


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
    "expired": RequestExpired,
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


def closed_on(availability: dict[str, Any], start: datetime, end: datetime) -> str | None:
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
    if closure := closed_on(availability, local_start, local_end):
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


RequestRow = namedtuple("RequestRow", [column.name for column in booking_request.c])  # type: ignore[misc]
"""A request's row as it is written (the same fields as a ``booking_request`` row)."""

PoleRow = namedtuple("PoleRow", [column.name for column in pole.c])  # type: ignore[misc]
"""A pole's copy read along with an offer (the same fields as a ``pole`` row)."""

# The offer and its pole's copy in one statement. Outer join: a pole copy not there yet is
# told apart.
_OFFER_AND_POLE = hot(
    select(offer, *[column.label(f"pole__{column.name}") for column in pole.c])
    .outerjoin(pole, pole.c.id == offer.c.pole_id)
    .where(offer.c.id == bindparam("offer_id"), offer.c.pole_id == bindparam("pole_id"))
)
# Locked where holds are counted here (capacity above one, a weekly cap): the lock is on the
# offer's row only (FOR UPDATE OF offer) and serialises every booking of one offer, so that
# the count sees every committed hold; the pole's copy is only read.
_LOCKED_OFFER_AND_POLE = _OFFER_AND_POLE.with_for_update(of=offer)
_OFFER_COLUMNS = len(offer.c)
_OFFER_VERSION = hot(select(offer.c.version).where(offer.c.id == bindparam("offer_id")))

# The states as literals, not parameters: a prepared statement's generic plan can then use
# the partial index of holding periods (its predicate names the same states).
_HOLDING = booking_request.c.state.in_([literal_column(f"'{state}'") for state in HOLDING_STATES])
_OVERLAPPING = hot(
    select(booking_request.c.id, booking_request.c.period)
    .where(
        booking_request.c.offer_id == bindparam("offer_id"),
        _HOLDING,
        booking_request.c.period.op("&&")(bindparam("period", type_=TSTZRANGE)),
    )
    .order_by(func.lower(booking_request.c.period))
)


async def _offer_and_pole(
    db: Database, principal: Principal, offer_id: uuid.UUID, *, lock: bool
) -> tuple[Any, Any]:
    """The offer, locked if asked (404 when not in the caller's pole), and its pole's copy
    (``None`` when it has not arrived yet)."""
    statement = _LOCKED_OFFER_AND_POLE if lock else _OFFER_AND_POLE
    row = (
        await db.execute(statement, {"offer_id": offer_id, "pole_id": principal.pole_id})
    ).first()
    if row is None:
        raise NotFound("No such offer in your pole.")
    pole_values = row[_OFFER_COLUMNS:]
    return row, (PoleRow(*pole_values) if pole_values[0] is not None else None)


async def _overlapping(db: Database, offer_id: uuid.UUID, period: Range[datetime]) -> list[Any]:
    result = await db.execute(_OVERLAPPING, {"offer_id": offer_id, "period": period})
    return list(result.all())


def peak_holds(period: Range[datetime], others: list[Any]) -> tuple[int, Any]:
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


EPSILON_HOURS = 1e-9


class Hold(NamedTuple):
    """A committed period of an offer (a ``booking_request`` row has the same ``period``)."""

    period: Range[datetime]


def week_of(moment: datetime, zone: ZoneInfo) -> date:
    """The local Monday of ``moment``'s ISO week."""
    local = moment.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def hours_by_week(holds: Iterable[Any], zone: ZoneInfo) -> dict[date, float]:
    """Hours held per week, each hold counted whole in the week it starts (as requests do)."""
    used: dict[date, float] = {}
    for hold in holds:
        week = week_of(hold.period.lower, zone)
        hours = (hold.period.upper - hold.period.lower).total_seconds() / 3600
        used[week] = used.get(week, 0.0) + hours
    return used


def weekly_cap_exceeded(
    cap: float, period: Range[datetime], holds: Iterable[Any], zone: ZoneInfo
) -> bool:
    """Whether a request for ``period`` would go past the weekly cap of a staff time, given
    the offer's holds (those outside the weeks the period touches are ignored)."""
    assert period.lower is not None
    assert period.upper is not None
    local_start = period.lower.astimezone(zone)
    week_start = datetime.combine(
        local_start.date() - timedelta(days=local_start.weekday()), time(0), zone
    )
    week_end = datetime.combine(
        period.upper.astimezone(zone).date() + timedelta(days=7), time(0), zone
    )
    seen = [
        hold for hold in holds if hold.period.lower < week_end and week_start < hold.period.upper
    ]
    used = hours_by_week([*seen, Hold(period)], zone)
    return any(hours > cap + EPSILON_HOURS for hours in used.values())


async def _check_weekly_cap(
    db: Database, offer_row: Any, period: Range[datetime], time_zone: str
) -> None:
    cap = (offer_row.attributes or {}).get("max_hours_per_week")
    if cap is None:
        return
    assert period.lower is not None
    assert period.upper is not None
    # Holds of the weeks the period touches (each counts in the week it starts).
    around = Range(period.lower - timedelta(days=8), period.upper + timedelta(days=8), bounds="[)")
    holds = await _overlapping(db, offer_row.id, around)
    if weekly_cap_exceeded(float(cap), period, holds, ZoneInfo(time_zone)):
        raise Conflict(
            f"This would exceed the {cap} hours a week this staff time can be shared.",
            extra={"max_hours_per_week": float(cap)},
        )


async def _requestable_offer(
    db: Database, principal: Principal, offer_id: uuid.UUID, *, lock: bool = True
) -> tuple[Any, Any]:
    """The offer (locked unless told not to) if the caller may request it now; and its
    pole's settings."""
    if principal.role is Role.auditor:
        raise Forbidden("An auditor's client may only read.")
    offer_row, pole_row = await _offer_and_pole(db, principal, offer_id, lock=lock)
    if offer_row.state != "published":
        raise Conflict(f"The offer is {offer_row.state}: it takes no requests.")
    if offer_row.owner_id == principal.member_id:
        raise _invalid("offer_id", "an offer cannot be requested by its own owner")
    if pole_row is None:
        raise _pole_not_ready()
    return offer_row, pole_row


def _pole_not_ready() -> NotReadyYet:
    return NotReadyYet("This pole's settings have not reached the exchange yet; retry.")


_POLE = hot(select(pole).where(pole.c.id == bindparam("pole_id")))


async def pole_of(db: Database, pole_id: uuid.UUID) -> Any:
    """The copy of a pole's settings; 503 (retry) in the moment before the catalog's event
    announcing it has arrived (its offers' events may come first: other partitions)."""
    row = (await db.execute(_POLE, {"pole_id": pole_id})).first()
    if row is None:
        raise _pole_not_ready()
    return row


def rules_of(pole_row: Any) -> ExchangeRules:
    return ExchangeRules.model_validate(pole_row.exchange_rules or {})


async def _checked_period(
    db: Database, offer_row: Any, pole_row: Any, *, start: datetime, end: datetime
) -> tuple[Range[datetime], Decimal]:
    """The period against the offer's rules and its holds (capacity, weekly cap): 422 or
    409, or the period's range and quantity."""
    period = Range(start, end, bounds="[)")
    check_period(offer_row, pole_row.time_zone, start, end, utcnow())
    quantity = quantity_of(offer_row.unit, start, end, pole_row.time_zone)
    if not _insert_checks_holds(offer_row):
        await _check_holds(db, offer_row, period)
    if offer_row.kind == "staff_time":
        await _check_weekly_cap(db, offer_row, period, pole_row.time_zone)
    return period, quantity


async def _check_holds(db: Database, offer_row: Any, period: Range[datetime]) -> None:
    """409 naming a hold when one more would go past the offer's capacity over ``period``."""
    peak, at = peak_holds(period, await _overlapping(db, offer_row.id, period))
    if peak + 1 > offer_row.capacity:
        raise _conflict(period, at)


def _insert_checks_holds(offer_row: Any) -> bool:
    """Capacity one (and no weekly cap to count): the insert itself is refused if any hold
    overlaps the period (``_insert_request(if_free=True)``), which saves the overlap query's
    round trip on every booking; the query then only runs to name the conflict."""
    cap = (offer_row.attributes or {}).get("max_hours_per_week")
    return bool(offer_row.capacity == 1 and (offer_row.kind != "staff_time" or cap is None))


def counts_holds_under_lock(offer_row: Any) -> bool:
    """Whether booking ``offer_row`` counts its holds (capacity above one, a weekly cap): that
    count needs the offer locked for the rest of a transaction."""
    return offer_row.kind in PERIOD_KINDS and not _insert_checks_holds(offer_row)


_REQUEST_VALUES = {
    column.name: bindparam(column.name, type_=column.type) for column in booking_request.c
}


def _insert_request_statement(*, if_free: bool) -> ReturningInsert[Any]:
    """The insert of a request, which writes nothing unless the offer is still at the version
    its checks read (``offer_version``), and, ``if_free``, no hold overlaps its period.

    The offer's row is share-locked for the statement: a change of the offer waits for it, or
    it for that change, and then sees the new version (and writes nothing). A booking needs no
    other lock when nothing is counted (capacity one: the exclusion constraint refuses two
    exclusive holds at once; ``if_free`` sees the holds written before the offer was made
    exclusive, which the constraint does not cover).
    """
    offer_unchanged = exists(
        select(offer.c.id)
        .where(
            offer.c.id == _REQUEST_VALUES["offer_id"],
            offer.c.version == bindparam("offer_version"),
        )
        .with_for_update(read=True)
    )
    conditions: list[ColumnElement[bool]] = [offer_unchanged]
    if if_free:
        conditions.append(
            ~exists().where(
                booking_request.c.offer_id == _REQUEST_VALUES["offer_id"],
                _HOLDING,
                booking_request.c.period.op("&&")(_REQUEST_VALUES["period"]),
            )
        )
    return (
        insert(booking_request)
        .from_select(list(_REQUEST_VALUES), select(*_REQUEST_VALUES.values()).where(*conditions))
        .returning(*booking_request.c)
    )


_INSERT_REQUEST = _insert_request_statement(if_free=False)
_INSERT_REQUEST_IF_FREE = _insert_request_statement(if_free=True)


class OfferChanged(Exception):
    """The offer changed between the read its checks used and the insert: check again."""


# "… conflicts with existing key (offer_id, period)=(<uuid>, ["<start>","<end>"))."
_EXISTING_PERIOD = re.compile(
    r'existing key \(offer_id, period\)=\([^,]*, \["([^"]+)","([^"]+)"\)\)'
)


def _existing_period(violation: BaseException | None) -> Hold | None:
    """The committed period an exclusion violation names in its detail, if it does."""
    match = _EXISTING_PERIOD.search(str(getattr(violation, "detail", None) or ""))
    if match is None:
        return None
    try:
        start, end = (datetime.fromisoformat(text).astimezone(UTC) for text in match.groups())
    except ValueError:
        return None
    return Hold(Range(start, end, bounds="[)"))


async def _insert_request(
    uow: BaseUnitOfWork,
    db: Database,
    principal: Principal,
    offer_row: Any,
    pole_row: Any,
    *,
    period: Range[datetime] | None,
    quantity: Decimal,
    message: str,
    series_id: uuid.UUID | None = None,
) -> Any:
    """Record a checked request (accepted at once for an instant-booking offer), and its
    events, in one statement; the exclusion constraint has the last word on capacity one.
    :class:`OfferChanged` if the offer is no longer at the version ``offer_row`` read.

    No savepoint: a violation of the constraint aborts a transaction (or the statement
    alone, outside one), and the 409 names the period from the constraint's detail (or the
    requested one), with no further query. A caller that goes on after a refusal in a
    transaction (a series) wraps the call in a savepoint.
    """
    now = utcnow()
    instant = offer_row.booking_mode == "instant"
    answer_by = None
    if not instant:
        answer_by = now + timedelta(hours=rules_of(pole_row).answer_within_hours)
        if period is not None and period.lower is not None:
            answer_by = min(answer_by, period.lower.astimezone(UTC))
    terms = freeze_terms(offer_row, quantity, pole_row.currency) if instant else None
    if period is not None and period.lower is not None and period.upper is not None:
        # In UTC, as the row gives it back: its events say what its answers say.
        period = Range(period.lower.astimezone(UTC), period.upper.astimezone(UTC), bounds="[)")
    values = {
        "id": uuid.uuid4(),
        "pole_id": principal.pole_id,
        "offer_id": offer_row.id,
        "offer_kind": offer_row.kind,
        "provider_id": offer_row.owner_id,
        "requester_id": principal.member_id,
        "period": period,
        "quantity": quantity.quantize(CENT),
        "message": message,
        "state": "accepted" if instant else "requested",
        "exclusive": offer_row.capacity == 1,
        "terms": terms.model_dump(mode="json") if terms else None,
        "answer_by": answer_by,
        "series_id": series_id,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    not_yet = ("reason", "fee_percent", "quantity_used", "objection")
    request = RequestRow(**(dict.fromkeys(not_yet) | {"late": False} | values))
    uow.publish(snapshot(RequestRequested, request))
    if instant:
        uow.publish(snapshot(RequestAccepted, request))
    if_free = period is not None and _insert_checks_holds(offer_row)
    try:
        row = await uow.write_with_events(
            _INSERT_REQUEST_IF_FREE if if_free else _INSERT_REQUEST,
            {**request._asdict(), "offer_version": offer_row.version},
        )
    except IntegrityError as exc:
        violation = getattr(exc.orig, "__cause__", None)
        if isinstance(violation, ExclusionViolationError):
            raise _conflict(period, _existing_period(violation)) from exc
        raise
    if row is None:
        current = (await db.execute(_OFFER_VERSION, {"offer_id": offer_row.id})).scalar()
        if current != offer_row.version or not if_free:
            raise OfferChanged
        assert period is not None  # a hold overlaps: named by the query the insert saved
        await _check_holds(db, offer_row, period)
        raise _conflict(period, None)
    return row


BOOK_ATTEMPTS = 5


async def book(runtime: ServiceRuntime, principal: Principal, command: NewRequest) -> Any:
    """Record a request (no ``Idempotency-Key``); the row written.

    Where no hold is counted here (a capacity-one offer, a service), no transaction: the
    offer is read without a lock, the request checked against it, and one statement writes it
    with its events if the offer is still at the version read (read again and checked again
    otherwise). Where holds are counted, the offer is locked in a transaction
    (:func:`create_request`).
    """
    for _ in range(BOOK_ATTEMPTS):
        async with runtime.connection_uow(autocommit=True) as uow:
            offer_row, pole_row = await _requestable_offer(
                uow.db, principal, command.offer_id, lock=False
            )
            if not counts_holds_under_lock(offer_row):
                try:
                    return await _create_request(uow, principal, command, offer_row, pole_row)
                except OfferChanged:
                    continue
        async with runtime.connection_uow() as uow:
            row = await create_request(uow, principal, command)
            await uow.commit()
            return row
    raise Conflict("The offer keeps changing under this request; retry.")


async def create_request(
    uow: ConnectionUnitOfWork, principal: Principal, command: NewRequest
) -> Any:
    """Record a request in ``uow``'s transaction, the offer locked; the row written."""
    offer_row, pole_row = await _requestable_offer(uow.db, principal, command.offer_id)
    return await _create_request(uow, principal, command, offer_row, pole_row)


async def _create_request(
    uow: ConnectionUnitOfWork,
    principal: Principal,
    command: NewRequest,
    offer_row: Any,
    pole_row: Any,
) -> Any:
    db = uow.db
    period: Range[datetime] | None = None
    if offer_row.kind in PERIOD_KINDS:
        if command.start is None or command.end is None:
            raise _invalid("start", f"a {offer_row.kind} offer is booked for a period")
        if command.quantity is not None:
            # Refused rather than ignored: the quantity (and the price) is the period's.
            raise _invalid("quantity", "a period's quantity is computed from it; leave it out")
        period, quantity = await _checked_period(
            db, offer_row, pole_row, start=command.start, end=command.end
        )
    else:
        if command.quantity is None:
            raise _invalid("quantity", "a service is requested for a quantity")
        quantity = command.quantity
    return await _insert_request(
        uow,
        db,
        principal,
        offer_row,
        pole_row,
        period=period,
        quantity=quantity,
        message=command.message,
    )


class NewSeries(BaseModel):
    """Book the same period every week: the first occurrence and how many weeks in all."""

    model_config = ConfigDict(extra="forbid")

    offer_id: uuid.UUID
    start: Instant = Field(description="Start of the first occurrence, with its offset.")
    end: Instant = Field(description="End of the first occurrence (excluded).")
    weeks: int = Field(ge=2, le=52, description="Occurrences, one a week, the first included.")
    all_or_nothing: bool = Field(
        default=True,
        description="True: any occurrence that cannot be booked books none (409 listing them). "
        "False: the occurrences that can be booked are, the others are listed.",
    )
    message: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _period(self) -> NewSeries:
        if self.end <= self.start:
            raise ValueError("end must be after start (periods are [start, end), never empty)")
        if self.end - self.start > timedelta(weeks=1):
            raise ValueError("a weekly occurrence lasts one week at most")
        # A day of margin: occurrences keep their local time across daylight-saving changes.
        if self.end + timedelta(weeks=self.weeks - 1, days=1) >= END_OF_INSTANTS:
            raise ValueError("the last occurrence would end after 2999")
        return self


def weekly_occurrences(
    start: datetime, end: datetime, weeks: int, time_zone: str
) -> list[tuple[datetime, datetime]]:
    """The same local wall-clock times every week: 9:00 stays 9:00 across a time change."""
    zone = ZoneInfo(time_zone)
    local_start = start.astimezone(zone).replace(tzinfo=None)
    local_end = end.astimezone(zone).replace(tzinfo=None)
    return [
        (
            (local_start + timedelta(weeks=week)).replace(tzinfo=zone),
            (local_end + timedelta(weeks=week)).replace(tzinfo=zone),
        )
        for week in range(weeks)
    ]


@dataclass(frozen=True)
class SeriesOutcome:
    series_id: uuid.UUID
    booked: list[Any]
    conflicts: list[dict[str, Any]]


async def create_series(
    uow: ConnectionUnitOfWork, principal: Principal, command: NewSeries
) -> SeriesOutcome:
    """Every occurrence is checked like a single request, in one transaction under the
    offer's lock; all or nothing, or partial, as the caller chose."""
    db = uow.connection
    offer_row, pole_row = await _requestable_offer(db, principal, command.offer_id)
    if offer_row.kind not in PERIOD_KINDS:
        raise _invalid("offer_id", "only an offer booked for periods can be booked weekly")
    series_id = uuid.uuid4()
    booked: list[Any] = []
    conflicts: list[dict[str, Any]] = []
    for start, end in weekly_occurrences(
        command.start, command.end, command.weeks, pole_row.time_zone
    ):
        try:
            # One savepoint per occurrence: a refused one (even by the exclusion constraint,
            # which aborts what it runs in) leaves the others' transaction usable.
            async with db.begin_nested():
                period, quantity = await _checked_period(
                    db, offer_row, pole_row, start=start, end=end
                )
                row = await _insert_request(
                    uow,
                    db,
                    principal,
                    offer_row,
                    pole_row,
                    period=period,
                    quantity=quantity,
                    message=command.message,
                    series_id=series_id,
                )
        except (Conflict, UnprocessableEntity) as refused:
            conflicts.append(
                {"start": start, "end": end, "detail": refused.detail, **refused.extra}
            )
        else:
            booked.append(row)
    if conflicts and (command.all_or_nothing or not booked):
        raise Conflict(
            f"{len(conflicts)} of {command.weeks} occurrences cannot be booked"
            + ("; none was." if command.all_or_nothing else "."),
            extra={"conflicts": jsonable_encoder(conflicts)},
        )
    return SeriesOutcome(series_id=series_id, booked=booked, conflicts=conflicts)


async def move_where(
    uow: UnitOfWork, condition: Any, changes: dict[str, Any], event: type[RequestSnapshot]
) -> list[Any]:
    """Move every request ``condition`` selects at once (the system's moves: deadlines,
    reactions to the catalog), each with its event."""
    rows = (
        await uow.session.execute(
            update(booking_request)
            .where(condition)
            .values(version=booking_request.c.version + 1, **changes)
            .returning(*booking_request.c)
        )
    ).all()
    for row in rows:
        uow.publish(snapshot(event, row))
    return list(rows)


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
        "fee_percent": row.fee_percent,
        "quantity_used": row.quantity_used,
        "terms": FrozenTerms.model_validate(row.terms) if row.terms else None,
        "series_id": row.series_id,
        "objection": row.objection,
        "version": row.version,
    }


def snapshot(kind: type[RequestSnapshot], row: Any) -> RequestSnapshot:
    return kind(
        request_id=row.id, pole_id=row.pole_id, changed_at=row.updated_at, **request_fields(row)
    )


_REQUEST_OF_POLE = hot(
    select(booking_request).where(
        booking_request.c.id == bindparam("request_id"),
        booking_request.c.pole_id == bindparam("pole_id"),
    )
)
_LOCKED_REQUEST_OF_POLE = _REQUEST_OF_POLE.with_for_update()


async def request_of_pole(
    db: Database, principal: Principal, request_id: uuid.UUID, *, lock: bool = False
) -> Any:
    statement = _LOCKED_REQUEST_OF_POLE if lock else _REQUEST_OF_POLE
    parameters = {"request_id": request_id, "pole_id": principal.pole_id}
    row = (await db.execute(statement, parameters)).first()
    sees = row is not None and (
        principal.role in (Role.coordinator, Role.auditor)
        or principal.member_id in (row.provider_id, row.requester_id)
    )
    if not sees:
        raise NotFound("No such request for you in your pole.")
    return row


MOVED_COLUMNS = (
    "state", "version", "updated_at", "reason", "late", "fee_percent", "quantity_used", "terms"
)  # fmt: skip
# A move is a compare-and-set on the version read: it writes nothing if another writer
# moved the request in between. One statement text for every move (prepared once).
_MOVE = (
    update(booking_request)
    .where(
        booking_request.c.id == bindparam("request_id"),
        booking_request.c.version == bindparam("read_version"),
    )
    .values(
        {
            name: bindparam(f"new_{name}", type_=booking_request.c[name].type)
            for name in MOVED_COLUMNS
        }
    )
    .returning(*booking_request.c)
)
MOVE_ATTEMPTS = 5
# The terms an acceptance freezes: the offer's, in its pole's currency.
_OFFER_AND_CURRENCY = hot(
    select(offer, pole.c.currency.label("pole_currency"))
    .join(pole, pole.c.id == offer.c.pole_id)
    .where(offer.c.id == bindparam("offer_id"))
)


async def move(
    uow: UnitOfWork | ConnectionUnitOfWork,
    principal: Principal,
    request_id: uuid.UUID,
    action: str,
    body: MoveBody,
) -> Any:
    """Move a request (``action``) for ``principal``, with its event; the moved row.

    No lock and no transaction needed: the request is read, the move decided from what was
    read, and the change and its event written in one statement only if the request is still
    at the version read (:meth:`~shared.uow.BaseUnitOfWork.write_with_events`). Otherwise it
    is read again and the move decided again (it may then be refused: a 409 from its new
    state).
    """
    db: Database = uow.session if isinstance(uow, UnitOfWork) else uow.db
    for _ in range(MOVE_ATTEMPTS):
        row = await request_of_pole(db, principal, request_id)
        changes = await _move(db, principal, row, action, body)
        moved = RequestRow(**{**row._asdict(), **changes})
        uow.publish(snapshot(EVENTS[changes["state"]], moved))
        parameters = {f"new_{name}": getattr(moved, name) for name in MOVED_COLUMNS}
        written = await uow.write_with_events(
            _MOVE, {"request_id": row.id, "read_version": row.version, **parameters}
        )
        if written is not None:
            return written
    raise Conflict("The request keeps changing under this move; retry.")


async def _move(
    db: Database, principal: Principal, row: Any, action: str, body: MoveBody
) -> dict[str, Any]:
    """What ``action`` changes in ``row`` for ``principal``; 403, 409 or 422 if it may not."""
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
        rules = await _rules(db, row.pole_id)
        late_within = timedelta(hours=rules.late_cancellation_hours)
        changes["late"] = row.period is not None and now > row.period.lower - late_within
        if changes["late"]:
            changes["fee_percent"] = rules.late_cancellation_fee_percent
    if action == "no_show":
        changes["fee_percent"] = (await _rules(db, row.pole_id)).no_show_fee_percent
    if action == "complete":
        used = body.quantity_used if body.quantity_used is not None else row.quantity
        # As the column keeps it (two places), so that the event says what the row says.
        changes["quantity_used"] = used.quantize(CENT) if used is not None else None
    if target == "accepted":
        offer_row = (await db.execute(_OFFER_AND_CURRENCY, {"offer_id": row.offer_id})).one()
        terms = freeze_terms(offer_row, row.quantity, offer_row.pole_currency)
        changes["terms"] = terms.model_dump(mode="json")
    return changes


async def _rules(db: Database, pole_id: uuid.UUID) -> ExchangeRules:
    return rules_of(await pole_of(db, pole_id))


async def object_to_completion(
    uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, reason: str
) -> Any:
    """A party stops the automatic completion of an accepted booking: the provider (or the
    coordinator) then completes it, with the quantity used, or records a no-show."""
    session = uow.session
    row = await request_of_pole(session, principal, request_id, lock=True)
    if principal.role is Role.auditor:
        raise Forbidden("An auditor's client may only read.")
    if row.state != "accepted":
        raise Conflict(
            f"A {row.state} request is not waiting for its completion.",
            extra={"state": row.state, "allowed": sorted(ALLOWED.get(row.state, {}))},
        )
    if row.objection is not None:
        raise Conflict("Someone already objected to its automatic completion.")
    objected = (
        await session.execute(
            update(booking_request)
            .where(booking_request.c.id == row.id)
            .values(objection=reason, version=row.version + 1, updated_at=utcnow())
            .returning(*booking_request.c)
        )
    ).one()
    uow.publish(snapshot(RequestObjected, objected))
    return objected


class CancelSeries(BaseModel):
    """Cancel the rest of a weekly series: its occurrences starting from ``from``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    reason: str = Field(min_length=1, max_length=1000)
    from_: Instant | None = Field(
        default=None, alias="from", description="Default: now (what has started stays)."
    )


async def series_rows(
    session: AsyncSession, principal: Principal, series_id: uuid.UUID
) -> list[Any]:
    """The occurrences of a series the caller may see (404 when none)."""
    rows = (
        await session.execute(
            select(booking_request)
            .where(
                booking_request.c.series_id == series_id,
                booking_request.c.pole_id == principal.pole_id,
            )
            .order_by(func.lower(booking_request.c.period))
        )
    ).all()
    visible = [
        row
        for row in rows
        if principal.role in (Role.coordinator, Role.auditor)
        or principal.member_id in (row.provider_id, row.requester_id)
    ]
    if not visible:
        raise NotFound("No such series for you in your pole.")
    return visible


async def cancel_series(
    uow: UnitOfWork, principal: Principal, series_id: uuid.UUID, command: CancelSeries
) -> list[Any]:
    """Each remaining occurrence moves as if one by one: accepted ones are cancelled, pending
    ones withdrawn (by the requester) or declined (by the provider), with the reason."""
    rows = await series_rows(uow.session, principal, series_id)
    since = command.from_ or utcnow()
    moved = []
    for row in rows:
        if row.state not in ALLOWED or row.period.lower < since:
            continue
        if row.state == "accepted":
            action = "cancel"
        elif principal.member_id == row.requester_id:
            action = "withdraw"
        else:
            action = "decline"
        moved.append(await move(uow, principal, row.id, action, MoveBody(reason=command.reason)))
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
