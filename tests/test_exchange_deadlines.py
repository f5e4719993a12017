"""What the exchange does on its own: expiry, automatic completion, purge of retry keys; and
the pole's rules that drive them, set in the catalog and carried by its events."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text

from exchange.deadlines import COMPLETED_REASON, EXPIRED_REASON, purge_idempotency_keys
from exchange.models import idempotency_key
from ptce.testing.api import Caller, outbox_types, problem
from ptce.testing.exchange import Market, at, next_monday, parties
from ptce.testing.helpers import eventually
from shared.db import utcnow


async def _state(ex: Caller, request_id: str) -> str:
    return str((await ex.get(f"/requests/{request_id}")).json()["state"])


async def test_an_unanswered_request_expires_at_the_poles_deadline_and_frees_its_slot(
    market: Market,
) -> None:
    coordinator, provider, requester = await parties(market)
    await market.set_rules(coordinator, answer_within_hours=5)
    offer = await market.published(provider)
    day = next_monday()
    slot = {"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 12)}
    ex = market.on_exchange(requester)
    asked = await ex.post("/requests", json=slot)
    assert asked.status_code == 201, asked.text
    body = asked.json()
    answer_by = datetime.fromisoformat(body["answer_by"])
    created = datetime.fromisoformat(body["created_at"])
    assert answer_by - created == timedelta(hours=5)
    assert problem(await ex.post("/requests", json=slot), 409)  # the pending request holds

    # Five hours later (the row's deadline moved into the past), the scheduler expires it.
    async with market.runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE booking_request SET answer_by = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": uuid.UUID(body["id"])},
        )

    async def expired() -> bool:
        return await _state(ex, body["id"]) == "expired"

    await eventually(expired)
    final = (await ex.get(f"/requests/{body['id']}")).json()
    assert final["reason"] == EXPIRED_REASON
    assert final["answer_by"] is None
    assert (await outbox_types(market.runtime.engine, body["id"]))[-1] == (
        "ptce.exchange.request.expired.v1"
    )
    late_answer = await market.on_exchange(provider).post(f"/requests/{body['id']}/accept")
    assert problem(late_answer, 409)["allowed"] == []
    again = await ex.post("/requests", json=slot)
    assert again.status_code == 201, again.text


async def test_a_request_expires_at_its_start_when_that_comes_before_the_deadline(
    market: Market,
) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(provider)
    day = next_monday()
    asked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 10)}
    )
    body = asked.json()
    # The default deadline is 72 h; a start sooner than that is the deadline.
    start = datetime.fromisoformat(body["start"])
    expected = min(datetime.fromisoformat(body["created_at"]) + timedelta(hours=72), start)
    assert datetime.fromisoformat(body["answer_by"]) == expected


async def test_a_booking_completes_after_the_grace_period_unless_a_party_objects(
    market: Market,
) -> None:
    coordinator, provider, requester = await parties(market)
    await market.set_rules(coordinator, completion_grace_hours=2)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday()
    ex = market.on_exchange(requester)
    ids = []
    for start, end in [(9, 11), (14, 16), (16, 18)]:
        made = await ex.post(
            "/requests",
            json={"offer_id": offer["id"], "start": at(day, start), "end": at(day, end)},
        )
        assert made.json()["state"] == "accepted", made.text
        ids.append(made.json()["id"])
    quiet, disputed, within_grace = ids
    objection = await ex.post(f"/requests/{disputed}/object", json={"reason": "Salle inutilisable"})
    assert objection.status_code == 200, objection.text
    assert objection.json()["objection"] == "Salle inutilisable"
    again = await ex.post(f"/requests/{disputed}/object", json={"reason": "encore"})
    assert problem(again, 409)
    # Two ended three hours ago or more (past the 2-hour grace), one ended an hour ago.
    ends = {quiet: -3, disputed: -6, within_grace: -1}
    for request_id, hours in ends.items():
        await market.shift_period(
            request_id, start_in=timedelta(hours=hours - 2), length=timedelta(hours=2)
        )

    async def completed() -> bool:
        return await _state(ex, quiet) == "completed"

    await eventually(completed)
    done = (await ex.get(f"/requests/{quiet}")).json()
    assert Decimal(done["quantity_used"]) == Decimal(done["quantity"]) == 1
    assert done["reason"] == COMPLETED_REASON
    assert (await outbox_types(market.runtime.engine, quiet))[-1] == (
        "ptce.exchange.request.completed.v1"
    )
    # A few more sweeps: the disputed one and the one within its grace stay accepted.
    runs = 0

    async def swept() -> bool:
        nonlocal runs
        runs += 1
        return runs > 4

    await eventually(swept, interval=0.5)
    assert await _state(ex, disputed) == "accepted"
    assert await _state(ex, within_grace) == "accepted"
    assert "ptce.exchange.request.objected.v1" in await outbox_types(
        market.runtime.engine, disputed
    )
    # The provider settles the disputed one explicitly.
    settled = await market.on_exchange(provider).post(
        f"/requests/{disputed}/complete", json={"quantity_used": "0.5"}
    )
    assert settled.json()["state"] == "completed"
    assert settled.json()["quantity_used"] == "0.50"


async def test_only_a_party_objects_and_only_to_an_accepted_booking(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    bystander = await market.catalog.new_member(coordinator)
    offer = await market.published(provider)
    day = next_monday()
    asked = await market.on_exchange(requester).post(
        "/requests", json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 10)}
    )
    request_id = asked.json()["id"]
    url = f"/requests/{request_id}/object"
    pending = await market.on_exchange(requester).post(url, json={"reason": "non"})
    assert problem(pending, 409)["state"] == "requested"
    await market.on_exchange(provider).post(f"/requests/{request_id}/accept")
    stranger = await market.on_exchange(bystander).post(url, json={"reason": "non"})
    assert problem(stranger, 404)
    empty = await market.on_exchange(provider).post(url, json={"reason": ""})
    assert problem(empty, 422)


async def test_the_poles_rules_decide_what_is_late_and_what_it_costs(market: Market) -> None:
    coordinator, provider, requester = await parties(market)
    offer = await market.published(provider, booking_mode="instant")
    day = next_monday(weeks=1)
    ex = market.on_exchange(requester)

    async def cancelled(hour: int) -> dict[str, Any]:
        made = await ex.post(
            "/requests",
            json={"offer_id": offer["id"], "start": at(day, hour), "end": at(day, hour + 1)},
        )
        cancelled = await ex.post(f"/requests/{made.json()['id']}/cancel", json={"reason": "x"})
        assert cancelled.status_code == 200, cancelled.text
        answer: dict[str, Any] = cancelled.json()
        return answer

    early = await cancelled(9)  # more than 48 h ahead
    assert (early["late"], early["fee_percent"]) == (False, None)
    await market.set_rules(
        coordinator, late_cancellation_hours=720, late_cancellation_fee_percent=30
    )
    late = await cancelled(10)  # within 30 days
    assert (late["late"], late["fee_percent"]) == (True, 30)
    # The fee is the rule's when the cancellation was recorded: a later change leaves it.
    await market.set_rules(
        coordinator, late_cancellation_hours=720, late_cancellation_fee_percent=80
    )
    assert (await ex.get(f"/requests/{late['id']}")).json()["fee_percent"] == 30


async def test_rules_are_validated_and_only_a_coordinator_sets_them(market: Market) -> None:
    coordinator = await market.catalog.new_pole()
    member = await market.catalog.new_member(coordinator)
    current = await coordinator.get("/pole")
    assert current.json()["exchange_rules"] == {
        "answer_within_hours": 72,
        "completion_grace_hours": 48,
        "late_cancellation_hours": 48,
        "late_cancellation_fee_percent": 0,
        "no_show_fee_percent": 0,
    }
    etag = current.headers["etag"]
    for bad in ({"answer_within_hours": 0}, {"completion_grace_hours": 10_000}, {"fee": 1}):
        refused = await coordinator.patch(
            "/pole", json={"exchange_rules": bad}, headers={"If-Match": etag}
        )
        assert problem(refused, 422)
    by_member = await member.patch(
        "/pole", json={"exchange_rules": {"answer_within_hours": 4}}, headers={"If-Match": etag}
    )
    assert problem(by_member, 403)
    kept = await coordinator.patch(
        "/pole", json={"exchange_rules": {"answer_within_hours": 4}}, headers={"If-Match": etag}
    )
    assert kept.json()["exchange_rules"]["answer_within_hours"] == 4
    assert kept.json()["exchange_rules"]["completion_grace_hours"] == 48


async def test_idempotency_keys_are_forgotten_after_their_retention(market: Market) -> None:
    _, provider, requester = await parties(market)
    offer = await market.published(
        provider, kind="service", unit="hour", attributes={"deliverable": "Conseil"}
    )
    ex = market.on_exchange(requester)
    headers = {"Idempotency-Key": "commande-1"}
    body = {"offer_id": offer["id"], "quantity": "2"}
    first = await ex.post("/requests", json=body, headers=headers)
    assert (await ex.post("/requests", json=body, headers=headers)).json() == first.json()

    kept = await purge_idempotency_keys(market.runtime, utcnow() + timedelta(hours=23))
    assert kept == 0
    purged = await purge_idempotency_keys(market.runtime, utcnow() + timedelta(hours=25))
    assert purged == 1
    async with market.runtime.session_factory() as session:
        assert await session.scalar(select(func.count()).select_from(idempotency_key)) == 0
    after = await ex.post("/requests", json=body, headers=headers)
    assert after.status_code == 201
    assert after.json()["id"] != first.json()["id"]
