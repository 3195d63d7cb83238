"""Alerts: geofenced pushes, with a delivery record per device so that a retried fan-out never sends
twice to a device that already got the message.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("title", sa.String(100), nullable=False),
        sa.Column("body", sa.String(1000), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        # A Polygon, or a Point with radius_m (a circle, or a safe hub's surroundings).
        sa.Column("area", Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=False),
        sa.Column("radius_m", sa.Integer),
        sa.Column("safe_hub_id", postgresql.UUID(as_uuid=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("targeted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pruned", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.CheckConstraint("severity IN ('info', 'warning', 'urgent')", name="ck_alerts_severity"),
        sa.CheckConstraint("status IN ('queued', 'sending', 'sent', 'failed')", name="ck_alerts_status"),
        sa.CheckConstraint("GeometryType(area) = 'POLYGON' OR (GeometryType(area) = 'POINT' AND radius_m > 0)",
                           name="ck_alerts_area"),
    )
    # Active alerts near a point (GET /alerts/nearby).
    op.execute("CREATE INDEX ix_alerts_area_geog ON alerts USING gist ((area::geography))")
    op.create_index("ix_alerts_expires_at", "alerts", ["expires_at"])

    op.create_table(
        "alert_deliveries",
        sa.Column("alert_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("alerts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("device_id", postgresql.UUID(as_uuid=True), nullable=False),
        # pending -> sending -> sent | failed | pruned (dead token, device removed) | retry (transient)
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(300)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.PrimaryKeyConstraint("alert_id", "device_id", name="alert_deliveries_pkey"),
        sa.CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed', 'pruned', 'retry')",
                           name="ck_alert_deliveries_status"),
    )
    op.create_index("ix_alert_deliveries_unsent", "alert_deliveries", ["alert_id", "status"],
                    postgresql_where=sa.text("status IN ('pending', 'sending', 'retry')"))


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
