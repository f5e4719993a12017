"""The ledger service: what it is made of, and its ASGI app (``ledger.service:app``)."""

from __future__ import annotations

from ledger.models import LedgerModel, outbox, pole, processed_event
from shared.consumer import ConsumerSpec
from shared.contracts.catalog import PoleRegistered, PoleUpdated
from shared.http import create_app
from shared.readmodels import pole_copy_handler
from shared.runtime import ServiceDefinition
from shared.settings import LedgerSettings

CATALOG_COPY = ConsumerSpec(
    name="catalog-copy",
    handlers={
        PoleRegistered.event_spec.type: pole_copy_handler(pole),
        PoleUpdated.event_spec.type: pole_copy_handler(pole),
    },
)

DEFINITION = ServiceDefinition(
    name="ledger",
    title="PTCE ledger: double-entry journal of flows in money and in kind, reports and exports",
    metadata=LedgerModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
)

app = create_app(DEFINITION, LedgerSettings)
