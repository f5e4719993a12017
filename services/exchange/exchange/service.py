"""The exchange service: what it is made of, and its ASGI app (``exchange.service:app``)."""

from __future__ import annotations

from exchange.models import ExchangeModel, member, offer, outbox, pole, processed_event
from shared.http import create_app
from shared.readmodels import catalog_copy
from shared.runtime import ServiceDefinition
from shared.settings import ExchangeSettings

CATALOG_COPY = catalog_copy(pole, member=member, offer=offer)

DEFINITION = ServiceDefinition(
    name="exchange",
    title="PTCE exchange: requests, bookings, availability and calendars",
    metadata=ExchangeModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
)

app = create_app(DEFINITION, ExchangeSettings)
