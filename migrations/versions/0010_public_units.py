"""The public heatmap's published units: who contributed how many reports to each (public cell, local
ISO week, category), for reports filed while their week could still change. And the councils'
heatmap: counts of what lies inside each council's area (a location inside it, the part of a route
inside it), kept like the city's (live and retained counts).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

The tables start empty: run `safetravel heatmap rebuild` once after upgrading (docs/operations.md);
until then the public heatmap and the councils' heatmaps show no cells. Erasing a person removes their rows (cascade), so a
unit loses their contribution, reporters and reports alike.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
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
    # A council export may leave out places with fewer distinct reporters (files a council publishes).
    op.add_column("exports", sa.Column("min_reporters", sa.SmallInteger, nullable=False, server_default="1"))
    op.create_check_constraint("ck_exports_min_reporters", "exports", "min_reporters >= 1")
    for table in ("heatmap_council_cells", "heatmap_council_retained"):
        op.create_table(
            table,
            sa.Column("council", sa.String(9), nullable=False),  # council_areas.code
            sa.Column("level", sa.SmallInteger, nullable=False),
            sa.Column("q", sa.BigInteger, nullable=False),
            sa.Column("day", sa.Date, nullable=False),
            sa.Column("hour", sa.SmallInteger, nullable=False),
            sa.Column("category", sa.String(32), nullable=False),
            sa.Column("mode", sa.String(32), nullable=False),
            sa.Column("count", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("council", "level", "q", "day", "hour", "category", "mode", name=f"{table}_pkey"),
        )


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
