"""Benchmark of the ledger's reports and FEC export over HTTP, on a million journal lines.

Run: ``.venv/bin/python bench/ledger_reports.py [--entries 500000] [--members 200]
[--partners 20] [--year 2025] [--member-requests 200] [--concurrency 4] [--workers 2]
[--pole-requests 20] [--real-hashes] [--explain] [--reuse NAME]``

It starts its own PostgreSQL (and, through the shared harness, a broker the ledger only pings
for its readiness) in a temporary directory, or uses ``PTCE_TEST_POSTGRES_URL`` /
``PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS`` like the tests, and creates and migrates a ledger
database. Into it, in bulk:

- the copies of one pole and of its ``--members`` members (tables ``pole`` and ``member``,
  as the catalog's events would have left them);
- a year of journal, about ``--entries`` entries of two lines (``COPY``): exchanges between
  members, each requester trading with ``--partners`` usual providers, the most active
  members trading more (Zipf weights); each completed exchange is posted as the ledger posts
  it — ``EX`` in the provider's book (411 / 7xxx) and in the requester's (6xxx / 401) with
  the counterpart on every line, and ``CVN`` in the requester's (86x / 87x, the provider as
  counterpart) when the reference value exceeds the price; free loans (in kind only),
  volunteer time (864 / 875 at the ``volunteer_hour`` reference), employers' group fees
  (622 / 706 to the employer), late cancellation and no-show fees (658 / 758), corrections
  (reversal entries then the corrected ones); and the ``OD``/``CVN`` direct postings of a
  year: dues of every member on 1 January (with their origin), grants, sales, loans,
  indirect aid, volunteering, donations in kind, settlements between members.
  Entry numbers are gap-free per book, journal and year and follow the posting order;
  positions run 1..n along the pole's chain; ``entry_counter`` and ``chain_head`` match.
  Hashes are chained but are *placeholders* (SHA-256 of the previous hash and the entry's
  id): the bench measures reads; ``--real-hashes`` computes them as ``journal.post`` does
  (``canonical`` + ``chained_hash``, about 40 µs an entry), so that ``verify_chain`` holds.
  The triggers of ``entry`` and ``entry_line`` (append-only, the deferred balance check, the
  foreign keys) are disabled during the ``COPY`` and enabled again; a query then checks that
  every entry has two lines or more, balanced per currency. Then ``VACUUM (ANALYZE)``, as
  autovacuum would soon do.

It then runs the ledger as deployed: ``ptce serve ledger --workers 2`` (one HTTP process per
CPU, ``--workers``; ``LEDGER_RUN_WORKERS=false``: no relay or consumer, nothing to consume),
verifying tokens against ``AUTH_JWKS_URL`` — here a tiny JWKS endpoint served by this script
with a key it signs the tokens with (the catalog's claims: issuer, audience, pole, member,
role). And
measures, over HTTP with httpx (keep-alive):

1. ``GET /members/{id}/activity`` for the year: every member asks for its own report (its
   own token), in random order, ``--concurrency`` at a time (the verdict), then one at a
   time, ``--member-requests`` requests after a warm-up each; p50/p95/p99/max;
2. ``GET /pole/activity`` for the year by the coordinator, ``--pole-requests`` one after the
   other; p50/p95/max and the size of the answer;
3. ``GET /fec?year=`` (the whole pole) and ``GET /books/{id}/fec?year=`` (the biggest book):
   lines per second from the first byte received to the last, and the ledger process's
   resident memory sampled every 10 ms with psutil (the biggest ledger process's, its peak
   during the export, and before).

It prints the data size (rows, and ``pg_total_relation_size`` of each table with its indexes),
the figures, the CPU each phase took in the ledger, in PostgreSQL (its postmaster's tree, when
on this machine) and in this script, and how busy the whole machine was (the rest is other
load), PASS/FAIL per target — member activity p95 < 50 ms, pole activity p95 < 300 ms, FEC
>= 100,000 lines/s with a resident memory under 300 MB — and, with ``--explain``, the
``EXPLAIN (ANALYZE, BUFFERS)`` of the reports' statements and the plans of the FEC's cursors.
It exits 0 once it measured, whatever the verdict (130 when interrupted); the ledger process,
the JWKS endpoint, the servers and the database are stopped or dropped on every way out.
``--reuse NAME`` keeps the database ``NAME`` (loading it only when it has no journal yet)
instead of a fresh one dropped at the end: to compare runs, or code changes, on the same data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.server
import itertools
import json
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import jwt
import psutil
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.events import Servers, _interrupt, percentile, servers
from ledger.chart import EXPENSE, IN_KIND_USE, REVENUE
from ledger.journal import GENESIS, canonical, chained_hash
from ptce.embedded import free_port
from ptce.testing.api import valid_siret
from ptce.testing.system import until_ready
from shared.auth import ALGORITHM
from shared.db import asyncpg_dsn
from shared.logging import configure_logging
from shared.migrations import upgrade
from shared.settings import KernelSettings

TARGET_MEMBER_P95_MS = 50.0
TARGET_POLE_P95_MS = 300.0
TARGET_FEC_LINES_PER_S = 100_000.0
TARGET_FEC_RSS_MB = 300.0
SEED = 20261123
TIME_ZONE = "Europe/Paris"
CURRENCY = "EUR"
VOLUNTEER_HOUR_CENTS = 1250  # the pole's volunteer_hour reference, since 1 January
READY_TIMEOUT_SECONDS = 120.0
RSS_SAMPLE_SECONDS = 0.01
MEMBER_WARMUP = 20
POLE_WARMUP = 2

# --- the pole and its members ----------------------------------------------------------------

CATEGORIES = (  # (category, ESS, weight)
    ("association", True, 45),
    ("cooperative", True, 12),
    ("mutual", True, 3),
    ("work_integration", True, 8),
    ("other_ess", True, 4),
    ("company", False, 14),
    ("local_authority", False, 6),
    ("research_higher_education", False, 2),
    ("training_body", False, 3),
    ("individual", False, 3),
)
COMMUNES = (
    ("Tours", "37261", "37000"),
    ("Joué-lès-Tours", "37122", "37300"),
    ("Saint-Pierre-des-Corps", "37233", "37700"),
    ("Saint-Cyr-sur-Loire", "37214", "37540"),
    ("Chambray-lès-Tours", "37050", "37170"),
    ("Amboise", "37003", "37400"),
    ("Fondettes", "37109", "37230"),
    ("Chinon", "37072", "37500"),
)
NAMES = ("Association", "SCOP", "SCIC", "Régie de quartier", "Atelier", "Ressourcerie",
         "Compagnie", "Collectif", "Coopérative", "Maison")  # fmt: skip
POLE_COLUMNS = (
    "id", "name", "time_zone", "currency", "exchange_rules", "version", "registered_at",
)  # fmt: skip
MEMBER_COLUMNS = (
    "id", "pole_id", "legal_name", "siret", "category", "is_ess", "headcount",
    "annual_turnover", "street", "postal_code", "commune", "insee_code", "joined_on",
    "left_on", "version", "changed_at",
)  # fmt: skip
ENTRY_COLUMNS = (
    "id", "pole_id", "book_id", "journal", "fiscal_year", "number", "entry_date", "label",
    "source", "reverses_id", "position", "previous_hash", "hash", "posted_at",
)  # fmt: skip
LINE_COLUMNS = (
    "entry_id", "line_no", "account", "debit", "credit", "currency", "counterpart_id", "flow",
    "resource", "origin", "quantity", "unit", "valuation_method", "reference_date",
)  # fmt: skip


@dataclass(frozen=True)
class MemberRow:
    id: uuid.UUID
    legal_name: str
    category: str
    is_ess: bool

    @property
    def origin(self) -> str:
        """As ``ledger.direct.origin_of``."""
        if self.category == "local_authority":
            return "public"
        if self.category == "individual":
            return "individuals"
        return "ess" if self.is_ess else "private"


def member_records(
    rng: random.Random, pole_id: uuid.UUID, count: int, year: int
) -> tuple[list[MemberRow], list[tuple[Any, ...]]]:
    rows, records = [], []
    weights = [c[2] for c in CATEGORIES]
    now = datetime(year - 1, 12, 1, tzinfo=UTC)
    for index in range(count):
        category, is_ess, _ = rng.choices(CATEGORIES, weights)[0]
        commune, insee, postal_code = rng.choice(COMMUNES)
        name = f"{rng.choice(NAMES)} n° {index + 1} de {commune}"
        member_id = _uuid(rng)
        rows.append(MemberRow(member_id, name, category, is_ess))
        turnover = (
            None if rng.random() < 0.15 else Decimal(rng.randint(20_000, 3_000_000)).quantize(CENT)
        )
        records.append(
            (
                member_id,
                pole_id,
                name,
                valid_siret(),
                category,
                is_ess,
                rng.randint(1, 120),
                turnover,
                f"{rng.randint(1, 120)} rue Nationale",
                postal_code,
                commune,
                insee,
                date(2018, 1, 1) + timedelta(days=rng.randint(0, 2200)),
                None,
                1,
                now,
            )
        )
    return rows, records


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


# --- the journal ---------------------------------------------------------------------------

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Line values before numbering: account, debit, credit, counterpart, flow, resource, origin,
# quantity, unit, valuation method, reference date.
LineValues = tuple[
    str,
    Decimal,
    Decimal,
    uuid.UUID | None,
    str,
    str,
    str | None,
    Decimal | None,
    str | None,
    str | None,
    date | None,
]

# (kind, weight, [(unit, weight, quantities, price per unit in cents, reference per unit)])
KINDS: tuple[tuple[str, int, tuple[tuple[str, int, tuple[int, int], tuple[int, int],
                                         tuple[int, int]], ...]], ...] = (
    ("premises", 30, (
        ("hour", 4, (2, 16), (500, 3000), (2000, 6000)),  # quantities in half units
        ("half_day", 3, (2, 8), (4000, 15000), (10000, 30000)),
        ("day", 3, (2, 10), (6000, 25000), (15000, 50000)),
    )),
    ("equipment", 30, (
        ("day", 5, (2, 10), (1000, 8000), (3000, 15000)),
        ("unit", 3, (2, 20), (200, 2000), (500, 5000)),
        ("half_day", 2, (2, 8), (500, 4000), (2000, 8000)),
    )),
    ("staff_time", 15, (
        ("hour", 6, (2, 30), (1500, 3500), (2500, 6000)),
        ("half_day", 2, (2, 8), (6000, 14000), (10000, 24000)),
        ("day", 2, (2, 6), (12000, 28000), (20000, 48000)),
    )),
    ("service", 25, (
        ("unit", 6, (2, 10), (2000, 30000), (4000, 60000)),
        ("hour", 4, (2, 16), (2500, 6000), (4000, 9000)),
    )),
)  # fmt: skip
METHOD_BY_KIND = {
    "premises": "market_reference",
    "equipment": "market_reference",
    "service": "market_reference",
    "staff_time": "cost",
}
FREE_SHARE = 0.12  # lent for nothing: in kind only
IN_KIND_SHARE = 0.55  # priced below the reference value
VOLUNTEER_SHARE = 0.10  # of staff time by the hour: given at volunteer time
GROUP_FEE_SHARE = 0.20  # of paid staff time: through an employers' group (10 % fee)
FEE_SHARE = 0.02  # late cancellations and no-shows (instead of a completed exchange)
CORRECTION_SHARE = 0.005  # completed exchanges corrected later (reversed, then posted again)


@dataclass(slots=True)
class Draft:
    """An entry before it gets its number, its position and its hash."""

    id: uuid.UUID
    posted_at: datetime
    book_id: uuid.UUID
    journal: str
    entry_date: date
    label: str
    source: str
    lines: list[LineValues]
    reverses_id: uuid.UUID | None = None


def cents(value: int) -> Decimal:
    return Decimal(value).scaleb(-2)


def _swap(lines: Sequence[LineValues]) -> list[LineValues]:
    """A reversal's lines: debit and credit swapped, quantities negated (``reversal_of``)."""
    return [
        (a, credit, debit, cp, fl, res, orig, -q if q is not None else None, u, m, rd)
        for (a, debit, credit, cp, fl, res, orig, q, u, m, rd) in lines
    ]


