"""``booking_request.fee_percent``: for a late cancellation or a no-show, the share of the
booked price owed to the provider, by the pole's rule when the exchange recorded it. Carried
in the request's events, so that the ledger values the fee by the rule then in force, not by
its copy of the rules when it reads the event. Rows recorded before stay NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "booking_request",
        sa.Column(
            "fee_percent",
            sa.Integer(),
            sa.CheckConstraint(
                "fee_percent BETWEEN 0 AND 100", name="ck_booking_request_fee_percent"
            ),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_column("booking_request", "fee_percent")
