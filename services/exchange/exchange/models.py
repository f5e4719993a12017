"""The exchange's tables, including its local copies of the catalog's facts."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Integer, Numeric, String, Table, Uuid
from sqlalchemy.dialects.postgresql import JSONB, TSTZRANGE
from sqlmodel import SQLModel

from shared.db import kernel_tables, new_registry
from shared.idempotency import idempotency_table
from shared.readmodels import member_copy_table, offer_copy_table, pole_copy_table


class ExchangeModel(SQLModel, registry=new_registry()):
    pass


outbox, processed_event = kernel_tables(ExchangeModel.metadata)
pole = pole_copy_table(ExchangeModel.metadata)
member = member_copy_table(ExchangeModel.metadata)
offer = offer_copy_table(ExchangeModel.metadata)

# States whose period is committed: it counts against the offer's capacity.
HOLDING_STATES = ("requested", "accepted", "completed", "no_show")

booking_request = Table(
    "booking_request",
    ExchangeModel.metadata,
    Column("id", Uuid, primary_key=True),
    Column("pole_id", Uuid, nullable=False, index=True),
    Column("offer_id", Uuid, nullable=False, index=True),
    Column("offer_kind", String(20), nullable=False),
    Column("provider_id", Uuid, nullable=False, index=True),
    Column("requester_id", Uuid, nullable=False, index=True),
    Column("period", TSTZRANGE),
    Column("quantity", Numeric(12, 2)),
    Column("message", String(2000), nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", String(1000)),
    Column("late", Boolean, nullable=False, server_default="false"),
    Column("fee_percent", Integer),
    Column("quantity_used", Numeric(12, 2)),
    Column("exclusive", Boolean, nullable=False),
    Column("terms", JSONB),
    Column("answer_by", DateTime(timezone=True)),
    Column("series_id", Uuid, index=True),
    Column("objection", String(1000)),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

idempotency_key = idempotency_table(ExchangeModel.metadata)

calendar_feed = Table(
    "calendar_feed",
    ExchangeModel.metadata,
    Column("id", Uuid, primary_key=True),
    Column("pole_id", Uuid, nullable=False, index=True),
    Column("member_id", Uuid, nullable=False, index=True),
    Column("offer_id", Uuid),
    Column("label", String(200), nullable=False, server_default=""),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
