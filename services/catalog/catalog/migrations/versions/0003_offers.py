"""Offers, and French full-text search over them.

``ptce_french`` is the French text search configuration with accents removed before
stemming, so "réunion", "reunions" and "Réunions" are one lexeme. ``offer.search`` is a
generated column (title weighted above description and commune), indexed with GIN.

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


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE TEXT SEARCH CONFIGURATION ptce_french (COPY = pg_catalog.french)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION ptce_french "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem"
    )
    op.create_table(
        "offer",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(5000), nullable=False),
        sa.Column("street", sa.String(300), nullable=True),
        sa.Column("postal_code", sa.String(5), nullable=True),
        sa.Column("commune", sa.String(200), nullable=True),
        sa.Column("insee_code", sa.String(5), nullable=True),
        sa.Column("unit", sa.String(20), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booking_mode", sa.String(20), nullable=False),
        sa.Column("internal_price", sa.Numeric(12, 2), nullable=True),
        sa.Column("reference_value", sa.Numeric(12, 2), nullable=True),
        sa.Column("valuation_basis", sa.String(20), nullable=True),
        sa.Column("attributes", postgresql.JSONB(), nullable=True),
        sa.Column("availability", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "search",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector('ptce_french', title), 'A') || "
                "setweight(to_tsvector('ptce_french', description), 'B') || "
                "setweight(to_tsvector('ptce_french', coalesce(commune, '')), 'C')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_offer"),
        sa.ForeignKeyConstraint(["pole_id"], ["pole.id"], name="fk_offer_pole_id_pole"),
        sa.ForeignKeyConstraint(["owner_id"], ["member.id"], name="fk_offer_owner_id_member"),
        sa.CheckConstraint(
            "kind IN ('premises', 'equipment', 'staff_time', 'service')", name="ck_offer_kind"
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'published', 'paused', 'archived')", name="ck_offer_state"
        ),
        sa.CheckConstraint(
            "unit IS NULL OR unit IN ('hour', 'half_day', 'day', 'unit')", name="ck_offer_unit"
        ),
        sa.CheckConstraint("booking_mode IN ('instant', 'approval')", name="ck_offer_booking_mode"),
        sa.CheckConstraint("capacity >= 1", name="ck_offer_capacity"),
        sa.CheckConstraint(
            "internal_price IS NULL OR internal_price >= 0", name="ck_offer_internal_price"
        ),
        sa.CheckConstraint(
            "reference_value IS NULL OR reference_value >= 0", name="ck_offer_reference_value"
        ),
    )
    op.create_index("ix_offer_owner_id", "offer", ["owner_id"])
    op.create_index(
        "ix_offer_published",
        "offer",
        ["pole_id", "kind", "internal_price"],
        postgresql_where=sa.text("state = 'published'"),
    )
    op.create_index("ix_offer_search", "offer", ["search"], postgresql_using="gin")


def downgrade() -> None:
    op.drop_table("offer")
    op.execute("DROP TEXT SEARCH CONFIGURATION ptce_french")
