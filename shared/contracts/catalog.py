"""Events the catalog publishes on ``catalog.events``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from shared.events.registry import EventPayload, event


@event("ptce.catalog.pole.registered.v1", key="pole_id")
class PoleRegistered(EventPayload):
    """A new pole (one PTCE, a tenant) was created, with its settings."""

    pole_id: uuid.UUID
    name: str = Field(max_length=200)
    time_zone: str = Field(max_length=64)
    currency: str = Field(min_length=3, max_length=3)
    version: int = Field(ge=1)
    registered_at: datetime
