"""Foundation: users, reports (PostGIS), triage history, council areas, the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Copied, not imported: a migration must keep meaning what it meant when it landed.
CATEGORIES = ("harassment", "spiking", "unsafe_route")
MODES = ("bus", "night_bus", "tube", "rail", "overground", "dlr", "tram", "taxi", "walking", "cycling", "other")
STATUSES = ("received", "reviewing", "actioned", "closed", "rejected")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "users",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("firebase_uid", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )

    op.create_table(
        "reports",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("author_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("subcategory", sa.String(32)),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("accuracy_m", sa.Float),
        sa.Column("route", Geometry("LINESTRING", srid=4326, spatial_index=False)),
        sa.Column("mode", sa.String(32)),
        sa.Column("line", sa.String(100)),
        sa.Column("station", sa.String(100)),
        sa.Column("factors", postgresql.ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("description", sa.Text),
        sa.Column("status", sa.String(16), nullable=False, server_default="received"),
        sa.Column("status_note", sa.Text),
        sa.Column("idempotency_key", postgresql.UUID(as_uuid=True)),
        sa.Column("request_hash", postgresql.BYTEA),
        # clock_timestamp(), not now(): reports stored in one transaction (a batch) keep their order.
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.CheckConstraint(_in("category", CATEGORIES), name="ck_reports_category"),
        sa.CheckConstraint(f"mode IS NULL OR {_in('mode', MODES)}", name="ck_reports_mode"),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_reports_status"),
        sa.CheckConstraint("category <> 'unsafe_route' OR route IS NOT NULL", name="ck_reports_route_for_unsafe_route"),
        sa.CheckConstraint("ST_IsValid(location) AND NOT ST_IsEmpty(location)", name="ck_reports_location_valid"),
        # The idempotency guarantee: concurrent replays of one key serialise on this index.
        sa.UniqueConstraint("author_id", "idempotency_key", name="uq_reports_author_idempotency_key"),
    )
    # Spatial filters (bbox, council areas, tiles) and the columns heatmaps and exports filter on.
    op.create_index("ix_reports_location", "reports", ["location"], postgresql_using="gist")
    op.create_index("ix_reports_route", "reports", ["route"], postgresql_using="gist",
                    postgresql_where=sa.text("route IS NOT NULL"))
    op.create_index("ix_reports_category_occurred_at", "reports", ["category", "occurred_at"])
    op.create_index("ix_reports_occurred_at", "reports", ["occurred_at"])
    op.create_index("ix_reports_mode_occurred_at", "reports", ["mode", "occurred_at"])
    # Triage lists and keyset pagination (newest first), and "my reports".
    op.create_index("ix_reports_created_at_id", "reports", ["created_at", "id"])
    op.create_index("ix_reports_status_created_at", "reports", ["status", "created_at"])
    op.create_index("ix_reports_author_created_at", "reports", ["author_id", "created_at"])

    op.create_table(
        "report_status_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("report_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(_in("status", STATUSES), name="ck_report_status_changes_status"),
    )
    op.create_index("ix_report_status_changes_report_id", "report_status_changes", ["report_id", "changed_at"])

    op.create_table(
        "council_areas",
        sa.Column("code", sa.String(9), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
    )
    op.create_index("ix_council_areas_geom", "council_areas", ["geom"], postgresql_using="gist")

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("enqueued_at", sa.DateTime(timezone=True)),
        sa.Column("done_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(1000)),
    )
    # The sweep looks only at pending tasks: a small partial index however long the history.
    op.create_index("ix_outbox_pending", "outbox", ["id"], postgresql_where=sa.text("done_at IS NULL"))
    op.create_index("ix_outbox_done_at", "outbox", ["done_at"], postgresql_where=sa.text("done_at IS NOT NULL"))


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
