"""Clusters: several reports of one category close in space and time, each with exactly one alert.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A cluster alert goes to the safety team's devices and to opted-in commuters inside its radius.
    op.add_column("alerts", sa.Column("kind", sa.String(16), nullable=False, server_default="manual"))
    op.add_column("alerts", sa.Column("category", sa.String(32)))
    op.create_check_constraint("ck_alerts_kind", "alerts", "kind IN ('manual', 'cluster')")

    op.create_table(
        "clusters",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("centre", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("radius_m", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_count", sa.Integer, nullable=False),
        sa.Column("alert_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("alerts.id", ondelete="SET NULL")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
    )
    op.execute("CREATE INDEX ix_clusters_centre_geog ON clusters USING gist ((centre::geography))")
    # Which reports make a cluster: its count is of distinct reports, however often they are checked.
    op.create_table(
        "cluster_reports",
        sa.Column("cluster_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("clusters.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("report_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("reports.id", ondelete="CASCADE"),
                  nullable=False),
        sa.PrimaryKeyConstraint("cluster_id", "report_id", name="cluster_reports_pkey"),
    )
    op.create_index("ix_clusters_category_last_at", "clusters", ["category", "last_at"])


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
