"""A model of the exchange's rules and of what the ledger makes of them, run against the
services by Hypothesis' stateful testing.

Random sequences of steps — publish an offer, request it, accept, decline, withdraw, cancel,
complete, record a no-show, settle the members' balances — are sent to the catalog, the
exchange and the ledger (in process, on real PostgreSQL and broker, wired by real events), and
each is played as well on a small model of the rules, written here in plain Python without the
services' code: who may move a request from which state, what a period is in each unit, when
an offer's holds leave no room, when a cancellation is late, what an exchange is worth in money
and in kind, who owes whom. After every step:

- every request the exchange reports is in the state the model says, with its quantities and
  its frozen terms; every answer is the one the model predicts (201, 200, or the refusal);
- once the events have reached the ledger, each member's activity (by resource, provided and
  received, in money and in kind) is the model's, and so is the number of entries;
- every entry is balanced, debits against credits, in each currency; over the pole, what was
  provided is what was received; the hash chain is intact (judged once the entries arrived).

Settling reads the proposal (each member's balance with the others, which must be the model's,
and the fewest payments, which the model counts by brute force) and posts the payments.

Each example plays in a pole of its own (tenants keep data apart), so one set of services
serves them all; the next example's pole is made while an example runs. Hypothesis is
synchronous: the machine runs in a worker thread and sends each call through the services'
event loop (as ``test_fuzz_openapi.py`` does). Generation is derandomised and bounded
(``PTCE_MODEL_EXAMPLES`` examples of ``PTCE_MODEL_STEPS`` steps; ``PTCE_MODEL_SEED`` explores
other sequences by hand) and never shrinks: a failure prints its steps as they ran.

What the model found is pinned by the tests after it, one case each.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    get_state_machine_test,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import select

from ledger.models import pole as ledger_pole
from ptce.testing.api import Caller, staff_time
from ptce.testing.exchange import PARIS, at, next_monday
from ptce.testing.helpers import eventually
from ptce.testing.ledger import Books

EXAMPLES = int(os.environ.get("PTCE_MODEL_EXAMPLES", "15"))
STEPS = int(os.environ.get("PTCE_MODEL_STEPS", "25"))
SEED = os.environ.get("PTCE_MODEL_SEED")
"""Another seed, to explore other sequences than the derandomised ones (by hand)."""

pytestmark = pytest.mark.filterwarnings(
    # The services use the `random` module on their event loop (the broker client picks nodes
    # with it) while the machine draws in its thread: Hypothesis takes it for a strategy's use.
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

T = TypeVar("T")
ZERO = Decimal(0)

# --- The model --------------------------------------------------------------------------------
#
# The offers' rules, as the model knows them (and as the offers are published): open on
# Mondays 9:00–18:00 and Wednesdays 9:00–12:30, closed from 24 December to 1 January, bookings
# of one to ten hours, a day's notice. Requests are for days a week ahead at least, so the
# notice never matters and a cancellation is late only when the test brings the booking close
# to its start (within the pole's 48 hours).

OPENING = {0: (time(9), time(18)), 2: (time(9), time(12, 30))}
SHORTEST, LONGEST = timedelta(hours=1), timedelta(hours=10)
HOLDING = {"requested", "accepted", "completed", "no_show"}
"""States that keep a slot; declined, withdrawn and cancelled requests free it."""
MOVES = {
    "requested": {"accept": "accepted", "decline": "declined", "withdraw": "withdrawn"},
    "accepted": {"cancel": "cancelled", "complete": "completed", "no_show": "no_show"},
}
PROVIDER_MOVES = {"accept", "decline", "complete", "no_show"}
MEMBERS = ("A", "B", "C")
COORDINATOR = "coordinator"
FIGURES = ("provided_monetary", "provided_in_kind", "received_monetary", "received_in_kind")
Figures = dict[str, Decimal]


def closed(day: date) -> bool:
    return (day.month, day.day) >= (12, 24) or (day.month, day.day) == (1, 1)


def availability(years: range) -> dict[str, Any]:
    """The offers' rules, as the catalog takes them."""
    return {
        "weekly_hours": [
            {"weekday": weekday, "opens": f"{opens:%H:%M}", "closes": f"{closes:%H:%M}"}
            for weekday, (opens, closes) in OPENING.items()
        ],
        "closures": [
            {"start_date": f"{year}-12-24", "end_date": f"{year + 1}-01-01", "reason": "Fêtes"}
            for year in years
        ],
        "min_booking_minutes": SHORTEST.seconds // 60,
        "max_booking_minutes": LONGEST.seconds // 60,
        "min_notice_hours": 24,
    }


@dataclass(frozen=True)
class Period:
    """A period asked for, ``[start, end)``, local time."""

    start: datetime
    end: datetime

    def __repr__(self) -> str:
        return f"{self.start:%a %d %b %H:%M}–{self.end:%H:%M}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


STARTS = [time(9), time(10), time(11), time(12), time(9, 30), time(13), time(16, 30), time(8, 30)]
LENGTHS = [timedelta(minutes=minutes) for minutes in (60, 120, 180, 90, 30)]


