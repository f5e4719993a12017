"""Events the exchange publishes on ``exchange.events``.

Every move of a request is an event carrying the request's full snapshot and, once accepted,
its frozen terms: the ledger values exchanges from these events alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field

from shared.events.registry import EventPayload, event


class FrozenTerms(BaseModel):
    """What was agreed when the request was accepted; later offer changes never touch it."""

    unit: Literal["hour", "half_day", "day", "unit"]
    quantity: Decimal = Field(ge=0, description="Booked quantity, in ``unit``.")
    internal_price: Decimal = Field(ge=0, description="Per unit.")
    reference_value: Decimal = Field(ge=0, description="Market value per unit.")
    valuation_basis: Literal["market_price", "cost_price", "volunteer_time"]
    currency: str = Field(min_length=3, max_length=3)
    management_fee_percent: Decimal | None = Field(default=None, ge=0)
    employer_member_id: uuid.UUID | None = None
    staff_regime: Literal["direct_loan", "employers_group"] | None = None
    offer_version: int = Field(ge=1)


class RequestSnapshot(EventPayload):
    request_id: uuid.UUID
    pole_id: uuid.UUID
    offer_id: uuid.UUID
    offer_kind: Literal["premises", "equipment", "staff_time", "service"]
    provider_id: uuid.UUID
    requester_id: uuid.UUID
    state: Literal[
        "requested",
        "accepted",
        "declined",
        "withdrawn",
        "expired",
        "cancelled",
        "completed",
        "no_show",
    ]
    start: datetime | None = None
    end: datetime | None = None
    quantity: Decimal | None = Field(default=None, ge=0)
    reason: str | None = None
    late: bool = Field(default=False, description="Cancelled close to the start.")
    fee_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="For a late cancellation or a no-show: the share of the booked price the "
        "requester owes the provider, by the pole's rule when the exchange recorded it. "
        "Absent from events recorded before it was carried: the ledger then applies its copy "
        "of the rule.",
    )
    quantity_used: Decimal | None = Field(
        default=None, ge=0, description="Confirmed on completion, in the terms' unit."
    )
    terms: FrozenTerms | None = None
    series_id: uuid.UUID | None = Field(
        default=None, description="The weekly series this occurrence belongs to."
    )
    objection: str | None = Field(
        default=None, description="Why a party objected to the automatic completion."
    )
    version: int = Field(ge=1)
    changed_at: datetime


@event("ptce.exchange.request.requested.v1", key="request_id")
class RequestRequested(RequestSnapshot):
    """A member asked another member of its pole for one of its offers."""


@event("ptce.exchange.request.accepted.v1", key="request_id")
class RequestAccepted(RequestSnapshot):
    """The provider accepted (or the offer books instantly); the terms are frozen."""


@event("ptce.exchange.request.declined.v1", key="request_id")
class RequestDeclined(RequestSnapshot):
    """The provider declined, with a reason."""


@event("ptce.exchange.request.withdrawn.v1", key="request_id")
class RequestWithdrawn(RequestSnapshot):
    """The requester withdrew its request before an answer."""


@event("ptce.exchange.request.expired.v1", key="request_id")
class RequestExpired(RequestSnapshot):
    """Nobody answered the request before the pole's deadline (or its start): its slot is
    free again."""


@event("ptce.exchange.request.objected.v1", key="request_id")
class RequestObjected(RequestSnapshot):
    """A party objected to the automatic completion of an accepted booking: the provider
    now confirms the quantity used, or records a no-show, explicitly."""


@event("ptce.exchange.request.cancelled.v1", key="request_id")
class RequestCancelled(RequestSnapshot):
    """An accepted request was cancelled by either side, with a reason; ``late`` when close
    to the start."""


@event("ptce.exchange.request.completed.v1", key="request_id")
class RequestCompleted(RequestSnapshot):
    """The exchange took place; ``quantity_used`` is what the ledger values."""


@event("ptce.exchange.request.corrected.v1", key="request_id")
class RequestCorrected(RequestSnapshot):
    """The quantity used of a completed exchange was corrected (by its provider or the
    coordinator, with a reason): the ledger reverses what it posted and posts it again."""


@event("ptce.exchange.request.no_show.v1", key="request_id")
class RequestNoShow(RequestSnapshot):
    """The requester did not come; the provider recorded it."""
