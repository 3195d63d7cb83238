"""The heatmap rebuild builds its tables aside (schema ``heatmap_next``) and swaps them in (the
old ones wait in ``heatmap_old`` to be dropped); removals of
reports are noted in ``heatmap_removals`` so that a rebuild can tell that its snapshot went stale.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS heatmap_next")
    op.execute("CREATE SCHEMA IF NOT EXISTS heatmap_old")
    op.create_table(
        "heatmap_removals",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
