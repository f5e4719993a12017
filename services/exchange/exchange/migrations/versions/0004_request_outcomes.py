"""What happened to accepted requests: late cancellations, quantities used.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "booking_request",
        sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("booking_request", sa.Column("quantity_used", sa.Numeric(12, 2), nullable=True))
    op.create_check_constraint(
        "quantity_used", "booking_request", "quantity_used IS NULL OR quantity_used >= 0"
    )


def downgrade() -> None:
    op.drop_column("booking_request", "quantity_used")
    op.drop_column("booking_request", "late")