class JournalFactory:
    """A year of a pole's journal, as drafts (deterministic for a seed)."""

    def __init__(
        self,
        rng: random.Random,
        pole_id: uuid.UUID,
        members: Sequence[MemberRow],
        year: int,
        partners: int,
    ) -> None:
        self.rng = rng
        self.pole_id = pole_id
        self.members = list(members)
        self.year = year
        self.zone = ZoneInfo(TIME_ZONE)
        self.drafts: list[Draft] = []
        # Activity is uneven: Zipf-like weights over members in random order.
        order = list(range(len(members)))
        rng.shuffle(order)
        self.weights = [1 / (1 + rank) ** 0.6 for rank in order]
        self.cumulative = list(itertools.accumulate(self.weights))
        count = min(partners, len(members) - 1)
        self.partners: list[list[int]] = []
        self.partner_cumulative: list[list[float]] = []
        for index in range(len(members)):
            chosen: list[int] = []
            while len(chosen) < count:
                other = rng.choices(range(len(members)), cum_weights=self.cumulative)[0]
                if other != index and other not in chosen:
                    chosen.append(other)
            self.partners.append(chosen)
            self.partner_cumulative.append(
                list(itertools.accumulate(self.weights[i] for i in chosen))
            )
        days = [
            date(year, 1, 1) + timedelta(days=n)
            for n in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)
        ]
        day_weights = [
            (1.0 if d.weekday() < 5 else 0.3 if d.weekday() == 5 else 0.1)
            * (0.5 if d.month == 8 else 0.8 if d.month == 12 and d.day > 20 else 1.0)
            for d in days
        ]
        self.days = days
        self.day_cumulative = list(itertools.accumulate(day_weights))
        self.midnight = {d: datetime(d.year, d.month, d.day, tzinfo=self.zone) for d in days}

    # -- helpers ---------------------------------------------------------------------------

    def _id(self) -> uuid.UUID:
        return _uuid(self.rng)

    def _moment(self, day: date, earliest_hour: int = 8, latest_hour: int = 21) -> datetime:
        seconds = self.rng.randint(earliest_hour * 3600, latest_hour * 3600)
        return (self.midnight[day] + timedelta(seconds=seconds)).astimezone(UTC)

    def _add(
        self,
        *,
        posted_at: datetime,
        book: uuid.UUID,
        journal: str,
        day: date,
        label: str,
        source: str,
        lines: list[LineValues],
        reverses: uuid.UUID | None = None,
    ) -> Draft:
        draft = Draft(self._id(), posted_at, book, journal, day, label, source, lines, reverses)
        self.drafts.append(draft)
        return draft

    def _monetary(
        self,
        *,
        at: datetime,
        day: date,
        source: str,
        label: str,
        resource: str,
        amount: Decimal,
        payer: uuid.UUID,
        payee: uuid.UUID,
        method: str,
        quantity: Decimal | None,
        unit: str | None,
    ) -> list[Draft]:
        """As ``ledger.valuation._monetary``: the payee's book, then the payer's."""
        common = ("monetary", resource, None, quantity, unit, method, None)
        return [
            self._add(
                posted_at=at,
                book=payee,
                journal="EX",
                day=day,
                label=label,
                source=source,
                lines=[
                    ("411", amount, ZERO, payer, *common),
                    (REVENUE[resource], ZERO, amount, payer, *common),
                ],
            ),
            self._add(
                posted_at=at,
                book=payer,
                journal="EX",
                day=day,
                label=label,
                source=source,
                lines=[
                    (EXPENSE[resource], amount, ZERO, payee, *common),
                    ("401", ZERO, amount, payee, *common),
                ],
            ),
        ]

    # -- exchanges ---------------------------------------------------------------------------

    def exchange(self, day: date) -> None:
        rng = self.rng
        requester_index = rng.choices(range(len(self.members)), cum_weights=self.cumulative)[0]
        provider_index = rng.choices(
            self.partners[requester_index],
            cum_weights=self.partner_cumulative[requester_index],
        )[0]
        requester = self.members[requester_index].id
        provider = self.members[provider_index].id
        kind, _, units = rng.choices(KINDS, [k[1] for k in KINDS])[0]
        unit, _, (low, high), price_range, reference_range = rng.choices(
            units, [u[1] for u in units]
        )[0]
        quantity = Decimal(rng.randint(low, high)).scaleb(-1) * 5  # halves
        quantity = quantity.quantize(CENT)
        request_id = self._id()
        at = self._moment(day)
        if rng.random() < FEE_SHARE:
            self._fee(
                day=day, at=at, request_id=request_id, kind=kind, provider=provider,
                requester=requester, quantity=quantity, unit=unit, price_range=price_range,
            )  # fmt: skip
            return
        volunteer = kind == "staff_time" and unit == "hour" and rng.random() < VOLUNTEER_SHARE
        price = 0 if volunteer or rng.random() < FREE_SHARE else rng.randint(*price_range)
        if volunteer:
            reference = VOLUNTEER_HOUR_CENTS
        elif price == 0 or rng.random() < IN_KIND_SHARE:
            reference = max(price + 100, rng.randint(*reference_range))
        else:
            reference = price
        exchange: dict[str, Any] = {
            "request_id": request_id, "kind": kind, "provider": provider,
            "requester": requester, "unit": unit, "price": price, "reference": reference,
            "volunteer": volunteer,
        }  # fmt: skip
        drafts = self._completed(day=day, at=at, version=3, quantity=quantity, **exchange)
        if rng.random() < CORRECTION_SHARE and day.month < 12:
            # Corrected a few days later: every entry reversed, then posted again.
            later = day + timedelta(days=rng.randint(1, 20))
            later_at = self._moment(later)
            version = 5
            for original in drafts:
                self._add(
                    posted_at=later_at,
                    book=original.book_id,
                    journal=original.journal,
                    day=later,
                    label=f"Contre-passation : {original.label}"[:300],
                    source=f"{original.source}:reversed-by-v{version}",
                    lines=_swap(original.lines),
                    reverses=original.id,
                )
            corrected = (quantity / 2).quantize(CENT) or quantity
            self._completed(day=later, at=later_at, version=version, quantity=corrected, **exchange)

    def _completed(
        self,
        *,
        day: date,
        at: datetime,
        request_id: uuid.UUID,
        version: int,
        kind: str,
        provider: uuid.UUID,
        requester: uuid.UUID,
        quantity: Decimal,
        unit: str,
        price: int,
        reference: int,
        volunteer: bool,
    ) -> list[Draft]:
        """As ``ledger.valuation.value_completed``."""
        title = f"Échange {str(request_id)[:8]} ({kind})"
        prefix = f"exchange:{request_id}:completed:v{version}"
        drafts: list[Draft] = []
        amount = (cents(price) * quantity).quantize(CENT)
        if amount > 0:
            drafts += self._monetary(
                at=at, day=day, source=f"{prefix}:EX", label=title, resource=kind,
                amount=amount, payer=requester, payee=provider, method="internal_price",
                quantity=quantity, unit=unit,
            )  # fmt: skip
        in_kind = (cents(reference - price) * quantity).quantize(CENT)
        if in_kind > 0:
            method = "volunteer_time_reference" if volunteer else METHOD_BY_KIND[kind]
            reference_date = date(self.year, 1, 1) if volunteer else None
            common = ("in_kind", kind, None, quantity, unit, method, reference_date)
            drafts.append(
                self._add(
                    posted_at=at,
                    book=requester,
                    journal="CVN",
                    day=day,
                    label=f"{title} : contribution en nature",
                    source=f"{prefix}:CVN",
                    lines=[
                        (
                            "864" if volunteer else IN_KIND_USE[kind],
                            in_kind,
                            ZERO,
                            provider,
                            *common,
                        ),
                        ("875" if volunteer else "871", ZERO, in_kind, provider, *common),
                    ],
                )
            )
        if kind == "staff_time" and amount > 0 and self.rng.random() < GROUP_FEE_SHARE:
            employer = requester  # the employer of record: any member but the requester
            while employer == requester:
                employer = self.rng.choices(self.members, cum_weights=self.cumulative)[0].id
            drafts += self._monetary(
                at=at, day=day, source=f"{prefix}:fee",
                label=f"{title} : frais de gestion du groupement", resource="management_fee",
                amount=(amount / 10).quantize(CENT), payer=requester, payee=employer,
                method="internal_price", quantity=None, unit=None,
            )  # fmt: skip
        return drafts

    def _fee(
        self,
        *,
        day: date,
        at: datetime,
        request_id: uuid.UUID,
        kind: str,
        provider: uuid.UUID,
        requester: uuid.UUID,
        quantity: Decimal,
        unit: str,
        price_range: tuple[int, int],
    ) -> None:
        """As ``ledger.valuation.value_fee``: 50 % for a late cancellation, 100 % no-show."""
        no_show = self.rng.random() < 0.3
        percent = 100 if no_show else 50
        amount = (cents(self.rng.randint(*price_range)) * quantity * percent / 100).quantize(CENT)
        what, state = ("absence", "no_show") if no_show else ("annulation tardive", "cancelled")
        self._monetary(
            at=at, day=day, source=f"exchange:{request_id}:{state}:v2:fee",
            label=f"Indemnité d'{what} {str(request_id)[:8]} ({percent} %)",
            resource="cancellation_fee", amount=amount, payer=requester, payee=provider,
            method="pole_rule", quantity=quantity, unit=unit,
        )  # fmt: skip

    # -- direct postings (the coordinator's) -------------------------------------------------

    def _direct(
        self,
        kind: str,
        *,
        book: uuid.UUID,
        day: date,
        amount: Decimal,
        origin: str,
        label: str,
        accounts: tuple[str, str],
        quantity: Decimal | None = None,
        unit: str | None = None,
        method: str = "amount",
        reference_date: date | None = None,
    ) -> None:
        flow = "in_kind" if accounts[0].startswith("86") else "monetary"
        common = (flow, kind, origin, quantity, unit, method, reference_date)
        self._add(
            posted_at=self._moment(day, 9, 19),
            book=book,
            journal="CVN" if flow == "in_kind" else "OD",
            day=day,
            label=label,
            source=f"api:coordinator:{self._id()}",
            lines=[
                (accounts[0], amount, ZERO, None, *common),
                (accounts[1], ZERO, amount, None, *common),
            ],
        )

    def direct_postings(self) -> None:
        rng, pole = self.rng, self.pole_id
        first = date(self.year, 1, 1)
        dues_at = self._moment(date(self.year, 1, 2), 9, 10)
        for row in self.members:
            amount = cents(rng.choice((5000, 10000, 20000, 50000, 100000, 200000)))
            source = f"dues:{self.year}:{row.id}"
            common = ("monetary", "dues", row.origin, None, None, "amount", None)
            self._add(
                posted_at=dues_at, book=row.id, journal="OD", day=first,
                label=f"Cotisation {self.year}", source=source,
                lines=[("6281", amount, ZERO, pole, *common), ("401", ZERO, amount, pole, *common)],
            )  # fmt: skip
            self._add(
                posted_at=dues_at, book=pole, journal="OD", day=first,
                label=f"Cotisation {self.year}", source=source,
                lines=[
                    ("411", amount, ZERO, row.id, *common),
                    ("756", ZERO, amount, row.id, *common),
                ],
            )  # fmt: skip

        def day() -> date:
            return rng.choices(self.days, cum_weights=self.day_cumulative)[0]

        def some_member() -> MemberRow:
            return rng.choice(self.members)

        for n in range(24):
            self._direct("grant", book=pole, day=day(), origin=rng.choice(("public",) * 4 +
                         ("private",)), amount=cents(rng.randint(100_000, 3_000_000)),
                         label=f"Subvention {n + 1}", accounts=("512", "74"))  # fmt: skip
        for n in range(20):
            row = some_member()
            self._direct("grant", book=row.id, day=day(), origin="public",
                         amount=cents(rng.randint(100_000, 1_000_000)),
                         label=f"Subvention reçue {n + 1}", accounts=("512", "74"))  # fmt: skip
        for n in range(120):
            self._direct("sales", book=pole, day=day(), origin=rng.choice(("private", "ess")),
                         amount=cents(rng.randint(5_000, 200_000)),
                         label=f"Prestation {n + 1}", accounts=("512", "706"))  # fmt: skip
        for n in range(4):
            self._direct("capital_and_loans", book=pole, day=day(), origin="ess",
                         amount=cents(rng.randint(1_000_000, 5_000_000)),
                         label=f"Prêt {n + 1}", accounts=("512", "16"))  # fmt: skip
        for n in range(12):
            self._direct("indirect_aid", book=pole, day=day(), origin="public",
                         amount=cents(rng.randint(20_000, 300_000)),
                         label=f"Locaux prêtés par la commune {n + 1}",
                         accounts=("861", "871"))  # fmt: skip
        for n in range(250):
            hours = Decimal(rng.randint(1, 16)).quantize(CENT)
            self._direct("volunteering", book=pole, day=day(), origin="individuals",
                         amount=(cents(VOLUNTEER_HOUR_CENTS) * hours).quantize(CENT),
                         label=f"Bénévolat {n + 1}", accounts=("864", "875"), quantity=hours,
                         unit="hour", method="volunteer_time_reference",
                         reference_date=first)  # fmt: skip
        for n in range(10):
            self._direct("donation_in_kind", book=pole, day=day(), origin="private",
                         amount=cents(rng.randint(10_000, 200_000)),
                         label=f"Don en nature {n + 1}", accounts=("860", "870"))  # fmt: skip
        for n in range(200):
            payer, payee = rng.sample(self.members, 2)
            amount = cents(rng.randint(5_000, 500_000))
            when = day()
            at = self._moment(when, 9, 19)
            source = f"api:coordinator:{self._id()}"
            settled: tuple[str, str, str | None, None, None, str, None] = (
                "monetary", "settlement", None, None, None, "amount", None
            )  # fmt: skip
            self._add(
                posted_at=at, book=payer.id, journal="OD", day=when,
                label=f"Règlement {n + 1}", source=source,
                lines=[("401", amount, ZERO, payee.id, *settled),
                       ("512", ZERO, amount, None, *settled)],
            )  # fmt: skip
            self._add(
                posted_at=at, book=payee.id, journal="OD", day=when,
                label=f"Règlement {n + 1}", source=source,
                lines=[("512", amount, ZERO, None, *settled),
                       ("411", ZERO, amount, payer.id, *settled)],
            )  # fmt: skip

    def generate(self, entries: int) -> list[Draft]:
        self.direct_postings()
        batch = 4096
        while len(self.drafts) < entries:
            for day in self.rng.choices(self.days, cum_weights=self.day_cumulative, k=batch):
                self.exchange(day)
                if len(self.drafts) >= entries:
                    break
        return self.drafts


