"""Indexes for the reports and the FEC, from what bench/ledger_reports.py measured (a million
journal lines a year for a pole of 200 members).

An entry's filters (pole, book, journal, date) are in ``entry`` and its amounts in
``entry_line``: every report joins the two, line by line. Without these indexes they read
both tables whole, three or four times per report. With them:

- a member's activity walks its own entries of a journal and period in
  ``ix_entry_book_journal_date`` and fetches their class 6, 7 and 86 lines from
  ``ix_entry_line_report``; the contributions in kind it provided, from
  ``ix_entry_line_in_kind_counterpart`` and their entries from ``ix_entry_id_covering``. All
  index-only: neither table is read, and the reports' working set is these indexes, a third
  of the tables' size;
- the pole's activity joins ``ix_entry_line_report`` with the pole's entries; its resources
  read the few lines naming an origin (``ix_entry_line_origin``);
- the FEC reads a year's entries in its order (book, journal, number) from ``ix_entry_fec``
  and their lines from ``ix_entry_line_fec``: streaming from the first line instead of sorting
  the year first, and without reading ``entry_line`` (measured 4.5 µs of PostgreSQL a line
  instead of 6.5).

The partial indexes are defined by ``account LIKE '<class>%'`` patterns: the reports write
the same patterns into their statements (``ledger.reports._starts``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REPORT_ACCOUNTS = "account LIKE '6%' OR account LIKE '7%' OR account LIKE '86%'"
IN_KIND_USES = "account LIKE '86%'"


def upgrade() -> None:
    op.create_index(
        "ix_entry_fec", "entry", ["pole_id", "fiscal_year", "book_id", "journal", "number"]
    )
    op.create_index(
        "ix_entry_book_journal_date",
        "entry",
        ["book_id", "journal", "entry_date"],
        postgresql_include=["pole_id", "id"],
    )
    op.create_index(
        "ix_entry_id_covering",
        "entry",
        ["id"],
        postgresql_include=["pole_id", "book_id", "journal", "entry_date"],
    )
    op.create_index(
        "ix_entry_line_fec",
        "entry_line",
        ["entry_id", "line_no"],
        postgresql_include=["account", "debit", "credit", "currency", "counterpart_id"],
    )
    op.create_index(
        "ix_entry_line_report",
        "entry_line",
        ["entry_id"],
        postgresql_include=[
            "account",
            "debit",
            "credit",
            "counterpart_id",
            "resource",
            "unit",
            "quantity",
        ],
        postgresql_where=sa.text(REPORT_ACCOUNTS),
    )
    op.create_index(
        "ix_entry_line_in_kind_counterpart",
        "entry_line",
        ["counterpart_id"],
        postgresql_include=["entry_id", "resource", "unit", "debit", "credit", "quantity"],
        postgresql_where=sa.text(IN_KIND_USES),
    )
    op.create_index(
        "ix_entry_line_origin",
        "entry_line",
        ["entry_id"],
        postgresql_include=["account", "debit", "credit", "resource", "origin", "flow"],
        postgresql_where=sa.text("origin IS NOT NULL"),
    )


def downgrade() -> None:
    for name, table in (
        ("ix_entry_line_origin", "entry_line"),
        ("ix_entry_line_in_kind_counterpart", "entry_line"),
        ("ix_entry_line_report", "entry_line"),
        ("ix_entry_line_fec", "entry_line"),
        ("ix_entry_id_covering", "entry"),
        ("ix_entry_book_journal_date", "entry"),
        ("ix_entry_fec", "entry"),
    ):
        op.drop_index(name, table_name=table)
