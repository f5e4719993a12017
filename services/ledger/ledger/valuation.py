"""How an exchange is valued, from the exchange's event alone (its frozen terms): pure
functions, no database. The rules, with worked examples, are in docs/ledger.md.

- Completed: monetary value = internal price × quantity used; in-kind value = (reference
  value − internal price) × quantity used, when positive. The requester owes the monetary
  part to the provider; the in-kind part is a contribution received by the requester
  (classes 86/87 of its books), given by the provider (the counterpart of those lines).
- Staff time given "at volunteer time": the reference is the pole's ``volunteer_hour`` in
  effect on the day of the exchange (dated references: a later change never moves a past
  figure), posted as volunteering (864/875).
- Employers' group: the management fee (a percentage of the price of the time used) is owed
  by the requester to the employer of record, who may not be the member that provided it.
- Late cancellation and no-show: the pole's fee (a percentage of the booked price, none by
  default), owed by the requester to the provider.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ledger.chart import (
    EXPENSE,
    IN_KIND_USE,
    PRESTATION_SOURCE,
    REVENUE,
    VOLUNTEER_SOURCE,
    VOLUNTEER_USE,
)
from ledger.journal import Line, Posting, money
from shared.contracts.catalog import ExchangeRules
from shared.contracts.exchange import FrozenTerms, RequestSnapshot

VOLUNTEER_HOUR = "volunteer_hour"
METHOD_BY_BASIS = {
    "market_price": "market_reference",
    "cost_price": "cost",
    "volunteer_time": "volunteer_time_reference",
}


@dataclass(frozen=True)
class Reference:
    """A pole's reference value in effect on a day (``valid_from`` is when it took effect)."""

    code: str
    amount: Decimal
    valid_from: date


@dataclass(frozen=True)
class Context:
    time_zone: str
    rules: ExchangeRules
    volunteer_hour: Reference | None = None


def exchange_day(snapshot: RequestSnapshot, time_zone: str) -> date:
    """The day the exchange took place (its end, local), or the day it was recorded."""
    moment = snapshot.end if snapshot.end is not None else snapshot.changed_at
    return moment.astimezone(ZoneInfo(time_zone)).date()


def _monetary(
    *,
    snapshot: RequestSnapshot,
    resource: str,
    amount: Decimal,
    payee: uuid.UUID,
    day: date,
    label: str,
    part: str,
    method: str,
    quantity: Decimal | None,
    unit: str | None,
) -> list[Posting]:
    """The two sides of a sum the requester owes ``payee``: each in its own books."""
    if amount <= 0:
        return []
    source = f"exchange:{snapshot.request_id}:{snapshot.state}:v{snapshot.version}:{part}"
    assert snapshot.terms is not None
    currency = snapshot.terms.currency
    common: dict[str, Any] = {
        "flow": "monetary",
        "resource": resource,
        "quantity": quantity,
        "unit": unit,
        "valuation_method": method,
    }
    payer = snapshot.requester_id
    return [
        Posting(
            book_id=payee,
            journal="EX",
            entry_date=day,
            label=label,
            source=source,
            currency=currency,
            lines=(
                Line(account="411", debit=amount, counterpart_id=payer, **common),
                Line(account=REVENUE[resource], credit=amount, counterpart_id=payer, **common),
            ),
        ),
        Posting(
            book_id=payer,
            journal="EX",
            entry_date=day,
            label=label,
            source=source,
            currency=currency,
            lines=(
                Line(account=EXPENSE[resource], debit=amount, counterpart_id=payee, **common),
                Line(account="401", credit=amount, counterpart_id=payee, **common),
            ),
        ),
    ]


def _in_kind_reference(terms: FrozenTerms, context: Context) -> tuple[Decimal, str, date | None]:
    """The value per unit the in-kind part is measured against, its method and its date."""
    reference = context.volunteer_hour
    if terms.valuation_basis == "volunteer_time" and terms.unit == "hour" and reference:
        return reference.amount, "volunteer_time_reference", reference.valid_from
    return terms.reference_value, METHOD_BY_BASIS[terms.valuation_basis], None


def value_completed(snapshot: RequestSnapshot, context: Context) -> list[Posting]:
    terms = snapshot.terms
    assert terms is not None
    assert snapshot.quantity_used is not None
    used = snapshot.quantity_used
    day = exchange_day(snapshot, context.time_zone)
    resource = snapshot.offer_kind
    title = f"Échange {str(snapshot.request_id)[:8]} ({resource})"
    postings = _monetary(
        snapshot=snapshot,
        resource=resource,
        amount=money(terms.internal_price * used),
        payee=snapshot.provider_id,
        day=day,
        label=title,
        part="EX",
        method="internal_price",
        quantity=used,
        unit=terms.unit,
    )
    reference, method, reference_date = _in_kind_reference(terms, context)
    in_kind = money((reference - terms.internal_price) * used)
    if in_kind > 0:
        volunteering = method == "volunteer_time_reference"
        common: dict[str, Any] = {
            "flow": "in_kind",
            "resource": resource,
            "counterpart_id": snapshot.provider_id,
            "quantity": used,
            "unit": terms.unit,
            "valuation_method": method,
            "reference_date": reference_date,
        }
        postings.append(
            Posting(
                book_id=snapshot.requester_id,
                journal="CVN",
                entry_date=day,
                label=f"{title} : contribution en nature",
                source=f"exchange:{snapshot.request_id}:{snapshot.state}:v{snapshot.version}:CVN",
                currency=terms.currency,
                lines=(
                    Line(
                        account=VOLUNTEER_USE if volunteering else IN_KIND_USE[resource],
                        debit=in_kind,
                        **common,
                    ),
                    Line(
                        account=VOLUNTEER_SOURCE if volunteering else PRESTATION_SOURCE,
                        credit=in_kind,
                        **common,
                    ),
                ),
            )
        )
    # A group that books its own staff owes itself no fee.
    if (
        terms.management_fee_percent
        and terms.employer_member_id is not None
        and terms.employer_member_id != snapshot.requester_id
    ):
        fee = money(terms.internal_price * used * terms.management_fee_percent / 100)
        postings += _monetary(
            snapshot=snapshot,
            resource="management_fee",
            amount=fee,
            payee=terms.employer_member_id,
            day=day,
            label=f"{title} : frais de gestion du groupement",
            part="fee",
            method="internal_price",
            quantity=None,
            unit=None,
        )
    return postings


def value_fee(snapshot: RequestSnapshot, context: Context) -> list[Posting]:
    """A late cancellation or a no-show, by the pole's rule when the exchange recorded it
    (nothing when it sets no fee)."""
    terms = snapshot.terms
    if terms is None:
        return []
    # The rule in force when the exchange recorded it; the ledger's copy of the rules, as
    # they are now, only for events from before the exchange carried it.
    percent = (
        snapshot.fee_percent
        if snapshot.fee_percent is not None
        else context.rules.no_show_fee_percent
        if snapshot.state == "no_show"
        else context.rules.late_cancellation_fee_percent
        if snapshot.late
        else 0
    )
    amount = money(terms.internal_price * terms.quantity * percent / 100)
    what = "absence" if snapshot.state == "no_show" else "annulation tardive"
    return _monetary(
        snapshot=snapshot,
        resource="cancellation_fee",
        amount=amount,
        payee=snapshot.provider_id,
        day=exchange_day(snapshot, context.time_zone),
        label=f"Indemnité d'{what} {str(snapshot.request_id)[:8]} ({percent} %)",
        part="fee",
        method="pole_rule",
        quantity=terms.quantity,
        unit=terms.unit,
    )