@dataclass
class Loaded:
    entries: int = 0
    lines: int = 0
    exchanges: int = 0
    by_journal: dict[str, int] = field(default_factory=dict)
    biggest_book: tuple[uuid.UUID, int] | None = None
    generate_s: float = 0.0
    hash_s: float = 0.0
    copy_s: float = 0.0
    totals_s: float = 0.0
    vacuum_s: float = 0.0
    balanced: bool = False
    real_hashes: bool = False
    reused: bool = False
    sizes: list[tuple[str, int, int, int]] = field(default_factory=list)
    """(table, rows, table bytes, table + index bytes)"""


def numbered(
    drafts: list[Draft], pole_id: uuid.UUID, *, real_hashes: bool
) -> tuple[
    list[tuple[Any, ...]], list[tuple[Any, ...]], dict[tuple[uuid.UUID, str, int], int], str
]:
    """Entry and line records in posting order: numbers, positions and chained hashes."""
    drafts.sort(key=lambda d: d.posted_at)  # stable: the entries of one event stay in order
    counters: dict[tuple[uuid.UUID, str, int], int] = defaultdict(int)
    entries: list[tuple[Any, ...]] = []
    lines: list[tuple[Any, ...]] = []
    previous = GENESIS
    for position, d in enumerate(drafts, start=1):
        key = (d.book_id, d.journal, d.entry_date.year)
        counters[key] += 1
        line_records = [
            (d.id, line_no, account, debit, credit, CURRENCY, *rest)
            for line_no, (account, debit, credit, *rest) in enumerate(d.lines, start=1)
        ]
        if real_hashes:
            row = {
                "id": d.id, "pole_id": pole_id, "book_id": d.book_id, "journal": d.journal,
                "fiscal_year": d.entry_date.year, "number": counters[key],
                "entry_date": d.entry_date, "label": d.label, "source": d.source,
                "reverses_id": d.reverses_id, "position": position,
            }  # fmt: skip
            content = canonical(
                row, [dict(zip(LINE_COLUMNS, r, strict=True)) for r in line_records]
            )
            digest = chained_hash(previous, content)
        else:
            digest = hashlib.sha256(previous.encode() + d.id.bytes).hexdigest()
        entries.append(
            (
                d.id,
                pole_id,
                d.book_id,
                d.journal,
                d.entry_date.year,
                counters[key],
                d.entry_date,
                d.label,
                d.source,
                d.reverses_id,
                position,
                previous,
                digest,
                d.posted_at,
            )
        )
        lines.extend(line_records)
        previous = digest
    return entries, lines, counters, previous


