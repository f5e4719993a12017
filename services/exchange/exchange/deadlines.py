"""What the exchange does on its own, on a schedule (``ScheduledJob``):

- a request nobody answered by its ``answer_by`` (the pole's answer deadline, or the start of
  its period when that comes first) expires, and its slot is free again;
- an accepted booking is completed with the booked quantity once its end plus the pole's
  grace period have passed, unless a party objected (then the provider completes it, or
  records a no-show, explicitly); a service asked for a quantity, without a period, is never
  completed automatically;
- idempotency keys older than their retention are forgotten.

Each run takes rows with ``FOR UPDATE SKIP LOCKED`` in batches: replicas share the work,
and a row a person is moving at that moment is left for the next run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, select

from exchange.models import booking_request, idempotency_key, pole
from exchange.requests import move_where
from shared.contracts.catalog import ExchangeRules
from shared.contracts.exchange import RequestCompleted, RequestExpired, RequestSnapshot
from shared.idempotency import purge_keys
from shared.runtime import ScheduledJob, ServiceRuntime

BATCH = 500
EXPIRED_REASON = "Nobody answered before the deadline."
COMPLETED_REASON = "Completed automatically after the grace period; nobody objected."


async def _move_batch(
    runtime: ServiceRuntime, due: Any, changes: dict[str, Any], event: type[RequestSnapshot]
) -> int:
    """Move the rows ``due`` selects, batch by batch, skipping rows locked by someone else."""
    moved = 0
    while True:
        batch = due.limit(BATCH).with_for_update(skip_locked=True, of=booking_request)
        async with runtime.uow() as uow:
            rows = await move_where(uow, booking_request.c.id.in_(batch), changes, event)
            await uow.commit()
        moved += len(rows)
        if len(rows) < BATCH:
            return moved


async def expire_unanswered(runtime: ServiceRuntime, now: datetime) -> int:
    due = (
        select(booking_request.c.id)
        .where(booking_request.c.state == "requested", booking_request.c.answer_by <= now)
        .order_by(booking_request.c.answer_by)
    )
    changes = {"state": "expired", "reason": EXPIRED_REASON, "updated_at": now}
    return await _move_batch(runtime, due, changes, RequestExpired)


async def complete_after_grace(runtime: ServiceRuntime, now: datetime) -> int:
    grace_hours = func.coalesce(
        cast(pole.c.exchange_rules["completion_grace_hours"].astext, Integer),
        ExchangeRules().completion_grace_hours,
    )
    end = func.upper(booking_request.c.period)
    due = (
        select(booking_request.c.id)
        .join(pole, pole.c.id == booking_request.c.pole_id)
        .where(
            booking_request.c.state == "accepted",
            booking_request.c.objection.is_(None),
            booking_request.c.period.is_not(None),
            end + func.make_interval(0, 0, 0, 0, grace_hours) <= now,
        )
        .order_by(end)
    )
    changes = {
        "state": "completed",
        "quantity_used": booking_request.c.quantity,
        "reason": COMPLETED_REASON,
        "updated_at": now,
    }
    return await _move_batch(runtime, due, changes, RequestCompleted)


async def purge_idempotency_keys(runtime: ServiceRuntime, now: datetime) -> int:
    before = now - timedelta(hours=runtime.settings.idempotency_key_retention_hours)
    async with runtime.session_factory() as session, session.begin():
        return await purge_keys(session, idempotency_key, before=before)


SCHEDULED_JOBS = (
    ScheduledJob("exchange-expire-unanswered", expire_unanswered),
    ScheduledJob("exchange-complete-after-grace", complete_after_grace),
    ScheduledJob("exchange-purge-idempotency-keys", purge_idempotency_keys),
)
