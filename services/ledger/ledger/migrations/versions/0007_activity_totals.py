"""Running totals of the activity attributable to the pole, kept by the database.

A member's activity and the pole's are sums of journal lines: read from the lines, a year of
an active member is thousands of lines and the pole's a million (bench/ledger_reports.py).
``activity_total`` holds the same sums per month and per calendar year, updated in the
posting's own transaction by a trigger on ``entry_line``: a report reads the totals of its
whole years and whole months, and the lines of its other days only.

One definition of what a line means to a member, in SQL, used for everything:

- ``activity_attribution`` (a view): per journal line, the member it counts for, and how.
  In its own book: class 7 of ``EX`` is *provided* in money, class 6 of ``EX`` *received* in
  money, class 86 of ``CVN`` *received* in kind; a class-86 line of another member's ``CVN``
  naming it as counterpart is *provided* in kind by it.
- ``activity_breakdown`` (a view): each attribution three times, once per breakdown the
  reports need: a member's by resource and unit (with the quantity), a member's by
  counterpart, and the whole pole's by resource and unit. Resource × counterpart would be
  nearly as many rows as the lines.
- ``activity_total_line`` (a view): each of those at both grains, month and year, with its
  period's first day; the pole's breakdown without its member (the member is kept in
  ``activity_breakdown``, so that a condition on it reaches the journal's indexes).
- the trigger ``entry_line_activity`` adds each statement's new lines to ``activity_total``,
  at both grains (postings of a pole are serialised by its chain head: no deadlock between
  totals rows);
- ``ledger_rebuild_activity_totals(pole)`` recomputes a pole's totals from the lines (after a
  bulk load with triggers disabled; ``ptce ledger verify`` compares them).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# ledger.chart.Resource: what an exchange can be about (a test checks they agree).
EXCHANGE_RESOURCES = (
    "premises",
    "equipment",
    "staff_time",
    "service",
    "management_fee",
    "cancellation_fee",
)
KEYS = (
    "pole_id, grain, period_start, breakdown, member_id, direction, flow, resource, unit, "
    "counterpart_id, exchange"
)


def upgrade() -> None:
    listed = ", ".join(f"'{resource}'" for resource in EXCHANGE_RESOURCES)
    op.execute(
        f"""
        CREATE FUNCTION ledger_is_exchange_resource(resource text) RETURNS boolean
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT resource IN ({listed}) $$
        """
    )
    op.execute(
        """
        CREATE TABLE activity_total (
            pole_id uuid NOT NULL,
            grain varchar(5) NOT NULL
                CONSTRAINT ck_activity_total_grain CHECK (grain IN ('month', 'year')),
            period_start date NOT NULL,
            breakdown varchar(12) NOT NULL CONSTRAINT ck_activity_total_breakdown
                CHECK (breakdown IN ('resource', 'counterpart', 'pole')),
            member_id uuid,
            direction varchar(8) NOT NULL,
            flow varchar(10) NOT NULL,
            resource varchar(30),
            unit varchar(20),
            counterpart_id uuid,
            exchange boolean NOT NULL,
            amount numeric(16, 2) NOT NULL,
            quantity numeric(14, 2),
            CONSTRAINT uq_activity_total UNIQUE NULLS NOT DISTINCT
                (pole_id, grain, breakdown, member_id, period_start, direction, flow, resource,
                 unit, counterpart_id, exchange)
        )
        """
    )
    op.execute(
        """
        CREATE VIEW activity_attribution AS
        SELECT e.pole_id, e.book_id AS member_id, e.id AS entry_id, l.line_no, e.entry_date,
               CASE WHEN l.account LIKE '7%' THEN 'provided' ELSE 'received' END AS direction,
               CASE WHEN e.journal = 'EX' THEN 'monetary' ELSE 'in_kind' END AS flow,
               l.resource, l.unit, l.counterpart_id,
               CASE WHEN l.account LIKE '7%' THEN l.credit - l.debit
                    ELSE l.debit - l.credit END AS amount,
               l.quantity
          FROM entry e JOIN entry_line l ON l.entry_id = e.id
         WHERE (e.journal = 'EX' AND (l.account LIKE '7%' OR l.account LIKE '6%'))
            OR (e.journal = 'CVN' AND l.account LIKE '86%')
        UNION ALL
        SELECT e.pole_id, l.counterpart_id, e.id, l.line_no, e.entry_date, 'provided', 'in_kind',
               l.resource, l.unit, e.book_id, l.debit - l.credit, l.quantity
          FROM entry e JOIN entry_line l ON l.entry_id = e.id
         WHERE e.journal = 'CVN' AND l.account LIKE '86%'
           AND l.counterpart_id IS NOT NULL AND l.counterpart_id <> e.book_id
        """
    )
    op.execute(
        """
        CREATE VIEW activity_breakdown AS
        SELECT a.pole_id, a.entry_id, a.line_no, a.entry_date,
               date_trunc('month', a.entry_date)::date AS month,
               b.breakdown, a.member_id,
               a.direction, a.flow,
               CASE WHEN b.breakdown <> 'counterpart' THEN a.resource END AS resource,
               CASE WHEN b.breakdown <> 'counterpart' THEN a.unit END AS unit,
               CASE WHEN b.breakdown = 'counterpart' THEN a.counterpart_id END AS counterpart_id,
               ledger_is_exchange_resource(a.resource) AS exchange,
               a.amount,
               CASE WHEN b.breakdown <> 'counterpart' THEN a.quantity END AS quantity
          FROM activity_attribution a
         CROSS JOIN (VALUES ('resource'), ('counterpart'), ('pole')) AS b (breakdown)
        """
    )
    # Sums of quantities stay NULL while every quantity summed is NULL, as sum() does.
    merge = """
        ON CONFLICT ON CONSTRAINT uq_activity_total DO UPDATE SET
            amount = activity_total.amount + EXCLUDED.amount,
            quantity = CASE
                WHEN activity_total.quantity IS NULL AND EXCLUDED.quantity IS NULL THEN NULL
                ELSE coalesce(activity_total.quantity, 0) + coalesce(EXCLUDED.quantity, 0)
            END
    """

    op.execute(
        """
        CREATE VIEW activity_total_line AS
        SELECT pole_id, entry_id, line_no, g.grain,
               date_trunc(g.grain, entry_date)::date AS period_start,
               breakdown, CASE WHEN breakdown <> 'pole' THEN member_id END AS member_id,
               direction, flow, resource, unit, counterpart_id, exchange, amount, quantity
          FROM activity_breakdown
         CROSS JOIN (VALUES ('month'), ('year')) AS g (grain)
        """
    )

    def totals(where: str) -> str:
        """The totals of the lines ``where`` keeps, added to ``activity_total``."""
        return f"""
            INSERT INTO activity_total ({KEYS}, amount, quantity)
            SELECT {KEYS}, sum(amount), sum(quantity) FROM activity_total_line
             WHERE {where}
             GROUP BY {KEYS}
            {merge}
        """

    op.execute(
        f"""
        CREATE FUNCTION ledger_add_activity() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- The new lines only: an entry's lines may come in several statements.
            {
            totals(
                "entry_id = ANY (ARRAY(SELECT DISTINCT entry_id FROM new_lines)) "
                "AND (entry_id, line_no) IN (SELECT entry_id, line_no FROM new_lines)"
            )
        };
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER entry_line_activity AFTER INSERT ON entry_line "
        "REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT "
        "EXECUTE FUNCTION ledger_add_activity()"
    )
    op.execute(
        f"""
        CREATE FUNCTION ledger_rebuild_activity_totals(pole uuid) RETURNS void
        LANGUAGE plpgsql AS $$
        BEGIN
            -- Under the pole's chain head, like a posting: none adds to the totals meanwhile.
            PERFORM 1 FROM chain_head WHERE pole_id = pole FOR UPDATE;
            DELETE FROM activity_total WHERE pole_id = pole;
            {totals("pole_id = pole")};
        END $$
        """
    )
    op.execute("SELECT ledger_rebuild_activity_totals(pole_id) FROM chain_head")


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_rebuild_activity_totals(uuid)")
    op.execute("DROP TRIGGER entry_line_activity ON entry_line")
    op.execute("DROP FUNCTION ledger_add_activity()")
    op.execute("DROP VIEW activity_total_line")
    op.execute("DROP VIEW activity_breakdown")
    op.execute("DROP VIEW activity_attribution")
    op.execute("DROP TABLE activity_total")
    op.execute("DROP FUNCTION ledger_is_exchange_resource(text)")
