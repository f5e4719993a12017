"""Members, their API clients, the token-signing keys; a pole's territory.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES = (
    "association",
    "cooperative",
    "mutual",
    "work_integration",
    "other_ess",
    "company",
    "local_authority",
    "research_higher_education",
    "training_body",
    "individual",
)


def upgrade() -> None:
    op.add_column("pole", sa.Column("territory", sa.String(300), nullable=False, server_default=""))
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
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_member"),
        sa.ForeignKeyConstraint(["pole_id"], ["pole.id"], name="fk_member_pole_id_pole"),
        sa.UniqueConstraint("pole_id", "siret", name="uq_member_pole_id"),
        sa.CheckConstraint(
            "category IN (" + ", ".join(f"'{c}'" for c in CATEGORIES) + ")",
            name="ck_member_category",
        ),
        sa.CheckConstraint(
            "left_on IS NULL OR left_on >= joined_on", name="ck_member_left_after_joined"
        ),
        sa.CheckConstraint("headcount IS NULL OR headcount >= 0", name="ck_member_headcount"),
        sa.CheckConstraint(
            "annual_turnover IS NULL OR annual_turnover >= 0", name="ck_member_turnover"
        ),
    )
    op.create_index("ix_member_pole_id", "member", ["pole_id"])
    op.create_table(
        "api_client",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_client"),
        sa.ForeignKeyConstraint(["pole_id"], ["pole.id"], name="fk_api_client_pole_id_pole"),
        sa.ForeignKeyConstraint(
            ["member_id"], ["member.id"], name="fk_api_client_member_id_member"
        ),
        sa.CheckConstraint(
            "role IN ('member', 'coordinator', 'auditor')", name="ck_api_client_role"
        ),
    )
    op.create_index("ix_api_client_pole_id", "api_client", ["pole_id"])
    op.create_index("ix_api_client_member_id", "api_client", ["member_id"])
    op.create_table(
        "signing_key",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("private_pem", sa.Text(), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_signing_key"),
    )


def downgrade() -> None:
    op.drop_table("signing_key")
    op.drop_table("api_client")
    op.drop_table("member")
    op.drop_column("pole", "territory")
