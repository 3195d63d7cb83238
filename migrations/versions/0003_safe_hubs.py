"""Safe hubs: places to go, with their opening hours.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KINDS = ("staffed_station", "safe_haven", "police", "hospital", "pharmacy", "venue")


def upgrade() -> None:
    op.create_table(
        "safe_hubs",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("location", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("address", sa.String(300)),
        sa.Column("phone", sa.String(40)),
        # "24/7" or {"mon": [["HH:MM", "HH:MM"], ...], ...}, validated by backend/hubs/opening_hours.py
        sa.Column("opening_hours", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name="ck_safe_hubs_kind"),
    )
    # Nearest-hub queries order by geography distance (<->): a KNN scan of this index.
    op.execute("CREATE INDEX ix_safe_hubs_location_geog ON safe_hubs USING gist ((location::geography))")
    op.create_index("ix_safe_hubs_location", "safe_hubs", ["location"], postgresql_using="gist")


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