def quantity_of(unit: str, start: datetime, end: datetime) -> Decimal:
    """What a period within one day is in the offer's unit: hours; half-days touched (the
    morning before 13:00, the afternoon from 13:00); or one day."""
    match unit:
        case "hour":
            return Decimal((end - start).seconds) / 3600
        case "half_day":
            return Decimal(int(start.time() < time(13)) + int(end.time() > time(13)))
        case _:
            return Decimal(1)


@dataclass
class Offer:
    number: int
    id: str
    owner: str
    kind: str
    """premises, staff_time, or service (asked for a quantity, without a period)."""
    unit: str
    capacity: int
    instant: bool
    price: Decimal
    reference: Decimal
    weekly_hours: Decimal | None = None
    """Staff time: the most hours its holds may take in a week."""
    fee_percent: Decimal | None = None
    """Staff time shared by an employers' group: the group's fee, owed to the employer."""
    employer: str | None = None

    def __repr__(self) -> str:
        mode = "instant" if self.instant else "on approval"
        return f"offer {self.number} ({self.kind} of {self.owner} by {self.unit}, {mode})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass
class Request:
    number: int
    id: str
    offer: Offer
    requester: str
    state: str
    quantity: Decimal
    start: datetime | None = None
    end: datetime | None = None
    moved: str = "ahead"
    """Where the test moved its period (the API books only ahead of time): ``ahead``, as
    booked; ``soon``, starting within two days; ``started``, begun."""
    late: bool = False
    quantity_used: Decimal | None = None
    accepted: bool = False

    def __repr__(self) -> str:
        when = f" {self.start:%a %d %H:%M}–{self.end:%H:%M}" if self.start and self.end else ""
        return f"request {self.number} ({self.state}, {self.requester} → {self.offer!r}{when})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    @property
    def provider(self) -> str:
        return self.offer.owner

    def seen(self) -> dict[str, Any]:
        """What the exchange should say of it: terms are frozen on acceptance."""
        offer = self.offer
        terms = (offer.unit, self.quantity, offer.price, offer.reference) if self.accepted else None
        return {
            "state": self.state,
            "late": self.late,
            "quantity": self.quantity,
            "quantity_used": self.quantity_used,
            "terms": terms,
        }


def fewest_payments(balances: dict[str, Decimal]) -> int:
    """The fewest payments that bring every balance to zero, by brute force: the members owed
    or owing, less the most groups that each sum to zero they split into (a group settles with
    one payment fewer than its members)."""

    def most_groups(left: tuple[Decimal, ...]) -> int:
        if not left:
            return 0
        first, rest = left[0], left[1:]
        best = 0
        for mask in range(1 << len(rest)):
            if first + sum((rest[i] for i in range(len(rest)) if mask >> i & 1), ZERO) == 0:
                others = tuple(rest[i] for i in range(len(rest)) if not mask >> i & 1)
                best = max(best, 1 + most_groups(others))
        return best

    owed = tuple(amount for amount in balances.values() if amount)
    return len(owed) - most_groups(owed)


