"""Partner webhooks: subscriptions (target, events, area, categories, precision, secret) and the
deliveries made to them (the signed body, attempts, the next try). Reporter updates: triage's public
note (beside the internal one), and each device's language and whether it wants updates. Open311:
the API keys staff issue to councils (kept as SHA-256 digests).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reports", sa.Column("public_note", sa.Text))
    op.add_column("report_status_changes", sa.Column("public_note", sa.Text))
    op.add_column("devices", sa.Column("locale", sa.String(35), nullable=False, server_default="en"))
    op.add_column("devices", sa.Column("updates", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("description", sa.String(200)),
        sa.Column("events", ARRAY(sa.String(32)), nullable=False),
        sa.Column("council", sa.String(9)),
        sa.Column("area", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("categories", ARRAY(sa.String(32)), nullable=False, server_default="{}"),
        sa.Column("precision", sa.String(8), nullable=False, server_default="coarse"),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.String(300)),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("secret_rotated_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("precision IN ('coarse', 'exact')", name="ck_webhook_subscriptions_precision"),
        sa.CheckConstraint("cardinality(events) > 0", name="ck_webhook_subscriptions_events"),
    )
    op.create_index("ix_webhook_subscriptions_area", "webhook_subscriptions", ["area"], postgresql_using="gist",
                    postgresql_where=sa.text("active"))
    op.create_table(
        "webhook_deliveries",
        # The delivery's id is its webhook-id ("msg_" + hex): every attempt and a replay keep it.
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("subscription_id", UUID(as_uuid=True),
                  sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()")),
        # Retries stop RETRY_FOR after this (the first try, or the last replay).
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.text("clock_timestamp()")),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="ck_webhook_deliveries_status"),
    )
    op.create_index("ix_webhook_deliveries_due", "webhook_deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table(
        "council_api_keys",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("council", sa.String(9), nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("key_sha256", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "created_at"])
