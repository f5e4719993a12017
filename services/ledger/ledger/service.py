"""The ledger service: what it is made of, and its ASGI app (``ledger.service:app``)."""

from __future__ import annotations

from ledger.direct import router as direct_router
from ledger.entries import router as entries_router
from ledger.fec import router as fec_router
from ledger.models import LedgerModel, member, outbox, pole, processed_event
from ledger.postings import EXCHANGE_VALUATION, on_reference
from ledger.reports import router as reports_router
from shared.consumer import ConsumerSpec
from shared.contracts.catalog import ValuationReferenceRecorded
from shared.http import create_app
from shared.readmodels import catalog_copy, refuse_departed_members
from shared.runtime import ServiceDefinition
from shared.settings import LedgerSettings

_COPIES = catalog_copy(pole, member=member)
CATALOG_COPY = ConsumerSpec(
    name=_COPIES.name,
    handlers={**_COPIES.handlers, ValuationReferenceRecorded.event_spec.type: on_reference},
)

DEFINITION = ServiceDefinition(
    name="ledger",
    title="PTCE ledger: double-entry journal of flows in money and in kind, reports and exports",
    metadata=LedgerModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY, EXCHANGE_VALUATION],
    routers=(entries_router, direct_router, reports_router, fec_router),
    principal_check=refuse_departed_members(member),
)

app = create_app(DEFINITION, LedgerSettings)