@dataclass
class Model:
    """A pole's offers and requests, and what its ledger should say of them."""

    days: list[date]
    """The days requests ask for."""
    late_fee_percent: int
    no_show_fee_percent: int
    offers: list[Offer] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    activity: dict[str, dict[str, Figures]] = field(default_factory=dict)
    """Member → resource → the four figures of its activity."""
    balance: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(MEMBERS, ZERO))
    """What the other members owe a member, less what it owes them."""
    entries: int = 0
    """Entries in the journal: a sum owed is an entry in each member's book, a contribution
    in kind one in the book of the member who receives it."""

    def periods(self) -> list[Period]:
        """The periods requests ask for: within the offers' rules, or not."""
        return [
            Period(start, start + length)
            for day in self.days
            for start in (datetime.combine(day, at, PARIS) for at in STARTS)
            for length in LENGTHS
        ]

    def pending(self, state: str) -> bool:
        """Whether a request waits in ``state`` (the moves from it are then worth trying)."""
        return any(request.state == state for request in self.requests)

    def holds(self, offer: Offer) -> Iterator[tuple[datetime, datetime]]:
        """The periods held of ``offer`` on the days requests ask for."""
        for request in self.requests:
            if (
                request.offer is offer
                and request.state in HOLDING
                and request.moved == "ahead"
                and request.start is not None
                and request.end is not None
            ):
                yield request.start, request.end

    def refusal(self, offer: Offer, requester: str, start: datetime, end: datetime) -> str | None:
        """Why a request for ``[start, end)`` is refused, if it is: the offer's rules first (its
        owner does not request it; opening hours, length, closures), then the room left (the
        capacity at every instant, the staff's hours in the week)."""
        if requester == offer.owner:
            return "own offer"
        opening = OPENING.get(start.weekday())
        if opening is None or not opening[0] <= start.time() < end.time() <= opening[1]:
            return "closed"
        if not SHORTEST <= end - start <= LONGEST:
            return "length"
        if closed(start.date()):
            return "closed"
        holds = list(self.holds(offer))
        instant = start
        while instant < end:
            if sum(1 for begins, ends in holds if begins <= instant < ends) >= offer.capacity:
                return "capacity"
            instant += timedelta(minutes=30)
        if offer.weekly_hours is not None:
            week = start.isocalendar()[:2]
            held = sum(
                (
                    quantity_of("hour", begins, ends)
                    for begins, ends in holds
                    if begins.isocalendar()[:2] == week
                ),
                ZERO,
            )
            if held + quantity_of("hour", start, end) > offer.weekly_hours:
                return "hours a week"
        return None

    def answer(self, request: Request, move: str, actor: str, *, reason: bool) -> int:
        """The status a move gets: 404 for a member not party to it; 409 from a state that does
        not allow it; 403 by the wrong side (the provider's moves are the provider's or the
        coordinator's; the requester withdraws; either side cancels); 422 without the reason
        declining and cancelling need; 409 to complete or record a no-show before the start."""
        if actor not in (request.provider, request.requester, COORDINATOR):
            return 404
        if move not in MOVES.get(request.state, {}):
            return 409
        provider_side = actor in (request.provider, COORDINATOR)
        if (move in PROVIDER_MOVES and not provider_side) or (
            move == "withdraw" and actor != request.requester
        ):
            return 403
        if move in ("decline", "cancel") and not reason:
            return 422
        if move in ("complete", "no_show") and request.start and request.moved != "started":
            return 409
        return 200

    def flow(
        self,
        resource: str,
        provider: str,
        receiver: str,
        *,
        money: Decimal,
        in_kind: Decimal = ZERO,
    ) -> None:
        """``provider`` gave ``receiver`` what is worth ``money`` (which ``receiver`` owes it)
        and ``in_kind``."""
        for member, direction in ((provider, "provided"), (receiver, "received")):
            figures = self.activity.setdefault(member, {}).setdefault(
                resource, dict.fromkeys(FIGURES, ZERO)
            )
            figures[f"{direction}_monetary"] += money
            figures[f"{direction}_in_kind"] += in_kind
        self.balance[provider] += money
        self.balance[receiver] -= money
        self.entries += 2 * (money > 0) + (in_kind > 0)

    def moved(self, request: Request, move: str, quantity_used: Decimal | None = None) -> None:
        """``request`` moved: its new state, and what it is worth."""
        request.state = MOVES[request.state][move]
        offer = request.offer
        if request.state == "accepted":
            request.accepted = True
        elif request.state == "cancelled":
            request.late = request.moved != "ahead"
            if request.late:
                self.fee(request, self.late_fee_percent)
        elif request.state == "no_show":
            self.fee(request, self.no_show_fee_percent)
        elif request.state == "completed":
            used = request.quantity if quantity_used is None else quantity_used
            request.quantity_used = used
            # Money at the internal price; in kind, what the reference value adds to it.
            self.flow(
                offer.kind,
                offer.owner,
                request.requester,
                money=offer.price * used,
                in_kind=max(offer.reference - offer.price, ZERO) * used,
            )
            # The group's fee on the time used, unless the group booked the time itself: a
            # member owes itself nothing.
            if offer.fee_percent and offer.employer and offer.employer != request.requester:
                fee = offer.price * used * offer.fee_percent / 100
                self.flow("management_fee", offer.employer, request.requester, money=fee)

    def fee(self, request: Request, percent: int) -> None:
        """The pole's fee for a late cancellation or a no-show: a share of the booked price."""
        amount = request.offer.price * request.quantity * percent / 100
        self.flow("cancellation_fee", request.provider, request.requester, money=amount)

    def paid(self, payer: str, payee: str, amount: Decimal) -> None:
        """A settlement: money, not activity."""
        self.balance[payer] += amount
        self.balance[payee] -= amount
        self.entries += 2

    def figures(self, member: str) -> dict[str, Figures]:
        """A member's activity by resource, leaving out what sums to nothing."""
        return {
            resource: figures
            for resource, figures in self.activity.get(member, {}).items()
            if any(figures.values())
        }


# --- Driving the services from the machine's thread ------------------------------------------


@dataclass
class Services:
    """The services, on their event loop; and the next example's pole, made meanwhile."""

    books: Books
    loop: asyncio.AbstractEventLoop
    spare: Future[dict[str, Caller]] | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the services' event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=120)

    def new_pole(self) -> dict[str, Caller]:
        """A new pole's coordinator and members A, B, C, once the ledger knows them."""
        if self.spare is None:
            self.spare = asyncio.run_coroutine_threadsafe(self._pole(), self.loop)
        callers = self.spare.result(timeout=120)
        self.spare = asyncio.run_coroutine_threadsafe(self._pole(), self.loop)
        return callers

    async def _pole(self) -> dict[str, Caller]:
        catalog = self.books.market.catalog
        coordinator = await catalog.new_pole("Pôle modèle")
        callers = {COORDINATOR: coordinator}
        for name in MEMBERS:
            callers[name] = await catalog.new_member(coordinator, legal_name=f"Membre {name}")
        await self.books.knows(*callers.values())
        return callers

    async def close(self) -> None:
        """Let the pole made for an example that never came finish."""
        if self.spare is not None:
            await asyncio.wait([asyncio.wrap_future(self.spare)])


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _seen(item: dict[str, Any]) -> dict[str, Any]:
    """What the exchange says of a request, as the model says it."""
    terms = item["terms"]
    return {
        "state": item["state"],
        "late": item["late"],
        "quantity": _decimal(item["quantity"]),
        "quantity_used": _decimal(item["quantity_used"]),
        "terms": None
        if terms is None
        else (
            terms["unit"],
            Decimal(terms["quantity"]),
            Decimal(terms["internal_price"]),
            Decimal(terms["reference_value"]),
        ),
    }


