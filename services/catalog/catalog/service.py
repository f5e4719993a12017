"""The catalog service: what it is made of, and its ASGI app (``catalog.service:app``)."""

from __future__ import annotations

from catalog.models import CatalogModel, outbox, processed_event
from shared.http import create_app
from shared.runtime import ServiceDefinition
from shared.settings import CatalogSettings

DEFINITION = ServiceDefinition(
    name="catalog",
    title="PTCE catalog: poles, members, credentials and offers",
    metadata=CatalogModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
)

app = create_app(DEFINITION, CatalogSettings)
