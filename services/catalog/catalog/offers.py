"""Offers: what members share (premises, equipment, staff time, services), their rules and life.

Life cycle: draft → published ⇄ paused, and any of them → archived (final). A draft may be
incomplete; publishing checks that everything a booking needs is there. Events are published
from the first publication on (drafts are private to their owner): each carries the full
current snapshot and its version, so other services keep exact copies.
"""

from __future__ import annotations

import uuid
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from catalog.identifiers import check_insee_code
from catalog.models import Offer
from shared.contracts.catalog import (
    OfferArchived,
    OfferPaused,
    OfferPublished,
    OfferSnapshot,
    OfferUpdated,
)
from shared.db import utcnow
from shared.errors import Conflict, UnprocessableEntity
from shared.limits import Day
from shared.uow import UnitOfWork

Money = Annotated[Decimal, Field(ge=0, le=Decimal("9999999.99"), decimal_places=2)]
InseeCode = Annotated[str, Field(min_length=5, max_length=5), AfterValidator(check_insee_code)]


class Kind(StrEnum):
    premises = "premises"
    equipment = "equipment"
    staff_time = "staff_time"
    service = "service"


class Unit(StrEnum):
    hour = "hour"
    half_day = "half_day"
    day = "day"
    unit = "unit"


class BookingMode(StrEnum):
    instant = "instant"
    approval = "approval"


class ValuationBasis(StrEnum):
    market_price = "market_price"
    cost_price = "cost_price"
    volunteer_time = "volunteer_time"


class State(StrEnum):
    draft = "draft"
    published = "published"
    paused = "paused"
    archived = "archived"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Premises(_Strict):
    surface_m2: Decimal = Field(gt=0, le=100_000)
    seats: int = Field(ge=1, le=10_000)
    accessible: bool = Field(description="Accessible to people with reduced mobility.")
    amenities: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )


class Equipment(_Strict):
    category: str = Field(min_length=1, max_length=100)
    condition: Literal["new", "good", "fair", "worn"]
    can_leave_premises: bool


class StaffTime(_Strict):
    role: str = Field(min_length=1, max_length=200)
    skills: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    employer_member_id: uuid.UUID = Field(
        description="The employer of record: a member of the pole, often an employers' group."
    )
    max_hours_per_week: Decimal = Field(gt=0, le=48)
    regime: Literal["direct_loan", "employers_group"]
    cost_per_unit: Money | None = Field(
        default=None,
        description="Full cost per unit (salary, charges, expenses); required for a direct loan, "
        "whose internal price may not exceed it (non-profit loan of staff).",
    )
    management_fee_percent: Decimal | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _regime_rules(self) -> StaffTime:
        if self.regime == "direct_loan":
            if self.cost_per_unit is None:
                raise ValueError("a direct loan of staff needs its cost_per_unit")
            if self.management_fee_percent is not None:
                raise ValueError("only an employers' group adds a management fee")
        return self


class Service(_Strict):
    deliverable: str = Field(min_length=1, max_length=2000)


ATTRIBUTES: dict[Kind, type[_Strict]] = {
    Kind.premises: Premises,
    Kind.equipment: Equipment,
    Kind.staff_time: StaffTime,
    Kind.service: Service,
}


class WeeklyHours(_Strict):
    weekday: int = Field(ge=0, le=6, description="0 = Monday … 6 = Sunday.")
    opens: time
    closes: time

    @field_validator("closes")
    @classmethod
    def _after_opening(cls, closes: time, info: ValidationInfo) -> time:
        opens = info.data.get("opens")
        if opens is not None and closes <= opens:
            raise ValueError("closing time must be after opening time")
        return closes


class Closure(_Strict):
    start_date: Day
    end_date: Day
    reason: str = Field(default="", max_length=200)

    @field_validator("end_date")
    @classmethod
    def _not_before_start(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and end < start:
            raise ValueError("a closure cannot end before it starts")
        return end


class Availability(_Strict):
    """When an offer can be booked, in the pole's time zone."""

    weekly_hours: list[WeeklyHours] = Field(default_factory=list, max_length=50)
    closures: list[Closure] = Field(default_factory=list, max_length=200)
    min_booking_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 366)
    max_booking_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 366)
    min_notice_hours: int = Field(default=0, ge=0, le=24 * 366)

    @model_validator(mode="after")
    def _consistent(self) -> Availability:
        low, high = self.min_booking_minutes, self.max_booking_minutes
        if low is not None and high is not None and high < low:
            raise ValueError("max_booking_minutes is below min_booking_minutes")
        return self