ACTORS = ("provider", "provider", "provider", COORDINATOR, "requester", "bystander")
"""Who makes a move: mostly the provider; at times the coordinator, the requester or the
member who is no party to it."""
SHIFT_SPACING = timedelta(minutes=40)
"""Between the periods the test moves (each lasts half an hour): none overlaps another."""


class ExchangeAndLedger(RuleBasedStateMachine):
    """One example: a pole's members act on the services and on the model alike."""

    services: ClassVar[Services]

    def __init__(self) -> None:
        super().__init__()
        self.books = self.services.books
        self.callers: dict[str, Caller] = {}
        self.shifts = 0
        self.checked_entries = 0
        """Entries of the journal the last check of the ledger found."""

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.services.run(coroutine)

    def exchange(self, name: str) -> Caller:
        return self.books.market.on_exchange(self.callers[name])

    def ledger(self, name: str) -> Caller:
        return self.books.on_ledger(self.callers[name])

    def name_of(self, member_id: str) -> str:
        return next(name for name, c in self.callers.items() if str(c.member_id) == member_id)

    # --- the pole ----------------------------------------------------------------------------

    @initialize(late_fee=st.sampled_from([0, 50, 100]), no_show_fee=st.sampled_from([0, 50]))
    def new_pole(self, late_fee: int, no_show_fee: int) -> None:
        """A pole with its coordinator and three members, and its fees for late cancellations
        and no-shows (percentages of the booked price). (Made on the first publication: an
        example Hypothesis gives up before any step costs nothing.)"""
        first = next_monday(weeks=1)
        days = sorted({first, first + timedelta(days=2), next_monday(weeks=2)})
        self.model = Model(days=days, late_fee_percent=late_fee, no_show_fee_percent=no_show_fee)

    def open_pole(self) -> None:
        if self.callers:
            return
        self.callers = self.services.new_pole()
        if self.model.late_fee_percent or self.model.no_show_fee_percent:
            self.run(self._set_fees())

    async def _set_fees(self) -> None:
        coordinator = self.callers[COORDINATOR]
        rules = {
            "late_cancellation_fee_percent": self.model.late_fee_percent,
            "no_show_fee_percent": self.model.no_show_fee_percent,
        }
        await self.books.market.set_rules(coordinator, **rules)

        async def in_the_ledger() -> bool:
            async with self.books.runtime.session_factory() as session:
                copied = await session.scalar(
                    select(ledger_pole.c.exchange_rules).where(
                        ledger_pole.c.id == coordinator.pole_id
                    )
                )
            return copied is not None and rules.items() <= copied.items()

        await eventually(in_the_ledger)

    # --- publish -----------------------------------------------------------------------------

    @precondition(lambda self: len(self.model.offers) < 4)
    @rule(
        owner=st.sampled_from(MEMBERS),
        kind=st.sampled_from(["premises", "staff_time", "service"]),
        instant=st.booleans(),
        capacity=st.sampled_from([1, 2]),
        data=st.data(),
    )
    def publish(
        self, owner: str, kind: str, instant: bool, capacity: int, data: st.DataObject
    ) -> None:
        """A member publishes a room (by the day, the half-day or the hour), staff time (lent at
        cost, or shared by an employers' group that adds its fee) or a service."""
        self.open_pole()
        number = len(self.model.offers) + 1
        fee_percent = employer = weekly_hours = None
        body: dict[str, Any]
        if kind == "premises":
            unit = data.draw(st.sampled_from(["day", "half_day", "hour"]), label="unit")
            price = data.draw(st.sampled_from([0, 40, 80]), label="price")
            reference = data.draw(st.sampled_from([60, 200]), label="reference value")
            body = {"unit": unit}
        elif kind == "staff_time":
            unit, reference = "hour", 45
            price = data.draw(st.sampled_from([20, 30]), label="price")
            weekly_hours = Decimal(data.draw(st.sampled_from([3, 7]), label="hours a week"))
            body = staff_time(self.callers[owner].member_id, max_hours_per_week=int(weekly_hours))
            if data.draw(st.booleans(), label="employers' group"):
                employer = data.draw(st.sampled_from(MEMBERS), label="employer")
                fee_percent = Decimal(10)
                body["attributes"] = {
                    "role": "Animatrice",
                    "employer_member_id": str(self.callers[employer].member_id),
                    "max_hours_per_week": int(weekly_hours),
                    "regime": "employers_group",
                    "management_fee_percent": int(fee_percent),
                }
        else:
            unit, reference = "hour", 60
            price = data.draw(st.sampled_from([0, 40]), label="price")
            body = {"unit": unit, "attributes": {"deliverable": "Un bilan comptable"}}
        years = range(self.model.days[0].year - 1, self.model.days[-1].year + 1)
        body |= {
            "kind": kind,
            "title": f"Offre {number}",
            "capacity": capacity,
            "booking_mode": "instant" if instant else "approval",
            "availability": availability(years),
            "internal_price": f"{price}.00",
            "reference_value": f"{reference}.00",
            "valuation_basis": "cost_price" if kind == "staff_time" else "market_price",
        }
        published = self.run(self.books.market.published(self.callers[owner], **body))
        self.model.offers.append(
            Offer(
                number=number,
                id=published["id"],
                owner=owner,
                kind=kind,
                unit=unit,
                capacity=capacity,
                instant=instant,
                price=Decimal(price),
                reference=Decimal(reference),
                weekly_hours=weekly_hours,
                fee_percent=fee_percent,
                employer=employer,
            )
        )

    # --- request -----------------------------------------------------------------------------

    @precondition(lambda self: self.model.offers)
    @rule(data=st.data())
    def request(self, data: st.DataObject) -> None:
        """A member asks for an offer: a period, or a quantity of a service. It is booked (at
        once for an instant offer), or refused by the offer's rules (422) or for lack of room
        (409, naming the period it runs into, or the hours a week)."""
        offer = data.draw(st.sampled_from(self.model.offers), label="offer")
        others = [member for member in MEMBERS if member != offer.owner]
        requester = data.draw(st.sampled_from([*others, offer.owner]), label="requester")
        body: dict[str, Any] = {"offer_id": offer.id}
        start = end = None
        if offer.kind == "service":
            quantity = data.draw(st.sampled_from([Decimal(1), Decimal("2.5")]), label="quantity")
            body["quantity"] = str(quantity)
            refusal = "own offer" if requester == offer.owner else None
        else:
            periods = self.model.periods()
            free = [p for p in periods if not self.model.refusal(offer, requester, p.start, p.end)]
            if free and data.draw(st.integers(0, 3), label="free") < 3:
                period = data.draw(st.sampled_from(free), label="period")
            else:
                period = data.draw(st.sampled_from(periods), label="period")
            start, end = period.start, period.end
            body |= {"start": start.isoformat(), "end": end.isoformat()}
            quantity = quantity_of(offer.unit, start, end)
            refusal = self.model.refusal(offer, requester, start, end)
        answer = self.run(self.exchange(requester).post("/requests", json=body))
        expected = {None: 201, "capacity": 409, "hours a week": 409}.get(refusal, 422)
        assert answer.status_code == expected, (refusal, answer.text)
        if refusal == "capacity":
            clash = answer.json()["conflicting_period"]
            named = (datetime.fromisoformat(clash["start"]), datetime.fromisoformat(clash["end"]))
            assert named in set(self.model.holds(offer)), clash
        elif refusal == "hours a week":
            assert Decimal(str(answer.json()["max_hours_per_week"])) == offer.weekly_hours
        if refusal is not None:
            return
        made = Request(
            number=len(self.model.requests) + 1,
            id=answer.json()["id"],
            offer=offer,
            requester=requester,
            state="requested",
            quantity=quantity,
            start=start,
            end=end,
        )
        if offer.instant:
            self.model.moved(made, "accept")
        self.model.requests.append(made)
        assert _seen(answer.json()) == made.seen()

    # --- moves -------------------------------------------------------------------------------

    def pick(self, data: st.DataObject, state: str) -> Request:
        """A request, mostly one in ``state`` (if there is one), at times any."""
        fitting = [r for r in self.model.requests if r.state == state]
        if fitting and data.draw(st.integers(0, 3), label="in that state") < 3:
            return data.draw(st.sampled_from(fitting), label="request")
        return data.draw(st.sampled_from(self.model.requests), label="request")

    def actor(self, request: Request, data: st.DataObject, choices: tuple[str, ...]) -> str:
        chosen = data.draw(st.sampled_from(choices), label="by")
        if chosen == "provider":
            return request.provider
        if chosen == "requester":
            return request.requester
        if chosen == "bystander":
            return next(m for m in MEMBERS if m not in (request.provider, request.requester))
        return chosen

    def shift(self, request: Request, to: str) -> None:
        """Move an accepted booking's period, as time would: ``soon``, starting within the
        late-cancellation window, or ``started``, begun. (Half an hour long, each in a slot of
        its own: within the 48 hours after which a booking completes by itself.)"""
        if request.state != "accepted" or request.start is None or request.moved == to:
            return
        self.shifts += 1
        start_in = self.shifts * SHIFT_SPACING * (1 if to == "soon" else -1)
        self.run(
            self.books.market.shift_period(
                request.id, start_in=start_in, length=timedelta(minutes=30)
            )
        )
        request.moved = to

    def move(
        self,
        request: Request,
        move: str,
        actor: str,
        *,
        reason: bool = False,
        quantity_used: Decimal | None = None,
    ) -> None:
        expected = self.model.answer(request, move, actor, reason=reason)
        body: dict[str, Any] = {}
        if reason:
            body["reason"] = "Une raison"
        if quantity_used is not None:
            body["quantity_used"] = str(quantity_used)
        url = f"/requests/{request.id}/{move.replace('_', '-')}"
        answer = self.run(self.exchange(actor).post(url, json=body or None))
        assert answer.status_code == expected, (request, move, actor, answer.text)
        if expected == 200:
            self.model.moved(request, move, quantity_used)
            assert _seen(answer.json()) == request.seen()
        elif expected == 409:
            refused = answer.json()
            assert (refused["state"], refused["allowed"]) == (
                request.state,
                sorted(MOVES.get(request.state, {})),
            )

    @precondition(lambda self: self.model.pending("requested"))
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        """The provider (or the coordinator) accepts a pending request: its terms are frozen."""
        request = self.pick(data, "requested")
        self.move(request, "accept", self.actor(request, data, ACTORS))

    @precondition(lambda self: self.model.pending("requested"))
    @rule(data=st.data(), reason=st.sampled_from([True, True, True, False]))
    def decline(self, data: st.DataObject, reason: bool) -> None:
        """The provider declines a pending request, with a reason: its slot is free again."""
        request = self.pick(data, "requested")
        self.move(request, "decline", self.actor(request, data, ACTORS), reason=reason)

    @precondition(lambda self: self.model.pending("requested"))
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        """The requester withdraws its pending request (only the requester may)."""
        request = self.pick(data, "requested")
        choices = ("requester", "requester", COORDINATOR, "provider")
        self.move(request, "withdraw", self.actor(request, data, choices))

    @precondition(lambda self: self.model.pending("accepted"))
    @rule(data=st.data(), soon=st.booleans(), reason=st.sampled_from([True, True, True, False]))
    def cancel(self, data: st.DataObject, soon: bool, reason: bool) -> None:
        """Either side (or the coordinator) cancels an accepted booking, with a reason; late, and
        charged the pole's fee, close to its start."""
        request = self.pick(data, "accepted")
        if soon:
            self.shift(request, "soon")
        choices = ("requester", "provider", COORDINATOR, "bystander")
        self.move(request, "cancel", self.actor(request, data, choices), reason=reason)

    @precondition(lambda self: self.model.pending("accepted"))
    @rule(
        data=st.data(),
        started=st.sampled_from([True, True, True, False]),
        used=st.sampled_from([None, None, Decimal(0), Decimal("0.5"), Decimal("1.25")]),
    )
    def complete(self, data: st.DataObject, started: bool, used: Decimal | None) -> None:
        """The provider confirms, once it started, that an accepted booking took place, with
        the quantity used (the booked one when it gives none): the ledger values it."""
        request = self.pick(data, "accepted")
        if started:
            self.shift(request, "started")
        self.move(request, "complete", self.actor(request, data, ACTORS), quantity_used=used)

    @precondition(lambda self: self.model.pending("accepted"))
    @rule(data=st.data(), started=st.sampled_from([True, True, True, False]))
    def no_show(self, data: st.DataObject, started: bool) -> None:
        """The provider records, once the booking started, that the requester did not come:
        the pole's no-show fee."""
        request = self.pick(data, "accepted")
        if started:
            self.shift(request, "started")
        self.move(request, "no_show", self.actor(request, data, ACTORS))

    # --- settle ------------------------------------------------------------------------------

    @property
    def period(self) -> dict[str, str]:
        """Days around today: every posting of an example is in them."""
        today = datetime.now(PARIS).date()
        return {"from": f"{today - timedelta(days=10)}", "to": f"{today + timedelta(days=10)}"}

    @precondition(lambda self: any(self.model.balance.values()))
    @rule(pay=st.sampled_from([True, True, False]))
    def settle(self, pay: bool) -> None:
        """The coordinator reads the settlement proposal — each member's balance with the
        others, and the fewest payments that settle them — and pays: balances are then zero,
        and the members' activity does not change (a payment is no exchange)."""
        proposal = self.run(self.ledger(COORDINATOR).get("/pole/settlement", params=self.period))
        assert proposal.status_code == 200, proposal.text
        balances = {
            self.name_of(row["member_id"]): Decimal(row["balance"])
            for row in proposal.json()["balances"]
        }
        owed = {name: amount for name, amount in self.model.balance.items() if amount}
        assert balances == owed
        payments = [
            (self.name_of(p["from"]), self.name_of(p["to"]), Decimal(p["amount"]))
            for p in proposal.json()["payments"]
        ]
        assert len(payments) == fewest_payments(owed), payments
        after = dict(owed)
        for payer, payee, amount in payments:
            after[payer] += amount
            after[payee] -= amount
        assert not any(after.values()), payments
        if not pay:
            return
        for payer, payee, amount in payments:
            posted = self.run(
                self.ledger(COORDINATOR).post(
                    "/postings",
                    json={
                        "kind": "settlement",
                        "on": f"{datetime.now(PARIS).date()}",
                        "label": "Règlement entre membres",
                        "amount": str(amount),
                        "member_id": str(self.callers[payer].member_id),
                        "to_member_id": str(self.callers[payee].member_id),
                    },
                )
            )
            assert posted.status_code == 201, posted.text
            self.model.paid(payer, payee, amount)

    # --- after every step --------------------------------------------------------------------

    @invariant()
    def the_exchange_agrees(self) -> None:
        """Every request of the pole is where the model says."""
        if not self.callers:
            return
        listed = self.run(self.exchange(COORDINATOR).get("/requests", params={"limit": 200}))
        assert listed.status_code == 200, listed.text
        seen = {item["id"]: _seen(item) for item in listed.json()["items"]}
        assert seen == {request.id: request.seen() for request in self.model.requests}

    @invariant()
    def the_ledger_agrees(self) -> None:
        """Once the events arrived, the ledger says what the model says, and keeps its own
        rules."""
        if self.callers:
            self.run(self._ledger_agrees())

    def teardown(self) -> None:
        """Once every event of the example is applied, the ledger still agrees: nothing was
        posted late. (Not after a failed step, whose report says what went wrong: Hypothesis
        tears down in a ``finally``, where the failure is the exception being handled.)"""
        if self.callers and sys.exc_info()[1] is None:
            self.run(self.books.quiet())
            self.run(self._ledger_agrees(wait=False))

    async def _chain(self) -> dict[str, Any]:
        """The check of the pole's hash chain: its entries, and whether it is intact."""
        chain = await self.ledger(COORDINATOR).get("/pole/chain")
        assert chain.status_code == 200, chain.text
        body: dict[str, Any] = chain.json()
        return body

    async def _activity(self) -> dict[str, dict[str, Figures]]:
        """Each member's activity by resource, as the ledger reports it to the member."""
        reported = {}
        for name in MEMBERS:
            member = self.ledger(name)
            answer = await member.get(f"/members/{member.member_id}/activity", params=self.period)
            assert answer.status_code == 200, answer.text
            reported[name] = {
                row["resource"]: {figure: Decimal(row[figure]) for figure in FIGURES}
                for row in answer.json()["by_resource"]
            }
        return reported

    async def _ledger_agrees(self, *, wait: bool = True) -> None:
        """The journal has the entries the model counts (once they arrived: thirty seconds at
        most), its hash chain is intact, and the members' activity is the model's. The journal
        is append-only: with no new entry since the last check, nothing changed. (The chain is
        judged at rest: see the last test for a check made while entries are posted.)"""
        chain = await self._chain()
        clock = asyncio.get_running_loop().time
        deadline = clock() + 30
        while wait and chain["entries"] != self.model.entries and clock() < deadline:
            await asyncio.sleep(0.05)
            chain = await self._chain()
        entries = chain["entries"]
        if entries == self.model.entries == self.checked_entries:
            assert chain["intact"], chain
            return
        reported = await self._activity()
        expected = {name: self.model.figures(name) for name in MEMBERS}
        assert (reported, entries) == (expected, self.model.entries)
        assert chain["intact"], chain
        pole: dict[tuple[str, str], Decimal] = {}
        for by_resource in reported.values():
            for resource, figures in by_resource.items():
                for figure, amount in figures.items():
                    direction, nature = figure.split("_", 1)
                    signed = amount if direction == "provided" else -amount
                    pole[resource, nature] = pole.get((resource, nature), ZERO) + signed
        assert set(pole.values()) <= {ZERO}, f"provided is not received: {pole}"
        for name in MEMBERS:
            await self._balanced(self.callers[name].member_id)
        self.checked_entries = entries

    async def _balanced(self, book_id: uuid.UUID) -> None:
        """Every entry of a book is balanced, debits against credits, in each currency; a line
        is a debit or a credit."""
        url = f"/books/{book_id}/entries"
        params: dict[str, Any] = {"limit": 200}
        while True:
            page = await self.ledger(COORDINATOR).get(url, params=params)
            assert page.status_code == 200, page.text
            for entry in page.json()["items"]:
                sums: dict[str, Decimal] = {}
                assert len(entry["lines"]) >= 2, entry
                for line in entry["lines"]:
                    debit, credit = Decimal(line["debit"]), Decimal(line["credit"])
                    assert (debit > 0) != (credit > 0), entry
                    sums[line["currency"]] = sums.get(line["currency"], ZERO) + debit - credit
                assert set(sums.values()) == {ZERO}, entry
            if page.json()["next_cursor"] is None:
                return
            params["cursor"] = page.json()["next_cursor"]


