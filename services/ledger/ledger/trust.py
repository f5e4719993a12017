"""Checks that the journal says what happened.

- ``reconcile``: the exchange's completed exchanges against what the journal posted for them:
  an exchange the journal misses, a posting for an exchange the exchange does not know as
  completed, a monetary amount or a version that differs.
- ``totals_differences``: the running totals the reports read (``activity_total``, kept by a
  trigger, migration 0007) against the same sums computed from the journal's lines;
  ``rebuild_totals`` computes them again from the lines.
- ``journal_checksum``: a digest of a pole's journal content that does not depend on the
  order the events were applied in (entry ids, numbers, positions and hashes are left out):
  replaying the catalog's and the exchange's topics into an empty ledger gives the same one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.models import entry, entry_line

EXCHANGE_SOURCES = "exchange:"


@dataclass(frozen=True)
class Difference:
    request_id: uuid.UUID
    problem: str


@dataclass(frozen=True)
class Reconciliation:
    exchanges: int
    differences: list[Difference]


# Per exchange: the latest version the journal valued, and the provider's net revenue from
# it (reversals included), fees left out.
_POSTED = text(
    """
    SELECT split_part(e.source, ':', 2)::uuid AS request_id,
           max(substring(split_part(e.source, ':', 4) FROM 2)::int)
               FILTER (WHERE e.reverses_id IS NULL) AS version,
           coalesce(sum(l.credit - l.debit) FILTER (
               WHERE l.account LIKE '7%' AND l.flow = 'monetary'
                 AND l.resource NOT IN ('management_fee', 'cancellation_fee')), 0) AS revenue
    FROM entry e JOIN entry_line l ON l.entry_id = e.id
    WHERE e.source LIKE 'exchange:%:completed:%'
      AND (CAST(:pole AS uuid) IS NULL OR e.pole_id = :pole)
    GROUP BY 1
    """
)


def _expected_revenue(terms: dict[str, Any], quantity_used: Decimal) -> Decimal:
    return (Decimal(str(terms["internal_price"])) * quantity_used).quantize(Decimal("0.01"))


async def reconcile(
    exchange: AsyncSession, ledger: AsyncSession, pole_id: uuid.UUID | None = None
) -> Reconciliation:
    completed = {
        row.id: row
        for row in await exchange.execute(
            text(
                "SELECT id, version, quantity_used, terms FROM booking_request "
                "WHERE state = 'completed' AND (CAST(:pole AS uuid) IS NULL OR pole_id = :pole)"
            ),
            {"pole": pole_id},
        )
    }
    posted = {row.request_id: row for row in await ledger.execute(_POSTED, {"pole": pole_id})}
    differences = []
    for request_id, row in completed.items():
        expected = _expected_revenue(row.terms, row.quantity_used)
        found = posted.get(request_id)
        if found is None:
            # An exchange worth nothing in money nor in kind posts nothing: nothing to miss.
            worth = Decimal(str(row.terms["reference_value"])) > 0 or expected > 0
            if worth:
                differences.append(Difference(request_id, "completed but not in the journal"))
            continue
        if found.version != row.version:
            differences.append(
                Difference(
                    request_id, f"journal at version {found.version}, exchange {row.version}"
                )
            )
        if found.revenue != expected:
            differences.append(
                Difference(request_id, f"revenue {found.revenue} in the journal, {expected} due")
            )
    for request_id in posted.keys() - completed.keys():
        differences.append(Difference(request_id, "in the journal but not completed"))
    return Reconciliation(exchanges=len(completed), differences=differences)


async def journal_checksum(
    session: AsyncSession, pole_id: uuid.UUID, *, sources: str = EXCHANGE_SOURCES
) -> tuple[int, str]:
    """How many entries of the pole come from ``sources``, and a digest of their content."""
    line_columns = [c for c in entry_line.c if c.name not in ("entry_id", "line_no")]
    statement = (
        select(
            entry.c.source,
            entry.c.book_id,
            entry.c.journal,
            entry.c.entry_date,
            entry.c.label,
            func.jsonb_agg(
                aggregate_order_by(func.jsonb_build_array(*line_columns), entry_line.c.line_no)
            ),
        )
        .join(entry_line, entry_line.c.entry_id == entry.c.id)
        .where(entry.c.pole_id == pole_id, entry.c.source.startswith(sources))
        .group_by(entry.c.id)
        .order_by(entry.c.source, entry.c.book_id)
    )
    digest = hashlib.sha256()
    count = 0
    for row in await session.execute(statement):
        count += 1
        digest.update(json.dumps([str(value) for value in row], sort_keys=True).encode())
    return count, digest.hexdigest()


_TOTALS_KEYS = (
    "grain, period_start, breakdown, member_id, direction, flow, resource, unit, "
    "counterpart_id, exchange"
)
_TOTALS_DIFFERENCES = text(
    f"""
    WITH kept AS (
        SELECT {_TOTALS_KEYS}, amount, quantity FROM activity_total WHERE pole_id = :pole
    ), computed AS (
        SELECT {_TOTALS_KEYS}, sum(amount) AS amount, sum(quantity) AS quantity
          FROM activity_total_line WHERE pole_id = :pole GROUP BY {_TOTALS_KEYS}
    )
    SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE computed) AS extra)
         + (SELECT count(*) FROM (TABLE computed EXCEPT ALL TABLE kept) AS missing)
    """
)


async def totals_differences(session: AsyncSession, pole_id: uuid.UUID) -> int:
    """How many rows of the pole's running totals differ from the sums of its lines."""
    return int(await session.scalar(_TOTALS_DIFFERENCES, {"pole": pole_id}) or 0)


async def rebuild_totals(session: AsyncSession, pole_id: uuid.UUID) -> None:
    """Compute the pole's running totals again from its lines (in the caller's transaction,
    under the pole's chain head: no posting adds to them meanwhile)."""
    await session.execute(text("SELECT ledger_rebuild_activity_totals(:pole)"), {"pole": pole_id})
