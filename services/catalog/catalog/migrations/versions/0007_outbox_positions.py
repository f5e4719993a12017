"""The partition and offset the broker gave each sent event, so that the outbox relay
notices a broker that lost its data and sends again what its readers had not confirmed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from shared.migrations import add_outbox_positions, drop_outbox_positions

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_positions()


def downgrade() -> None:
    drop_outbox_positions()