def bound(services: Services) -> type[ExchangeAndLedger]:
    """The machine on these services (Hypothesis makes it from its class, without arguments)."""

    class Pole(ExchangeAndLedger):
        pass

    Pole.services = services
    return Pole


@pytest.fixture
def books(module_books: Books) -> Books:
    """One set of services for the module: each example keeps to a pole of its own."""
    return module_books


async def test_the_services_follow_the_model_of_the_rules(books: Books) -> None:
    """Whatever members do, in whatever order, the exchange and the ledger say what the rules
    say, and the ledger's books stay sound."""
    services = Services(books, asyncio.get_running_loop())
    test = get_state_machine_test(
        bound(services),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            derandomize=SEED is None,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    if SEED is not None:
        test = seed(int(SEED))(test)
    try:
        await asyncio.to_thread(test)
    finally:
        await services.close()


async def test_an_employers_group_booking_its_own_staff_owes_itself_no_fee(books: Books) -> None:
    """Found by the model: staff time whose employer of record is the member that books it.
    The group's fee is owed by the requester to the employer — here to itself, which is no
    debt. The ledger posted only the employer's side (411 on itself / 706, the requester's 622
    / 401 having the same source in the same book), so the member 'provided' a fee nobody
    received, its receivable from itself counted in its balance, and the pole's balances no
    longer summed to zero: the settlement proposal answered 409 for the whole pole."""
    market = books.market
    coordinator = await market.catalog.new_pole()
    provider = await market.catalog.new_member(coordinator, legal_name="Prestataire")
    group = await market.catalog.new_member(coordinator, legal_name="Groupement d'employeurs")
    await books.knows(coordinator, provider, group)
    body = staff_time(provider.member_id, booking_mode="instant")
    body["attributes"] = {
        "role": "Animatrice",
        "employer_member_id": str(group.member_id),
        "max_hours_per_week": 7,
        "regime": "employers_group",
        "management_fee_percent": 10,
    }
    offer = await market.published(provider, **body)
    day = next_monday(weeks=1)
    made = await market.on_exchange(group).post(
        "/requests",
        json={"offer_id": offer["id"], "start": at(day, 9), "end": at(day, 11)},
    )
    assert made.status_code == 201, made.text
    request_id = made.json()["id"]
    await market.shift_period(request_id, start_in=timedelta(hours=-3), length=timedelta(hours=2))
    done = await market.on_exchange(provider).post(f"/requests/{request_id}/complete")
    assert done.status_code == 200, done.text

    # Two hours at 30 €: 60 € owed to the provider, 2 × (45 − 30) € received in kind.
    led = books.on_ledger(coordinator)
    today = datetime.now(PARIS).date()
    period = {"from": f"{today - timedelta(days=7)}", "to": f"{today + timedelta(days=7)}"}

    async def posted() -> bool:
        return int((await led.get("/pole/chain")).json()["entries"]) >= 3

    await eventually(posted)
    reported = await books.on_ledger(group).get(
        f"/members/{group.member_id}/activity", params=period
    )
    assert {
        row["resource"]: tuple(Decimal(row[figure]) for figure in FIGURES)
        for row in reported.json()["by_resource"]
    } == {"staff_time": (ZERO, ZERO, Decimal(60), Decimal(30))}
    proposal = await led.get("/pole/settlement", params=period)
    assert proposal.status_code == 200, proposal.text
    assert {row["member_id"]: Decimal(row["balance"]) for row in proposal.json()["balances"]} == {
        str(provider.member_id): Decimal(60),
        str(group.member_id): Decimal(-60),
    }
    assert (await led.get("/pole/chain")).json()["entries"] == 3


async def test_the_chain_check_never_reports_a_sound_journal_broken(books: Books) -> None:
    """Found by the model: checking the hash chain (``GET /pole/chain``, and ``ptce ledger
    verify``: the same ``verify_chain``) while entries were being posted reported a sound
    journal broken, ``broken_at`` one past the entries it had read. The entries and the chain's
    head were read in two statements, each seeing what was committed when it ran: a posting
    committed between them looked like an entry cut off the end of the chain."""
    catalog_coordinator = await books.market.catalog.new_pole()
    await books.knows(catalog_coordinator)
    coordinator = books.on_ledger(catalog_coordinator)
    grant = {
        "kind": "grant",
        "on": f"{datetime.now(PARIS).year}-03-01",
        "label": "Subvention",
        "amount": "10.00",
        "origin": "public",
    }
    posting = True
    checks: list[dict[str, Any]] = []

    async def post() -> None:
        nonlocal posting
        for _ in range(20):
            answer = await coordinator.post("/postings", json=grant)
            assert answer.status_code == 201, answer.text
        posting = False

    async def check() -> None:
        while posting:
            checks.append((await coordinator.get("/pole/chain")).json())

    await asyncio.gather(post(), check(), check())
    broken = [check for check in checks if not check["intact"]]
    assert not broken, f"{len(broken)} of {len(checks)} checks: {broken[:3]}"
    final = (await coordinator.get("/pole/chain")).json()
    assert final == {"entries": 20, "intact": True, "broken_at": None}
