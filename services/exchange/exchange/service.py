"""The exchange service: what it is made of, and its ASGI app (``exchange.service:app``)."""

from __future__ import annotations

from sqlalchemy import select

from exchange.api import router
from exchange.availability import router as availability_router
from exchange.calendars import router as calendar_router
from exchange.deadlines import SCHEDULED_JOBS
from exchange.models import ExchangeModel, member, offer, outbox, pole, processed_event
from exchange.reactions import on_member_copied, on_offer_copied
from shared.auth import Principal
from shared.errors import Unauthorized
from shared.http import create_app
from shared.readmodels import catalog_copy
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import ExchangeSettings

CATALOG_COPY = catalog_copy(
    pole,
    member=member,
    offer=offer,
    on_member_copied=on_member_copied,
    on_offer_copied=on_offer_copied,
)


async def _still_member(runtime: ServiceRuntime, principal: Principal) -> None:
    """A member that left is refused as soon as its departure reached the local copy."""
    async with runtime.session_factory() as session:
        left_on = await session.scalar(
            select(member.c.left_on).where(member.c.id == principal.member_id)
        )
    if left_on is not None:
        raise Unauthorized("This member left the pole.", headers={"WWW-Authenticate": "Bearer"})


DEFINITION = ServiceDefinition(
    name="exchange",
    title="PTCE exchange: requests, bookings, availability and calendars",
    metadata=ExchangeModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
    routers=(router, calendar_router, availability_router),
    principal_check=_still_member,
    scheduled_jobs=SCHEDULED_JOBS,
)

app = create_app(DEFINITION, ExchangeSettings)
