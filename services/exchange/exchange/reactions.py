"""How the exchange reacts to the catalog (rules written in docs/exchange.md):

- an offer paused takes no new requests (``create_request`` refuses it); what was agreed
  stands;
- an offer archived: its pending requests are declined and its accepted bookings that have
  not started are cancelled, with a reason both members see;
- a member who left: the same for each of its offers; its own pending requests are
  withdrawn and its own bookings that have not started are cancelled.

These cancellations are never flagged late: neither party chose them. Bookings under way and
services accepted without a period are left for the provider to complete. Each reaction runs
in the transaction that applies the catalog's event, its events through the outbox, only
when the event changed the copy: a replayed or older snapshot does nothing twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from exchange.models import booking_request, offer
from exchange.requests import move_where
from shared.contracts.catalog import MemberSnapshot, OfferSnapshot
from shared.contracts.exchange import RequestCancelled, RequestDeclined, RequestWithdrawn
from shared.db import utcnow
from shared.uow import UnitOfWork

ARCHIVED = "The offer was withdrawn from the catalog."
LEFT = "{name} left the pole."


def _not_started(now: Any) -> Any:
    return and_(
        booking_request.c.state == "accepted",
        booking_request.c.period.is_not(None),
        func.lower(booking_request.c.period) > now,
    )


async def _release(uow: UnitOfWork, of_offers: Any, reason: str) -> None:
    now = utcnow()
    pending = and_(of_offers, booking_request.c.state == "requested")
    declined = {"state": "declined", "reason": reason, "updated_at": now}
    await move_where(uow, pending, declined, RequestDeclined)
    cancelled = {"state": "cancelled", "reason": reason, "late": False, "updated_at": now}
    await move_where(uow, and_(of_offers, _not_started(now)), cancelled, RequestCancelled)


async def on_offer_copied(uow: UnitOfWork, snapshot: Any) -> None:
    assert isinstance(snapshot, OfferSnapshot)
    if snapshot.state == "archived":
        await _release(uow, booking_request.c.offer_id == snapshot.offer_id, ARCHIVED)


async def on_member_copied(uow: UnitOfWork, snapshot: Any) -> None:
    assert isinstance(snapshot, MemberSnapshot)
    if snapshot.left_on is None:
        return
    reason = LEFT.format(name=snapshot.legal_name)
    its_offers = booking_request.c.offer_id.in_(
        select(offer.c.id).where(offer.c.owner_id == snapshot.member_id)
    )
    await _release(uow, its_offers, reason)
    now = utcnow()
    its_requests = booking_request.c.requester_id == snapshot.member_id
    pending = and_(its_requests, booking_request.c.state == "requested")
    withdrawn = {"state": "withdrawn", "reason": reason, "updated_at": now}
    await move_where(uow, pending, withdrawn, RequestWithdrawn)
    cancelled = {"state": "cancelled", "reason": reason, "late": False, "updated_at": now}
    await move_where(uow, and_(its_requests, _not_started(now)), cancelled, RequestCancelled)
