"""A pole's valuation references: dated, append-only.

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
    op.create_table(
        "valuation_reference",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_valuation_reference"),
        sa.ForeignKeyConstraint(
            ["pole_id"], ["pole.id"], name="fk_valuation_reference_pole_id_pole"
        ),
        sa.UniqueConstraint("pole_id", "code", "valid_from", name="uq_valuation_reference_pole_id"),
        sa.CheckConstraint("amount >= 0", name="ck_valuation_reference_amount"),
        sa.CheckConstraint(
            "unit IN ('hour', 'half_day', 'day', 'unit')", name="ck_valuation_reference_unit"
        ),
    )
    # Append-only, enforced by the database: a past figure must never change.
    op.execute(
        """
        CREATE FUNCTION valuation_reference_is_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'valuation references are never changed nor deleted; record a new one'
                USING ERRCODE = 'restrict_violation';
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER valuation_reference_append_only BEFORE UPDATE OR DELETE "
        "ON valuation_reference FOR EACH ROW EXECUTE FUNCTION valuation_reference_is_append_only()"
    )


def downgrade() -> None:
    op.drop_table("valuation_reference")
    op.execute("DROP FUNCTION valuation_reference_is_append_only()")
