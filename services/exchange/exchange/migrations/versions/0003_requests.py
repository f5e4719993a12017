"""Requests between members, and the guarantee against double booking.

An offer of capacity one can never hold two overlapping committed periods: an exclusion
constraint (GiST over the offer and the half-open period) enforces it whatever the
concurrency. Larger capacities are checked under a lock on the offer's row (see
``exchange/requests.py``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HOLDING = "state IN ('requested', 'accepted', 'completed', 'no_show')"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "booking_request",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("offer_kind", sa.String(20), nullable=False),
        sa.Column("provider_id", sa.Uuid(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column("period", postgresql.TSTZRANGE(), nullable=True),
        sa.Column("quantity", sa.Numeric(12, 2), nullable=True),
        sa.Column("message", sa.String(2000), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.Column("terms", postgresql.JSONB(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_booking_request"),
        sa.CheckConstraint(
            "state IN ('requested', 'accepted', 'declined', 'withdrawn', 'expired', "
            "'cancelled', 'completed', 'no_show')",
            name="ck_booking_request_state",
        ),
        sa.CheckConstraint(
            "period IS NULL OR (NOT isempty(period) AND lower_inc(period) "
            "AND NOT upper_inc(period) AND NOT lower_inf(period) AND NOT upper_inf(period))",
            name="ck_booking_request_half_open_period",
        ),
        sa.CheckConstraint(
            "period IS NOT NULL OR quantity IS NOT NULL", name="ck_booking_request_what"
        ),
        sa.CheckConstraint("requester_id <> provider_id", name="ck_booking_request_parties"),
    )
    for column in ("pole_id", "offer_id", "provider_id", "requester_id"):
        op.create_index(f"ix_booking_request_{column}", "booking_request", [column])
    op.execute(
        "ALTER TABLE booking_request ADD CONSTRAINT ex_booking_request_no_double_booking "
        "EXCLUDE USING gist (offer_id WITH =, period WITH &&) "
        f"WHERE (exclusive AND period IS NOT NULL AND {HOLDING})"
    )
    op.create_index(
        "ix_booking_request_holding",
        "booking_request",
        ["offer_id", "period"],
        postgresql_using="gist",
        postgresql_where=sa.text(f"period IS NOT NULL AND {HOLDING}"),
    )


def downgrade() -> None:
    op.drop_table("booking_request")