class OfferFields(_Strict):
    """What an owner writes. Everything but kind and title may wait until publication."""

    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=5000)
    street: str | None = Field(default=None, min_length=1, max_length=300)
    postal_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    commune: str | None = Field(default=None, min_length=1, max_length=200)
    insee_code: InseeCode | None = None
    unit: Unit | None = None
    capacity: int = Field(default=1, ge=1, le=10_000)
    booking_mode: BookingMode = BookingMode.approval
    internal_price: Money | None = Field(default=None, description="Per unit; may be zero.")
    reference_value: Money | None = Field(
        default=None, description="Market value per unit: the basis of in-kind valuation."
    )
    valuation_basis: ValuationBasis | None = None
    attributes: dict[str, Any] | None = Field(
        default=None, description="The kind's own attributes (see the kinds' schemas)."
    )
    availability: Availability = Field(default_factory=Availability)


class CreateOffer(OfferFields):
    kind: Kind
    owner_id: uuid.UUID | None = Field(
        default=None, description="The owning member; only the coordinator may name another."
    )


class UpdateOffer(_Strict):
    """Fields to change; those left out are kept. The kind and the owner never change."""

    title: str | None = Field(default=None, min_length=3, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    street: str | None = Field(default=None, min_length=1, max_length=300)
    postal_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    commune: str | None = Field(default=None, min_length=1, max_length=200)
    insee_code: InseeCode | None = None
    unit: Unit | None = None
    capacity: int | None = Field(default=None, ge=1, le=10_000)
    booking_mode: BookingMode | None = None
    internal_price: Money | None = None
    reference_value: Money | None = None
    valuation_basis: ValuationBasis | None = None
    attributes: dict[str, Any] | None = None
    availability: Availability | None = None


class OfferOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    pole_id: uuid.UUID
    owner_id: uuid.UUID
    kind: Kind
    state: State
    title: str
    description: str
    street: str | None
    postal_code: str | None
    commune: str | None
    insee_code: str | None
    unit: Unit | None
    capacity: int
    booking_mode: BookingMode
    internal_price: Decimal | None
    reference_value: Decimal | None
    valuation_basis: ValuationBasis | None
    attributes: dict[str, Any] | None
    availability: dict[str, Any]
    version: int


def check_attributes(kind: Kind, attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    """Validate the kind's attributes; 422 naming the fields."""
    if attributes is None:
        return None
    try:
        model = ATTRIBUTES[kind].model_validate(attributes)
    except ValueError as exc:
        errors: list[Any] = getattr(exc, "errors", list)()
        raise UnprocessableEntity(
            f"Invalid attributes for a {kind.value} offer.",
            invalid_params=[
                {
                    "name": ".".join(["body", "attributes", *map(str, e["loc"])]),
                    "reason": e["msg"],
                }
                for e in errors
            ]
            or [{"name": "body.attributes", "reason": str(exc)}],
        ) from exc
    return model.model_dump(mode="json")


def check_staff_price(offer: Offer) -> None:
    """A member lending its staff directly invoices at cost at most."""
    if offer.kind != Kind.staff_time or not offer.attributes or offer.internal_price is None:
        return
    if offer.attributes.get("regime") != "direct_loan":
        return
    cost = Decimal(str(offer.attributes["cost_per_unit"]))
    if offer.internal_price > cost:
        raise UnprocessableEntity(
            "A member lending its staff directly may not charge more than their cost.",
            invalid_params=[
                {
                    "name": "body.internal_price",
                    "reason": f"above the cost per unit ({cost}) of a direct loan of staff",
                }
            ],
        )


_REQUIRED_TO_PUBLISH = (
    "description",
    "street",
    "postal_code",
    "commune",
    "insee_code",
    "unit",
    "internal_price",
    "reference_value",
    "valuation_basis",
    "attributes",
)


def missing_to_publish(offer: Offer) -> list[str]:
    missing = [name for name in _REQUIRED_TO_PUBLISH if getattr(offer, name) in (None, "")]
    if offer.kind != Kind.service and not offer.availability.get("weekly_hours"):
        missing.append("availability.weekly_hours")
    return missing


def snapshot(kind: type[OfferSnapshot], offer: Offer) -> OfferSnapshot:
    return kind(
        offer_id=offer.id,
        pole_id=offer.pole_id,
        owner_id=offer.owner_id,
        kind=offer.kind,
        state=offer.state,
        title=offer.title,
        description=offer.description,
        street=offer.street,
        postal_code=offer.postal_code,
        commune=offer.commune,
        insee_code=offer.insee_code,
        unit=offer.unit,
        capacity=offer.capacity,
        booking_mode=offer.booking_mode,
        internal_price=offer.internal_price,
        reference_value=offer.reference_value,
        valuation_basis=offer.valuation_basis,
        attributes=offer.attributes or {},
        availability=offer.availability,
        version=offer.version,
        changed_at=offer.updated_at,
    )


def new_offer(pole_id: uuid.UUID, owner_id: uuid.UUID, command: CreateOffer) -> Offer:
    fields = command.model_dump(mode="json", exclude={"owner_id", "attributes"})
    offer = Offer(
        pole_id=pole_id,
        owner_id=owner_id,
        state=State.draft.value,
        attributes=check_attributes(command.kind, command.attributes),
        **{
            **fields,
            "internal_price": command.internal_price,
            "reference_value": command.reference_value,
        },
    )
    check_staff_price(offer)
    return offer


def _touch(offer: Offer) -> None:
    offer.version += 1
    offer.updated_at = utcnow()


def update_offer(uow: UnitOfWork, offer: Offer, command: UpdateOffer) -> None:
    if offer.state == State.archived:
        raise Conflict("An archived offer is final.", extra={"state": offer.state})
    changes = command.model_dump(mode="json", exclude_unset=True)
    for name in ("title", "description", "capacity", "booking_mode", "availability"):
        if name in changes and changes[name] is None:
            raise UnprocessableEntity(
                f"{name} cannot be null.",
                invalid_params=[{"name": f"body.{name}", "reason": "null"}],
            )
    if "attributes" in changes:
        changes["attributes"] = check_attributes(Kind(offer.kind), command.attributes)
    for money in ("internal_price", "reference_value"):
        if money in changes:
            changes[money] = getattr(command, money)
    for name, value in changes.items():
        setattr(offer, name, value)
    check_staff_price(offer)
    if offer.state == State.published and (missing := missing_to_publish(offer)):
        raise UnprocessableEntity(
            "A published offer must stay complete.",
            invalid_params=[{"name": f"body.{m}", "reason": "required"} for m in missing],
        )
    _touch(offer)
    if offer.published_at is not None:
        uow.publish(snapshot(OfferUpdated, offer))


ALLOWED_MOVES: dict[State, dict[str, State]] = {
    State.draft: {"publish": State.published, "archive": State.archived},
    State.published: {"pause": State.paused, "archive": State.archived},
    State.paused: {"publish": State.published, "archive": State.archived},
    State.archived: {},
}
_EVENT_OF_MOVE: dict[str, type[OfferSnapshot]] = {
    "publish": OfferPublished,
    "pause": OfferPaused,
    "archive": OfferArchived,
}


def move(uow: UnitOfWork, offer: Offer, action: str) -> None:
    state = State(offer.state)
    target = ALLOWED_MOVES[state].get(action)
    if target is None:
        raise Conflict(
            f"A {state.value} offer cannot {action}.",
            extra={"state": state.value, "allowed": sorted(ALLOWED_MOVES[state])},
        )
    if target == State.published and (missing := missing_to_publish(offer)):
        raise UnprocessableEntity(
            "The offer is not complete enough to be published.",
            invalid_params=[{"name": m, "reason": "required to publish"} for m in missing],
        )
    was_public = offer.published_at is not None
    offer.state = target.value
    if target == State.published and offer.published_at is None:
        offer.published_at = utcnow()
    _touch(offer)
    if was_public or target == State.published:
        uow.publish(snapshot(_EVENT_OF_MOVE[action], offer))
