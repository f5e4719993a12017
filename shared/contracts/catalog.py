"""Events the catalog publishes on ``catalog.events``."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.registry import EventPayload, event


class ExchangeRules(BaseModel):
    """A pole's rules for requests between its members (see docs/exchange.md)."""

    model_config = ConfigDict(extra="forbid")

    answer_within_hours: int = Field(
        default=72,
        ge=1,
        le=720,
        description="A request not answered within this time (or by its start) expires.",
    )
    completion_grace_hours: int = Field(
        default=48,
        ge=0,
        le=720,
        description="An accepted booking is completed this long after its end, unless a "
        "party objected.",
    )
    late_cancellation_hours: int = Field(
        default=48,
        ge=0,
        le=720,
        description="A cancellation this close to the start is flagged late.",
    )
    late_cancellation_fee_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Share of the booked price the requester owes the provider for a late "
        "cancellation (none by default).",
    )
    no_show_fee_percent: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Share of the booked price the requester owes the provider for a no-show.",
    )


@event("ptce.catalog.pole.registered.v1", key="pole_id")
class PoleRegistered(EventPayload):
    """A new pole (one PTCE, a tenant) was created, with its settings."""

    pole_id: uuid.UUID
    name: str = Field(max_length=200)
    territory: str = Field(default="", max_length=300)
    time_zone: str = Field(max_length=64)
    currency: str = Field(min_length=3, max_length=3)
    exchange_rules: ExchangeRules = Field(default_factory=ExchangeRules)
    version: int = Field(ge=1)
    registered_at: datetime


@event("ptce.catalog.pole.updated.v1", key="pole_id")
class PoleUpdated(PoleRegistered):
    """A pole's settings changed (name, territory, time zone, exchange rules); the full
    snapshot."""


@event("ptce.catalog.valuation_reference.recorded.v1", key="pole_id")
class ValuationReferenceRecorded(EventPayload):
    """A pole recorded the value of a reference from a date on (for example the hourly value
    of volunteer time). References are never changed: a new value is a new record."""

    reference_id: uuid.UUID
    pole_id: uuid.UUID
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{2,49}$")
    label: str = Field(max_length=200)
    amount: Decimal = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    unit: Literal["hour", "half_day", "day", "unit"]
    valid_from: date
    recorded_at: datetime


class MemberSnapshot(EventPayload):
    """A member (an organisation of a pole) as it is after the change, with its version."""

    member_id: uuid.UUID
    pole_id: uuid.UUID
    legal_name: str = Field(max_length=300)
    siret: str = Field(pattern=r"^[0-9]{14}$")
    category: str = Field(max_length=40)
    is_ess: bool
    headcount: int | None = Field(default=None, ge=0)
    annual_turnover: Decimal | None = Field(default=None, ge=0)
    street: str = Field(max_length=300)
    postal_code: str = Field(max_length=5)
    commune: str = Field(max_length=200)
    insee_code: str = Field(pattern=r"^(?:[0-9]{2}|2A|2B)[0-9]{3}$")
    joined_on: date
    left_on: date | None = None
    version: int = Field(ge=1)
    changed_at: datetime


@event("ptce.catalog.member.registered.v1", key="member_id")
class MemberRegistered(MemberSnapshot):
    """The coordinator onboarded a member."""


@event("ptce.catalog.member.updated.v1", key="member_id")
class MemberUpdated(MemberSnapshot):
    """A member's details changed."""


@event("ptce.catalog.member.left.v1", key="member_id")
class MemberLeft(MemberSnapshot):
    """A member left the pole (``left_on``): it keeps its history and can no longer act."""


class OfferSnapshot(EventPayload):
    """An offer as it is after the change, with its version (the exchange books from it)."""

    offer_id: uuid.UUID
    pole_id: uuid.UUID
    owner_id: uuid.UUID
    kind: Literal["premises", "equipment", "staff_time", "service"]
    state: Literal["draft", "published", "paused", "archived"]
    title: str = Field(max_length=200)
    description: str = Field(max_length=5000)
    street: str | None = None
    postal_code: str | None = None
    commune: str | None = None
    insee_code: str | None = None
    unit: Literal["hour", "half_day", "day", "unit"] | None = None
    capacity: int = Field(ge=1)
    booking_mode: Literal["instant", "approval"]
    internal_price: Decimal | None = Field(default=None, ge=0)
    reference_value: Decimal | None = Field(default=None, ge=0)
    valuation_basis: Literal["market_price", "cost_price", "volunteer_time"] | None = None
    attributes: dict[str, Any] = Field(
        description="The kind's own attributes: premises (surface_m2, seats, accessible, "
        "amenities), equipment (category, condition, can_leave_premises), staff_time (role, "
        "skills, employer_member_id, max_hours_per_week, regime, cost_per_unit, "
        "management_fee_percent), service (deliverable)."
    )
    availability: dict[str, Any] = Field(
        description="weekly_hours [{weekday 0=Monday, opens, closes}] in the pole's time zone, "
        "closures [{start_date, end_date, reason}], min_booking_minutes, max_booking_minutes, "
        "min_notice_hours."
    )
    version: int = Field(ge=1)
    changed_at: datetime


@event("ptce.catalog.offer.published.v1", key="offer_id")
class OfferPublished(OfferSnapshot):
    """An offer became bookable (first publication, or again after a pause)."""


@event("ptce.catalog.offer.updated.v1", key="offer_id")
class OfferUpdated(OfferSnapshot):
    """A published, paused or archived offer's details changed."""


@event("ptce.catalog.offer.paused.v1", key="offer_id")
class OfferPaused(OfferSnapshot):
    """An offer stopped taking new requests for now."""


@event("ptce.catalog.offer.archived.v1", key="offer_id")
class OfferArchived(OfferSnapshot):
    """An offer was withdrawn for good."""
