"""Deadlines, weekly series, objections and calendar feeds.

- ``pole.exchange_rules``: the pole's rules, from the catalog's events.
- ``booking_request.answer_by``: when a pending request expires (fixed when it is made);
  ``series_id``: the weekly series of an occurrence; ``objection``: a party's objection to
  the automatic completion. Partial indexes serve the sweeps of pending and accepted rows.
- ``calendar_feed``: secret, revocable iCalendar feed URLs (only a hash of the secret).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "pole",
        sa.Column("exchange_rules", JSONB(), nullable=False, server_default=sa.text("'{}'")),
    )
    op.add_column("booking_request", sa.Column("answer_by", sa.DateTime(timezone=True)))
    op.add_column("booking_request", sa.Column("series_id", sa.Uuid()))
    op.add_column("booking_request", sa.Column("objection", sa.String(1000)))
    op.create_index("ix_booking_request_series_id", "booking_request", ["series_id"])
    op.create_index(
        "ix_booking_request_pending_answer_by",
        "booking_request",
        ["answer_by"],
        postgresql_where=sa.text("state = 'requested'"),
    )
    op.create_index(
        "ix_booking_request_accepted_end",
        "booking_request",
        [sa.text("upper(period)")],
        postgresql_where=sa.text("state = 'accepted' AND objection IS NULL"),
    )
    op.create_table(
        "calendar_feed",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("pole_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("member_id", sa.Uuid(), nullable=False, index=True),
        sa.Column("offer_id", sa.Uuid(), nullable=True),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("calendar_feed")
    op.drop_index("ix_booking_request_accepted_end", "booking_request")
    op.drop_index("ix_booking_request_pending_answer_by", "booking_request")
    op.drop_index("ix_booking_request_series_id", "booking_request")
    op.drop_column("booking_request", "objection")
    op.drop_column("booking_request", "series_id")
    op.drop_column("booking_request", "answer_by")
    op.drop_column("pole", "exchange_rules")
