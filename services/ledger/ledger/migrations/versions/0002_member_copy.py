"""Local copy of the catalog's members (from its events).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("legal_name", sa.String(300), nullable=False),
        sa.Column("siret", sa.String(14), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("is_ess", sa.Boolean(), nullable=False),
        sa.Column("headcount", sa.Integer(), nullable=True),
        sa.Column("annual_turnover", sa.Numeric(16, 2), nullable=True),
        sa.Column("street", sa.String(300), nullable=False),
        sa.Column("postal_code", sa.String(5), nullable=False),
        sa.Column("commune", sa.String(200), nullable=False),
        sa.Column("insee_code", sa.String(5), nullable=False),
        sa.Column("joined_on", sa.Date(), nullable=False),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_member"),
    )
    op.create_index("ix_member_pole_id", "member", ["pole_id"])


def downgrade() -> None:
    op.drop_table("member")
