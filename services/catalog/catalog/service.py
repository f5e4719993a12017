"""The catalog service: what it is made of, and its ASGI app (``catalog.service:app``)."""

from __future__ import annotations

from typing import Any

from catalog import credentials
from catalog.api import router
from catalog.models import CatalogModel, outbox, processed_event
from catalog.offers_api import router as offers_router
from shared.auth import KeyLoader, Principal
from shared.http import create_app
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.settings import CatalogSettings


def _own_keys(runtime: ServiceRuntime) -> KeyLoader:
    """The catalog verifies tokens with the keys in its own database, not over HTTP."""

    async def load() -> dict[str, Any]:
        async with runtime.session_factory() as session:
            return await credentials.public_keys(session)

    return load


async def _still_active(runtime: ServiceRuntime, principal: Principal) -> None:
    async with runtime.session_factory() as session:
        await credentials.refuse_if_inactive(session, principal)


DEFINITION = ServiceDefinition(
    name="catalog",
    title="PTCE catalog: poles, members, credentials and offers",
    metadata=CatalogModel.metadata,
    outbox=outbox,
    processed_event=processed_event,
    routers=(router, offers_router),
    key_loader=_own_keys,
    principal_check=_still_active,
)

app = create_app(DEFINITION, CatalogSettings)
