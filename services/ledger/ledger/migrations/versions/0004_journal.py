"""The double-entry journal, its guarantees in the database, and the copies it values from.

- ``entry`` / ``entry_line``: an entry belongs to one book (a member's, or the pole's own) and
  one journal; its lines are balanced per currency, at least two — checked by a deferred
  constraint trigger at commit, whatever wrote them. Entries and lines are immutable (a
  trigger refuses UPDATE and DELETE): a correction is a reversing entry plus a new one.
- A source (an event, an API call) posts once per book: a unique index.
- Entry numbers are gap-free per book, journal and fiscal year: taken from ``entry_counter``
  under a row lock in the posting's transaction (a sequence would leave gaps on rollback).
- ``chain_head`` holds, per pole, the position and hash of the last entry: each entry's hash
  covers the previous one, so an entry altered after the fact breaks the chain.
- ``valuation_reference``: the pole's dated references (from the catalog's events).

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
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(50), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("unit", sa.String(20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.UniqueConstraint("pole_id", "code", "valid_from", name="uq_reference_per_day"),
    )
    op.create_table(
        "chain_head",
        sa.Column("pole_id", sa.Uuid(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "entry_counter",
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("journal", sa.String(8), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("book_id", "journal", "fiscal_year", name="pk_entry_counter"),
    )
    op.create_table(
        "entry",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("pole_id", sa.Uuid(), nullable=False),
        sa.Column("book_id", sa.Uuid(), nullable=False),
        sa.Column("journal", sa.String(8), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("entry_date", sa.Date(), nullable=False),
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), sa.ForeignKey("entry.id")),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("source", "book_id", name="uq_entry_source_per_book"),
        sa.UniqueConstraint("book_id", "journal", "fiscal_year", "number", name="uq_entry_number"),
        sa.UniqueConstraint("pole_id", "position", name="uq_entry_chain_position"),
    )
    op.create_index("ix_entry_pole_date", "entry", ["pole_id", "entry_date"])
    op.create_index("ix_entry_book_date", "entry", ["book_id", "entry_date"])
    op.create_table(
        "entry_line",
        sa.Column("entry_id", sa.Uuid(), sa.ForeignKey("entry.id"), nullable=False),
        sa.Column("line_no", sa.SmallInteger(), nullable=False),
        sa.Column("account", sa.String(10), nullable=False),
        sa.Column("debit", sa.Numeric(14, 2), nullable=False),
        sa.Column("credit", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("counterpart_id", sa.Uuid()),
        sa.Column("flow", sa.String(10), nullable=False),
        sa.Column("resource", sa.String(30), nullable=False),
        sa.Column("origin", sa.String(20)),
        sa.Column("quantity", sa.Numeric(12, 2)),
        sa.Column("unit", sa.String(20)),
        sa.Column("valuation_method", sa.String(30)),
        sa.Column("reference_date", sa.Date()),
        sa.PrimaryKeyConstraint("entry_id", "line_no", name="pk_entry_line"),
        sa.CheckConstraint(
            "debit >= 0 AND credit >= 0 AND (debit = 0) <> (credit = 0)",
            name="ck_entry_line_one_side",
        ),
        sa.CheckConstraint("flow IN ('monetary', 'in_kind')", name="ck_entry_line_flow"),
    )
    op.create_index("ix_entry_line_counterpart", "entry_line", ["counterpart_id"])
    op.execute(
        """
        CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    for table in ("entry", "entry_line"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only()"
        )
    op.execute(
        """
        CREATE FUNCTION ledger_entry_is_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            checked uuid;
            lines integer;
            unbalanced text;
        BEGIN
            IF TG_TABLE_NAME = 'entry' THEN
                checked := NEW.id;
            ELSE
                checked := NEW.entry_id;
            END IF;
            SELECT count(*) INTO lines FROM entry_line WHERE entry_id = checked;
            IF lines < 2 THEN
                RAISE EXCEPTION 'entry % has % line(s): two at least', checked, lines
                    USING ERRCODE = 'check_violation';
            END IF;
            SELECT currency INTO unbalanced FROM entry_line WHERE entry_id = checked
                GROUP BY currency HAVING sum(debit) <> sum(credit) LIMIT 1;
            IF unbalanced IS NOT NULL THEN
                RAISE EXCEPTION 'entry % is not balanced in %', checked, unbalanced
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table in ("entry", "entry_line"):
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {table}_balanced AFTER INSERT ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            "EXECUTE FUNCTION ledger_entry_is_balanced()"
        )


def downgrade() -> None:
    for table in ("entry", "entry_line"):
        op.execute(f"DROP TRIGGER {table}_balanced ON {table}")
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.execute("DROP FUNCTION ledger_entry_is_balanced()")
    op.execute("DROP FUNCTION ledger_is_append_only()")
    op.drop_table("entry_line")
    op.drop_table("entry")
    op.drop_table("entry_counter")
    op.drop_table("chain_head")
    op.drop_table("valuation_reference")