async def has_journal(dsn: str) -> bool:
    connection = await asyncpg.connect(dsn)
    try:
        return bool(await connection.fetchval("SELECT EXISTS (SELECT FROM entry)"))
    finally:
        await connection.close()


async def load(
    dsn: str, args: argparse.Namespace, loaded: Loaded
) -> tuple[uuid.UUID, list[MemberRow]]:
    """Generate and ``COPY`` the pole, its members and a year of journal."""
    rng = random.Random(SEED)  # noqa: S311 - reproducible test data, not secrets
    pole_id = _uuid(rng)
    started = time.perf_counter()
    members, member_rows = member_records(rng, pole_id, args.members, args.year)
    factory = JournalFactory(rng, pole_id, members, args.year, args.partners)
    drafts = factory.generate(args.entries)
    generated = time.perf_counter()
    entries, lines, counters, last_hash = numbered(drafts, pole_id, real_hashes=args.real_hashes)
    hashed = time.perf_counter()
    loaded.generate_s, loaded.hash_s = generated - started, hashed - generated
    print(
        f"generated {len(entries):,} entries, {len(lines):,} lines in "
        f"{hashed - started:.1f} s; COPY…",
        file=sys.stderr,
    )
    connection = await asyncpg.connect(dsn)
    try:
        registered = datetime(args.year - 2, 9, 1, tzinfo=UTC)
        await connection.copy_records_to_table(
            "pole",
            records=[(pole_id, "Pôle du banc d'essai", TIME_ZONE, CURRENCY, "{}", 1, registered)],
            columns=POLE_COLUMNS,
        )
        await connection.copy_records_to_table(
            "member", records=member_rows, columns=MEMBER_COLUMNS
        )
        # The balance check is a deferred constraint trigger per row, the foreign keys are
        # triggers too: off for the bulk load of this throw-away database, on again after.
        for table in ("entry", "entry_line"):
            await connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        try:
            await connection.copy_records_to_table("entry", records=entries, columns=ENTRY_COLUMNS)
            await connection.copy_records_to_table(
                "entry_line", records=lines, columns=LINE_COLUMNS
            )
            await connection.copy_records_to_table(
                "entry_counter",
                records=[(*key, last) for key, last in counters.items()],
                columns=("book_id", "journal", "fiscal_year", "last_number"),
            )
            await connection.execute(
                "INSERT INTO chain_head (pole_id, position, last_hash) VALUES ($1, $2, $3)",
                pole_id,
                len(entries),
                last_hash,
            )
        finally:
            for table in ("entry", "entry_line"):
                await connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")
        copied = time.perf_counter()
        loaded.copy_s = copied - hashed
        # The trigger that keeps the running totals was off too: computed once from the lines.
        await connection.execute("SELECT ledger_rebuild_activity_totals($1)", pole_id)
        totalled = time.perf_counter()
        loaded.totals_s = totalled - copied
        await connection.execute("VACUUM (ANALYZE) pole, member, entry, entry_line, activity_total")
        loaded.vacuum_s = time.perf_counter() - totalled
    finally:
        await connection.close()
    loaded.real_hashes = args.real_hashes
    return pole_id, members


