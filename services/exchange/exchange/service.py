"""The exchange service: what it is made of, and its ASGI app (``exchange.service:app``)."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from exchange.api import router
from exchange.availability import router as availability_router
from exchange.calendars import router as calendar_router
from exchange.corrections import router as correction_router
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


_LEFT_ON = select(member.c.left_on).where(member.c.id == bindparam("member_id"))


async def _still_member(runtime: ServiceRuntime, principal: Principal) -> None:
    """A member that left is refused as soon as its departure reached the local copy.

    Read on every request (no cache: a departure applied by another replica's consumer is
    seen at once), as one statement in autocommit mode: a single round trip."""
    async with runtime.autocommit_engine.connect() as conn:
        left_on = (await conn.execute(_LEFT_ON, {"member_id": principal.member_id})).scalar()
    if left_on is not None:
        raise Unauthorized("This member left the pole.", headers={"WWW-Authenticate": "Bearer"})


DEFINITION = ServiceDefinition(
    name="exchange",
    title="PTCE exchange: requests, bookings, availability and calendars",
    metadata=ExchangeModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    consumers=[CATALOG_COPY],
    routers=(router, correction_router, calendar_router, availability_router),
    principal_check=_still_member,
    scheduled_jobs=SCHEDULED_JOBS,
)

app = create_app(DEFINITION, ExchangeSettings)
