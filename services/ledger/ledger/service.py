"""The ledger service: what it is made of, and its ASGI app (``ledger.service:app``)."""

from __future__ import annotations

from ledger.models import LedgerModel, member, outbox, pole, processed_event
from shared.http import create_app
from shared.readmodels import catalog_copy
from shared.runtime import ServiceDefinition
from shared.settings import LedgerSettings

CATALOG_COPY = catalog_copy(pole, member=member)

DEFINITION = ServiceDefinition(
    name="ledger",
    title="PTCE ledger: double-entry journal of flows in money and in kind, reports and exports",
    metadata=LedgerModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
)

app = create_app(DEFINITION, LedgerSettings)