async def describe(dsn: str, loaded: Loaded) -> tuple[uuid.UUID, list[MemberRow]]:
    """What the database holds: the pole, its members, counts, sizes, the balance check."""
    connection = await asyncpg.connect(dsn)
    try:
        pole_id = await connection.fetchval("SELECT id FROM pole")
        members = [
            MemberRow(r["id"], r["legal_name"], r["category"], r["is_ess"])
            for r in await connection.fetch(
                "SELECT id, legal_name, category, is_ess FROM member ORDER BY id"
            )
        ]
        loaded.by_journal = {
            r["journal"]: r["n"]
            for r in await connection.fetch(
                "SELECT journal, count(*) AS n FROM entry GROUP BY journal ORDER BY journal"
            )
        }
        loaded.entries = sum(loaded.by_journal.values())
        loaded.exchanges = await connection.fetchval(
            "SELECT count(DISTINCT split_part(source, ':', 2)) FROM entry "
            "WHERE source LIKE 'exchange:%'"
        )
        book = await connection.fetchrow(
            "SELECT e.book_id, count(*) AS n FROM entry e JOIN entry_line l ON l.entry_id = e.id "
            "WHERE e.book_id <> e.pole_id GROUP BY e.book_id ORDER BY n DESC LIMIT 1"
        )
        loaded.biggest_book = (book["book_id"], book["n"])
        # Every entry: two lines or more, balanced per currency (what the trigger checks).
        unbalanced = await connection.fetchval(
            "SELECT count(*) FROM (SELECT e.id FROM entry e LEFT JOIN entry_line l "
            "ON l.entry_id = e.id GROUP BY e.id HAVING count(l.*) < 2) AS short"
        ) + await connection.fetchval(
            "SELECT count(*) FROM (SELECT entry_id FROM entry_line GROUP BY entry_id, currency "
            "HAVING sum(debit) <> sum(credit)) AS unbalanced"
        )
        loaded.balanced = unbalanced == 0
        for table in ("entry", "entry_line", "activity_total", "member", "pole"):
            row = await connection.fetchrow(
                f"SELECT (SELECT count(*) FROM {table}) AS n, pg_table_size('{table}') AS t, "
                f"pg_total_relation_size('{table}') AS total"
            )
            loaded.sizes.append((table, row["n"], row["t"], row["total"]))
        loaded.lines = next(s[1] for s in loaded.sizes if s[0] == "entry_line")
    finally:
        await connection.close()
    return pole_id, members


# --- tokens: a key of our own, served as the JWKS the ledger reads -------------------------


class Issuer:
    """Signs access tokens as the catalog does, and serves the public key at a JWKS URL."""

    def __init__(self) -> None:
        private = ec.generate_private_key(ec.SECP256R1())
        self.kid = uuid.uuid4().hex
        public_jwk: dict[str, Any] = json.loads(
            jwt.algorithms.ECAlgorithm.to_jwk(private.public_key())
        )
        public_jwk.update({"kid": self.kid, "alg": ALGORITHM, "use": "sig"})
        self.pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        document = json.dumps({"keys": [public_jwk]}).encode()
        self.kernel = KernelSettings()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"

    def token(self, pole_id: uuid.UUID, member_id: uuid.UUID, role: str) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self.kernel.auth_issuer,
            "aud": self.kernel.auth_audience,
            "sub": f"bench-{role}-{member_id.hex[:8]}",
            "pole": str(pole_id),
            "member": str(member_id),
            "role": role,
            "iat": now,
            "exp": now + timedelta(hours=2),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.pem, algorithm=ALGORITHM, headers={"kid": self.kid})

    def __enter__(self) -> Issuer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the ledger, as a process ----------------------------------------------------------------


@dataclass
class Ledger:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the ledger exited with {self.process.returncode}:\n{tail}")


