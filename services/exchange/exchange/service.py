"""The exchange service: what it is made of, and its ASGI app (``exchange.service:app``)."""

from __future__ import annotations

from exchange.api import router
from exchange.availability import router as availability_router
from exchange.calendars import router as calendar_router
from exchange.corrections import router as correction_router
from exchange.deadlines import SCHEDULED_JOBS
from exchange.models import ExchangeModel, member, offer, outbox, pole, processed_event
from exchange.reactions import on_member_copied, on_offer_copied
from shared.http import create_app
from shared.readmodels import catalog_copy, refuse_departed_members
from shared.runtime import ServiceDefinition
from shared.settings import ExchangeSettings

CATALOG_COPY = catalog_copy(
    pole,
    member=member,
    offer=offer,
    on_member_copied=on_member_copied,
    on_offer_copied=on_offer_copied,
)


DEFINITION = ServiceDefinition(
    name="exchange",
    title="PTCE exchange: requests, bookings, availability and calendars",
    metadata=ExchangeModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
    routers=(router, correction_router, calendar_router, availability_router),
    principal_check=refuse_departed_members(member),
    scheduled_jobs=SCHEDULED_JOBS,
)

app = create_app(DEFINITION, ExchangeSettings)
