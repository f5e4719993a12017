"""The exchange service: what it is made of, and its ASGI app (``exchange.service:app``)."""

from __future__ import annotations

from exchange.models import ExchangeModel, outbox, pole, processed_event
from shared.consumer import ConsumerSpec
from shared.contracts.catalog import PoleRegistered, PoleUpdated
from shared.http import create_app
from shared.readmodels import pole_copy_handler
from shared.runtime import ServiceDefinition
from shared.settings import ExchangeSettings

CATALOG_COPY = ConsumerSpec(
    name="catalog-copy",
    handlers={
        PoleRegistered.event_spec.type: pole_copy_handler(pole),
        PoleUpdated.event_spec.type: pole_copy_handler(pole),
    },
)

DEFINITION = ServiceDefinition(
    name="exchange",
    title="PTCE exchange: requests, bookings, availability and calendars",
    metadata=ExchangeModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
)

app = create_app(DEFINITION, ExchangeSettings)