@contextlib.contextmanager
def ledger_process(
    srv: Servers, database: str, jwks_url: str, logs: Path, *, workers: int
) -> Iterator[Ledger]:
    port = free_port()
    kernel = KernelSettings()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": srv.database_url(database),
        "LEDGER_HTTP_PORT": str(port),
        "LEDGER_RUN_WORKERS": "false",
        "KAFKA_BOOTSTRAP_SERVERS": srv.bootstrap_servers,
        "AUTH_JWKS_URL": jwks_url,
        "AUTH_ISSUER": kernel.auth_issuer,
        "AUTH_AUDIENCE": kernel.auth_audience,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
    ptce = shutil.which("ptce", path=str(Path(sys.executable).parent)) or "ptce"
    log = logs / "ledger.log"
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [ptce, "serve", "ledger", "--host", "127.0.0.1", "--workers", str(workers)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
    try:
        yield Ledger(process, f"http://127.0.0.1:{port}", log)
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


async def wait_ready(ledger: Ledger) -> None:
    await until_ready([ledger.url], alive=ledger.check, seconds=READY_TIMEOUT_SECONDS)


class RssSampler:
    """The peak resident memory of the biggest process of a tree (the ledger's workers, under
    uvicorn's supervisor when there are several), sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.tree = [self.process, *self.process.children(recursive=True)]
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        sizes = [0]
        # The tree is listed once: listing children reads every process of the machine, too
        # costly to do every 10 ms while measuring.
        for one in self.tree:
            with contextlib.suppress(psutil.Error):
                sizes.append(int(one.memory_info().rss))
        return max(sizes)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.rss())
            self._stop.wait(RSS_SAMPLE_SECONDS)

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.rss())


# --- measurements ----------------------------------------------------------------------------


class CpuMeter:
    """CPU seconds (user + system) of the ledger, of the PostgreSQL server (the postmaster and
    its children), of this script, and of the whole machine (its busy time, all CPUs)."""

    def __init__(self, ledger_pid: int, postmaster_pid: int | None) -> None:
        self.ledger = psutil.Process(ledger_pid)
        self.postmaster = psutil.Process(postmaster_pid) if postmaster_pid else None
        self.started: dict[str, float] = {}
        self.wall = 0.0

    @staticmethod
    def _tree(process: psutil.Process | None) -> float:
        if process is None:
            return math.nan
        total = 0.0
        for one in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = one.cpu_times()
                total += times.user + times.system
        return total

    def now(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        return {
            "ledger": self._tree(self.ledger),
            "postgres": self._tree(self.postmaster),
            "bench": time.process_time(),
            "machine": machine.user + machine.nice + machine.system + machine.irq
            + machine.softirq + getattr(machine, "steal", 0.0),
        }  # fmt: skip

    def start(self) -> None:
        self.started, self.wall = self.now(), time.perf_counter()

    def stop(self) -> Cpu:
        ended, wall = self.now(), time.perf_counter() - self.wall
        used = {name: ended[name] - self.started[name] for name in ended}
        ours = used["ledger"] + used["postgres"] + used["bench"]
        return Cpu(wall=wall, others=used["machine"] - ours, **{k: used[k] for k in CPU_PARTS})


CPU_PARTS = ("ledger", "postgres", "bench", "machine")


@dataclass
class Cpu:
    wall: float
    ledger: float
    postgres: float
    bench: float
    machine: float
    others: float

    def line(self, per: int, unit: str) -> str:
        """CPU seconds of each, per ``unit`` (``per`` of them) in ms, and the others' share."""

        def cell(seconds: float) -> str:
            return f"{seconds:.1f} s ({1000 * seconds / max(per, 1):.1f} ms/{unit})"

        return (
            f"CPU: ledger {cell(self.ledger)}, PostgreSQL {cell(self.postgres)}, this script "
            f"{cell(self.bench)}; the machine {self.machine / self.wall:.2f} CPUs busy over "
            f"{self.wall:.1f} s, of which others {max(self.others, 0) / self.wall:.2f}"
        )


@dataclass
class Export:
    what: str
    lines: int = 0
    expected: int = 0
    bytes: int = 0
    to_first_byte: float = 0.0
    streaming: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    status: int = 0
    cpu: Cpu | None = None

    @property
    def rate(self) -> float:
        return self.lines / self.streaming if self.streaming > 0 else math.nan


@dataclass
class MemberPhase:
    concurrency: int
    with_lines: bool = False
    latencies: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    counterparts: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    cpu: Cpu | None = None


@dataclass
class Results:
    loaded: Loaded
    member_phases: list[MemberPhase] = field(default_factory=list)
    pole_latencies: list[float] = field(default_factory=list)
    pole_bytes: int = 0
    pole_flows: int = 0
    pole_cpu: Cpu | None = None
    exports: list[Export] = field(default_factory=list)
    rss_idle: int = 0
    explains: list[tuple[str, list[str]]] = field(default_factory=list)
    postgres_version: str = "?"


async def member_reports(
    http: httpx.AsyncClient,
    ledger: Ledger,
    tokens: dict[uuid.UUID, str],
    args: argparse.Namespace,
    phase: MemberPhase,
    *,
    meter: CpuMeter,
) -> None:
    """Every member asks for its own year, in random order, ``phase.concurrency`` at a time."""
    rng = random.Random(f"{SEED}-{phase.concurrency}")  # noqa: S311 - test data
    members = list(tokens)
    order: list[uuid.UUID] = []
    while len(order) < MEMBER_WARMUP + args.member_requests:
        batch = members[:]
        rng.shuffle(batch)
        order += batch
    queue: asyncio.Queue[tuple[int, uuid.UUID]] = asyncio.Queue()
    for item in enumerate(order[: MEMBER_WARMUP + args.member_requests]):
        queue.put_nowait(item)
    params = {"from": f"{args.year}-01-01", "to": f"{args.year + 1}-01-01"}
    if phase.with_lines:
        params["lines"] = "true"
    warm = asyncio.Event()

    async def client() -> None:
        while not queue.empty():
            index, member_id = queue.get_nowait()
            if index == MEMBER_WARMUP and not warm.is_set():
                warm.set()
                meter.start()
            headers = {"Authorization": f"Bearer {tokens[member_id]}"}
            started = time.perf_counter()
            response = await http.get(
                f"{ledger.url}/members/{member_id}/activity", params=params, headers=headers
            )
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(
                    f"activity of {member_id}: {response.status_code} {response.text}"
                )
            if index >= MEMBER_WARMUP:
                phase.latencies.append(elapsed)
                phase.sizes.append(len(response.content))
                # Both by_counterpart and the detail lines name a counterpart_id.
                detail = response.content.count(b'"counterpart_category"')
                phase.lines.append(detail)
                phase.counterparts.append(response.content.count(b'"counterpart_id"') - detail)

    await asyncio.gather(*(client() for _ in range(phase.concurrency)))
    phase.cpu = meter.stop()


async def pole_reports(
    http: httpx.AsyncClient,
    ledger: Ledger,
    token: str,
    args: argparse.Namespace,
    results: Results,
    *,
    meter: CpuMeter,
) -> None:
    params = {"from": f"{args.year}-01-01", "to": f"{args.year + 1}-01-01"}
    headers = {"Authorization": f"Bearer {token}"}
    for index in range(POLE_WARMUP + args.pole_requests):
        if index == POLE_WARMUP:
            meter.start()
        started = time.perf_counter()
        response = await http.get(f"{ledger.url}/pole/activity", params=params, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"pole activity: {response.status_code} {response.text}")
        if index >= POLE_WARMUP:
            results.pole_latencies.append(elapsed)
        results.pole_bytes = len(response.content)
        results.pole_flows = len(response.json()["flows"])
    results.pole_cpu = meter.stop()


async def export(
    http: httpx.AsyncClient,
    ledger: Ledger,
    path: str,
    token: str,
    export: Export,
    *,
    meter: CpuMeter,
) -> None:
    """One FEC, streamed: lines counted as they come, memory of the ledger sampled."""
    sampler = RssSampler(ledger.process.pid)
    export.rss_before = sampler.rss()
    headers = {"Authorization": f"Bearer {token}"}
    newlines = 0
    meter.start()
    started = time.perf_counter()
    first = last = started
    with sampler:
        async with http.stream("GET", f"{ledger.url}{path}", headers=headers) as response:
            export.status = response.status_code
            async for chunk in response.aiter_raw():
                now = time.perf_counter()
                if not export.bytes:
                    first = now
                last = now
                export.bytes += len(chunk)
                newlines += chunk.count(b"\n")
    export.cpu = meter.stop()
    export.rss_peak = sampler.peak
    export.to_first_byte = first - started
    export.streaming = last - first
    export.lines = newlines - 1  # the header


async def expected_lines(dsn: str, year: int, book_id: uuid.UUID | None) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        query = (
            "SELECT count(*) FROM entry_line l JOIN entry e ON e.id = l.entry_id "
            "WHERE e.fiscal_year = $1"
        )
        if book_id is None:
            return int(await connection.fetchval(query, year))
        return int(await connection.fetchval(query + " AND e.book_id = $2", year, book_id))
    finally:
        await connection.close()


async def server_facts(dsn: str) -> tuple[str, int | None]:
    """PostgreSQL's version and its postmaster's pid (the parent of a backend), when local."""
    connection = await asyncpg.connect(dsn)
    try:
        version = str(await connection.fetchval("SHOW server_version"))
        backend = int(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await connection.close()
    try:
        return version, psutil.Process(backend).ppid()
    except psutil.Error:
        return version, None  # a server on another machine: its CPU is not counted


async def explain(
    dsn: str, pole_id: uuid.UUID, biggest: uuid.UUID, year: int
) -> list[tuple[str, list[str]]]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the statements the reports and the FEC run (the FEC
    as a statement: its cursor is planned for the first rows, see ``ledger.fec._chunks``)."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

    from ledger import fec, reports

    span = reports.Period(date(year, 1, 1), date(year + 1, 1, 1))
    statements: list[tuple[str, Any]] = [
        (f"member activity ({biggest}, the biggest book)",
         reports.member_activity_statement(pole_id, biggest, span)),
        *((f"pole activity: {name}", statement)
          for name, statement in reports.pole_activity_statements(pole_id, span)),
    ]  # fmt: skip
    cursors: list[tuple[str, Any]] = [
        ("FEC of the biggest book (a cursor's plan)", fec.fec_statement(
            pole_id=pole_id, year=year, journals=("CVN", "EX", "OD"), book_id=biggest)),
        ("FEC of the whole pole (a cursor's plan)", fec.fec_statement(
            pole_id=pole_id, year=year, journals=("CVN", "EX", "OD"), book_id=None)),
    ]  # fmt: skip
    dialect = PGDialect_asyncpg()  # type: ignore[no-untyped-call]

    def sql(statement: Any) -> str:
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))

    plans = []
    connection = await asyncpg.connect(dsn)
    try:
        for name, statement in statements:
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql(statement)}")
            plans.append((name, [str(row[0]) for row in rows]))
        for name, statement in cursors:
            rows = await connection.fetch(
                f"EXPLAIN DECLARE c NO SCROLL CURSOR FOR {sql(statement)}"
            )
            plans.append((name, [str(row[0]) for row in rows]))
    finally:
        await connection.close()
    return plans


