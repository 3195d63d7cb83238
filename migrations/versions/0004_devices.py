"""Devices: FCM registration tokens, with a coarse location, an alert radius and category opt-ins.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# Kept in step with backend/devices/models.py (INTEREST_BOX): the query must repeat the expression.
INTEREST_BOX = ("ST_Expand(location, radius_m / 110000.0 / greatest(0.05, cos(radians(ST_Y(location)))), "
                "radius_m / 110000.0)")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        # One row per FCM token: registering a token again moves it to the caller and updates it.
        sa.Column("token", sa.String(4096), nullable=False, unique=True),
        sa.Column("platform", sa.String(16), nullable=False),
        # Who the device belongs to when it registered: staff devices get the safety team's alerts.
        sa.Column("audience", sa.String(16), nullable=False),
        # Stored coarse (snapped to a grid of about 100 m), never as sent.
        sa.Column("location", Geometry("POINT", srid=4326, spatial_index=False)),
        sa.Column("radius_m", sa.Integer, nullable=False, server_default="1000"),
        sa.Column("categories", postgresql.ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.CheckConstraint("platform IN ('android', 'ios', 'web')", name="ck_devices_platform"),
        sa.CheckConstraint("audience IN ('commuter', 'staff')", name="ck_devices_audience"),
        sa.CheckConstraint("radius_m BETWEEN 100 AND 5000", name="ck_devices_radius_m"),
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])
    # Devices inside an area (cluster alerts: ST_DWithin on geography with one radius).
    op.execute("CREATE INDEX ix_devices_location_geog ON devices USING gist ((location::geography)) "
               "WHERE location IS NOT NULL")
    # Manual alerts reach devices whose own radius_m reaches the alert's area: each device's interest box
    # (its location widened by its radius, in degrees, a little generously) is indexed, so that the index
    # finds only devices that can be reached, whatever their radius (backend/alerts/service.py).
    op.execute(f"CREATE INDEX ix_devices_interest ON devices USING gist (({INTEREST_BOX})) WHERE location IS NOT NULL")
    op.create_index("ix_devices_audience", "devices", ["audience"], postgresql_where=sa.text("audience = 'staff'"))


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
