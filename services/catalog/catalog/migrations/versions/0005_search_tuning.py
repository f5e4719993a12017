"""Search tuning, from what bench/catalog_search.py measured.

- Stopwords are removed before accents: otherwise "à" became "a" and "été" "ete", kept as
  words, and as prefixes matched nearly everything. The stored vectors are recomputed.
- Commune names are compared through an immutable unaccent, so that an index can serve the
  filter; published offers are indexed by commune code and by title for the default sort.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE TEXT SEARCH DICTIONARY ptce_french_stop "
        "(TEMPLATE = simple, STOPWORDS = french, ACCEPT = false)"
    )
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION ptce_french "
        "ALTER MAPPING FOR hword, hword_part, word WITH ptce_french_stop, unaccent, french_stem"
    )
    # A generated column is recomputed when its row is updated.
    op.execute("UPDATE offer SET title = title")
    # unaccent() is only STABLE (its dictionary could change); pinning the dictionary makes
    # it safe to declare IMMUTABLE, which an index expression needs.
    op.execute(
        "CREATE FUNCTION ptce_fold(value text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "RETURN lower(public.unaccent('public.unaccent'::regdictionary, value))"
    )
    op.create_index(
        "ix_offer_published_commune",
        "offer",
        ["pole_id", sa.text("ptce_fold(commune)")],
        postgresql_where=sa.text("state = 'published'"),
    )
    op.create_index(
        "ix_offer_published_insee",
        "offer",
        ["pole_id", "insee_code", "kind"],
        postgresql_where=sa.text("state = 'published'"),
    )
    op.create_index(
        "ix_offer_published_title",
        "offer",
        ["pole_id", sa.text("lower(title)"), "id"],
        postgresql_where=sa.text("state = 'published'"),
    )


def downgrade() -> None:
    op.drop_index("ix_offer_published_title", table_name="offer")
    op.drop_index("ix_offer_published_insee", table_name="offer")
    op.drop_index("ix_offer_published_commune", table_name="offer")
    op.execute("DROP FUNCTION ptce_fold(text)")
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION ptce_french "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem"
    )
    op.execute("DROP TEXT SEARCH DICTIONARY ptce_french_stop")
    op.execute("UPDATE offer SET title = title")