async def measure(
    srv: Servers, database: str, args: argparse.Namespace, logs: Path, loaded: Loaded
) -> Results:
    dsn = asyncpg_dsn(srv.database_url(database))
    if not loaded.reused:
        await load(dsn, args, loaded)
    pole_id, members = await describe(dsn, loaded)
    results = Results(loaded=loaded)
    assert loaded.biggest_book is not None
    biggest = loaded.biggest_book[0]
    results.postgres_version, postmaster = await server_facts(dsn)
    with (
        Issuer() as issuer,
        ledger_process(srv, database, issuer.jwks_url, logs, workers=args.workers) as ledger,
    ):
        coordinator = issuer.token(pole_id, members[0].id, "coordinator")
        tokens = {row.id: issuer.token(pole_id, row.id, "member") for row in members}
        await wait_ready(ledger)
        meter = CpuMeter(ledger.process.pid, postmaster)
        limits = httpx.Limits(max_connections=args.concurrency + 2)
        async with httpx.AsyncClient(timeout=300, trust_env=False, limits=limits) as http:
            for concurrency, with_lines in dict.fromkeys(
                ((args.concurrency, False), (1, False), (1, True))
            ):
                print(
                    f"member activity reports, {concurrency} at a time"
                    f"{', with the detail lines' if with_lines else ''}…",
                    file=sys.stderr,
                )
                phase = MemberPhase(concurrency, with_lines)
                await member_reports(http, ledger, tokens, args, phase, meter=meter)
                results.member_phases.append(phase)
            print("pole activity reports…", file=sys.stderr)
            await pole_reports(http, ledger, coordinator, args, results, meter=meter)
            results.rss_idle = RssSampler(ledger.process.pid).rss()
            print("FEC exports…", file=sys.stderr)
            for what, path, book in (
                ("whole pole", f"/fec?year={args.year}", None),
                (f"biggest book ({str(biggest)[:8]})", f"/books/{biggest}/fec?year={args.year}",
                 biggest),
            ):  # fmt: skip
                one = Export(what, expected=await expected_lines(dsn, args.year, book))
                await export(http, ledger, path, coordinator, one, meter=meter)
                results.exports.append(one)
        ledger.check()
    if args.explain:
        print("EXPLAIN ANALYZE…", file=sys.stderr)
        results.explains = await explain(dsn, pole_id, biggest, args.year)
    return results


# --- the report ----------------------------------------------------------------------------


def _mb(size: float) -> str:
    return f"{size / 2**20:,.1f} MB"


