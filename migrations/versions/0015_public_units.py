"""The public heatmap's published units: who contributed how many reports to each (public cell, local
ISO week, category), for reports filed while their week could still change.

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-02

The table starts empty: run `safetravel heatmap rebuild` once after upgrading (docs/operations.md);
until then the public heatmap shows no cells. Erasing a person removes their rows (cascade), so a
unit loses their contribution, reporters and reports alike.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heatmap_public_units",
        sa.Column("q", sa.BigInteger, nullable=False),  # a public-level cell
        sa.Column("week", sa.Date, nullable=False),  # the Monday of the local ISO week
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("author_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("reports", sa.Integer, nullable=False),
        sa.CheckConstraint("reports > 0", name="ck_heatmap_public_units_reports"),
        sa.PrimaryKeyConstraint("week", "q", "category", "author_id", name="heatmap_public_units_pkey"),
    )
    op.create_index("ix_heatmap_public_units_author_id", "heatmap_public_units", ["author_id"])


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
