"""The ledger's tables, including its local copies of the catalog's facts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from shared.db import kernel_tables, new_registry
from shared.readmodels import member_copy_table, pole_copy_table


class LedgerModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(LedgerModel.metadata)
pole = pole_copy_table(LedgerModel.metadata)
member = member_copy_table(LedgerModel.metadata)

valuation_reference = Table(
    "valuation_reference",
    LedgerModel.metadata,
    Column("id", Uuid, primary_key=True),
    Column("pole_id", Uuid, nullable=False),
    Column("code", String(50), nullable=False),
    Column("label", String(200), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("unit", String(20), nullable=False),
    Column("valid_from", Date, nullable=False),
)

chain_head = Table(
    "chain_head",
    LedgerModel.metadata,
    Column("pole_id", Uuid, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

entry_counter = Table(
    "entry_counter",
    LedgerModel.metadata,
    Column("book_id", Uuid, primary_key=True),
    Column("journal", String(8), primary_key=True),
    Column("fiscal_year", Integer, primary_key=True),
    Column("last_number", Integer, nullable=False),
)

entry = Table(
    "entry",
    LedgerModel.metadata,
    Column("id", Uuid, primary_key=True),
    Column("pole_id", Uuid, nullable=False),
    Column("book_id", Uuid, nullable=False),
    Column("journal", String(8), nullable=False),
    Column("fiscal_year", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("entry_date", Date, nullable=False),
    Column("label", String(300), nullable=False),
    Column("source", String(200), nullable=False),
    Column("reverses_id", Uuid),
    Column("position", BigInteger, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False),
)

entry_line = Table(
    "entry_line",
    LedgerModel.metadata,
    Column("entry_id", Uuid, primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("account", String(10), nullable=False),
    Column("debit", Numeric(14, 2), nullable=False),
    Column("credit", Numeric(14, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("counterpart_id", Uuid),
    Column("flow", String(10), nullable=False),
    Column("resource", String(30), nullable=False),
    Column("origin", String(20)),
    Column("quantity", Numeric(12, 2)),
    Column("unit", String(20)),
    Column("valuation_method", String(30)),
    Column("reference_date", Date),
)

dues_rule = Table(
    "dues_rule",
    LedgerModel.metadata,
    Column("pole_id", Uuid, primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("basis", String(20), nullable=False),
    Column("brackets", JSONB, nullable=False),
    Column("version", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)

activity_total = Table(
    "activity_total",
    LedgerModel.metadata,
    Column("pole_id", Uuid, nullable=False),
    Column("grain", String(5), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("breakdown", String(12), nullable=False),
    Column("member_id", Uuid),
    Column("direction", String(8), nullable=False),
    Column("flow", String(10), nullable=False),
    Column("resource", String(30)),
    Column("unit", String(20)),
    Column("counterpart_id", Uuid),
    Column("exchange", Boolean, nullable=False),
    Column("amount", Numeric(16, 2), nullable=False),
    Column("quantity", Numeric(14, 2)),
)

# Views (migration 0007): what each journal line counts for in a member's activity. Kept
# out of LedgerModel.metadata: the migrations create them.
_VIEWS = MetaData()


def _attribution_columns() -> list[Column[Any]]:
    return [
        Column("pole_id", Uuid),
        Column("member_id", Uuid),
        Column("entry_id", Uuid),
        Column("line_no", SmallInteger),
        Column("entry_date", Date),
        Column("direction", String),
        Column("flow", String),
        Column("resource", String),
        Column("unit", String),
        Column("counterpart_id", Uuid),
        Column("amount", Numeric),
        Column("quantity", Numeric),
    ]


activity_attribution = Table("activity_attribution", _VIEWS, *_attribution_columns())
activity_breakdown = Table(
    "activity_breakdown",
    _VIEWS,
    *_attribution_columns(),
    Column("month", Date),
    Column("breakdown", String),
    Column("exchange", Boolean),
)