def render(results: Results, srv: Servers, args: argparse.Namespace) -> str:
    loaded = results.loaded
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    rule = "-" * 100
    pole_ms = [v * 1000 for v in results.pole_latencies]

    def pcts(values: Sequence[float], qs: Sequence[float]) -> str:
        cells = [percentile(values, q) for q in qs] + [max(values, default=math.nan)]
        return " / ".join(f"{c:.1f}" for c in cells)

    judged = results.member_phases[0]
    member_p95 = percentile([v * 1000 for v in judged.latencies], 0.95)
    pole_p95 = percentile(pole_ms, 0.95)
    _, book_lines = loaded.biggest_book or (None, 0)
    lines = [
        "PTCE ledger reports benchmark (bench/ledger_reports.py)",
        rule,
        f"machine     nproc={os.cpu_count()} (usable {affinity}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()} "
        f"{platform.machine()}",
        f"servers     PostgreSQL {results.postgres_version}: {srv.postgres_kind}; ledger: "
        f"`ptce serve ledger --workers {args.workers}` (LEDGER_RUN_WORKERS=false), 127.0.0.1; "
        "tokens signed "
        "by this script, its key served as AUTH_JWKS_URL",
        f"data        1 pole, {args.members} members ({args.partners} usual providers each, "
        f"Zipf-like activity), year {args.year}: {loaded.entries:,} entries "
        f"({', '.join(f'{j} {n:,}' for j, n in loaded.by_journal.items())}), "
        f"{loaded.lines:,} lines, {loaded.exchanges:,} exchanges; biggest member book "
        f"{book_lines:,} lines",
    ]
    for table, rows, table_bytes, total in loaded.sizes:
        lines.append(
            f"{'':<12}{table:<11}{rows:>10,} rows  table {_mb(table_bytes):>10}  "
            f"with indexes {_mb(total):>10}"
        )
    lines.append(f"{'':<12}total with indexes {_mb(sum(s[3] for s in loaded.sizes))}")
    if loaded.reused:
        lines.append(f"loading     reused database {args.reuse} (loaded by an earlier run)")
    else:
        hashes = (
            "real hashes"
            if loaded.real_hashes
            else "placeholder hashes: SHA-256(previous hash, entry id)"
        )
        lines.append(
            f"loading     generate {loaded.generate_s:.1f} s, number and hash "
            f"{loaded.hash_s:.1f} s ({hashes}), COPY {loaded.copy_s:.1f} s with the triggers "
            f"of entry and entry_line DISABLED (enabled again after), running totals "
            f"rebuilt from the lines {loaded.totals_s:.1f} s, VACUUM ANALYZE "
            f"{loaded.vacuum_s:.1f} s"
        )
    lines += [
        f"checks      every entry has 2+ lines balanced per currency: "
        f"{'yes' if loaded.balanced else 'NO'}",
        rule,
    ]
    for phase in results.member_phases:
        ms = [v * 1000 for v in phase.latencies]
        lines += [
            f"GET /members/{{id}}/activity{'?lines=true' if phase.with_lines else ''}, year, "
            f"each member its own token, {phase.concurrency} at a time, {len(ms)} requests "
            f"after {MEMBER_WARMUP}:",
            f"{'':<12}ms p50 / p95 / p99 / max: {pcts(ms, (0.5, 0.95, 0.99))}; answers "
            f"{statistics_line(phase.sizes, 'bytes')}, "
            f"{statistics_line(phase.counterparts, 'counterparts')}"
            + (f", {statistics_line(phase.lines, 'detail lines')}" if phase.with_lines else ""),
        ]
        if phase.cpu:
            lines.append(f"{'':<12}{phase.cpu.line(len(ms), 'request')}")
    lines += [
        f"GET /pole/activity, year, coordinator, one at a time, {len(pole_ms)} requests after "
        f"{POLE_WARMUP}:",
        f"{'':<12}ms p50 / p95 / max: {pcts(pole_ms, (0.5, 0.95))}; answer "
        f"{results.pole_bytes:,} bytes, {results.pole_flows:,} provider → beneficiary flows",
    ]
    if results.pole_cpu:
        lines.append(f"{'':<12}{results.pole_cpu.line(len(pole_ms), 'request')}")
    lines.append(f"FEC, streamed (ledger RSS idle after the reports: {_mb(results.rss_idle)}):")
    for one in results.exports:
        lines.append(
            f"{'':<12}{one.what:<26} {one.lines:>9,} lines (expected {one.expected:,}), "
            f"{_mb(one.bytes)}, first byte {one.to_first_byte * 1000:.0f} ms, then "
            f"{one.streaming:.2f} s: {one.rate:,.0f} lines/s; RSS {_mb(one.rss_before)} → "
            f"peak {_mb(one.rss_peak)}"
        )
        if one.cpu:
            lines.append(f"{'':<12}{one.cpu.line(one.lines // 1000, '1,000 lines')}")
    for name, plan in results.explains:
        lines += [rule, f"EXPLAIN: {name}", *(f"  {p}" for p in plan)]
    lines.append(rule)
    verdicts = [
        (f"member activity p95 < {TARGET_MEMBER_P95_MS:g} ms, {judged.concurrency} at a time "
         f"({member_p95:.1f} ms)", member_p95 < TARGET_MEMBER_P95_MS),
        (f"pole activity p95 < {TARGET_POLE_P95_MS:g} ms ({pole_p95:.1f} ms)",
         pole_p95 < TARGET_POLE_P95_MS),
    ]  # fmt: skip
    for one in results.exports:
        verdicts += [
            (f"FEC {one.what} >= {TARGET_FEC_LINES_PER_S:,.0f} lines/s ({one.rate:,.0f})",
             one.rate >= TARGET_FEC_LINES_PER_S),
            (f"FEC {one.what} peak RSS < {TARGET_FEC_RSS_MB:g} MB ({_mb(one.rss_peak)})",
             one.rss_peak < TARGET_FEC_RSS_MB * 2**20),
            (f"FEC {one.what} complete (200, {one.lines:,} = {one.expected:,} lines)",
             one.status == 200 and one.lines == one.expected),
        ]  # fmt: skip
    for text, ok in verdicts:
        lines.append(f"target      {text}: {'PASS' if ok else 'FAIL'}")
    lines.append(f"verdict     {'PASS' if all(ok for _, ok in verdicts) else 'FAIL'}")
    return "\n".join(lines)


def statistics_line(values: Sequence[int], unit: str) -> str:
    if not values:
        return f"no {unit}"
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:,} {unit} median (max {ordered[-1]:,})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=500_000, help="journal entries (500000)")
    parser.add_argument("--members", type=int, default=200, help="members of the pole (200)")
    parser.add_argument(
        "--partners", type=int, default=20,
        help="usual providers of each member (20; members - 1: anyone with anyone)",
    )  # fmt: skip
    parser.add_argument("--year", type=int, default=2025, help="the fiscal year (2025)")
    parser.add_argument("--member-requests", type=int, default=200, help="measured (200)")
    parser.add_argument("--concurrency", type=int, default=4, help="member reports at once (4)")
    parser.add_argument(
        "--workers", type=int, default=2, help="the ledger's HTTP processes (2: one per CPU)"
    )
    parser.add_argument("--pole-requests", type=int, default=20, help="measured (20)")
    parser.add_argument("--real-hashes", action="store_true", help="hash as journal.post does")
    parser.add_argument("--explain", action="store_true", help="print the statements' plans")
    parser.add_argument(
        "--reuse", metavar="NAME", help="keep (and reuse when loaded) the database NAME"
    )
    args = parser.parse_args(argv)
    if args.entries < 1000 or args.members < 2 or args.partners < 1:
        parser.error("--entries >= 1000, --members >= 2, --partners >= 1")
    if args.member_requests < 1 or args.pole_requests < 1 or args.concurrency < 1:
        parser.error("--member-requests, --pole-requests and --concurrency must be >= 1")
    signal.signal(signal.SIGTERM, _interrupt)
    configure_logging(service="bench", level="WARNING", fmt="console")

    database = args.reuse or f"bench_ledger_{uuid.uuid4().hex[:10]}"
    logs = Path(tempfile.mkdtemp(prefix="ptce-bench-ledger-"))
    loaded = Loaded()
    try:
        with servers() as srv:
            try:
                asyncio.run(_create(srv, database))
                upgrade("ledger", srv.database_url(database))
                loaded.reused = bool(args.reuse) and asyncio.run(
                    has_journal(asyncpg_dsn(srv.database_url(database)))
                )
                results = asyncio.run(measure(srv, database, args, logs, loaded))
            finally:
                if not args.reuse:
                    asyncio.run(_drop(srv, database))
    except KeyboardInterrupt:
        print(f"interrupted; servers stopped (logs in {logs})", file=sys.stderr)
        return 130
    except Exception:
        print(f"failed; the ledger's log is in {logs}", file=sys.stderr)
        raise
    shutil.rmtree(logs, ignore_errors=True)
    print(render(results, srv, args))
    return 0


async def _create(srv: Servers, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(srv.database_url("postgres")))
    try:
        if not await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop(srv: Servers, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(srv.database_url("postgres")))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


if __name__ == "__main__":
    sys.exit(main())
