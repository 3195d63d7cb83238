"""Cluster alerts wait for a person before they reach commuters: each alert says where its push to
the public stands (``public_push``), and who confirmed a cluster alert, when. A device remembers the
account it was registered on before its token moved (``previous_user_id``), so that account's app can
be told why the device is no longer theirs.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

``public_push``: ``awaiting_confirmation`` (a cluster alert: staff devices only, until a staff member
confirms it), ``due`` (commuters are to be targeted by the next fan-out), ``done`` (they were).
Alerts already sent have had their fan-out, so they are ``done``; the others are ``due``, as before.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("public_push", sa.String(32), nullable=False, server_default="due"))
    op.add_column("alerts", sa.Column("confirmed_by", sa.String(128)))
    op.add_column("alerts", sa.Column("confirmed_at", sa.DateTime(timezone=True)))
    op.execute("UPDATE alerts SET public_push = 'done' WHERE status IN ('sent', 'failed')")
    op.create_check_constraint("ck_alerts_public_push", "alerts",
                               "public_push IN ('awaiting_confirmation', 'due', 'done')")
    # The dashboard's list of cluster alerts waiting for a person.
    op.create_index("ix_alerts_awaiting_confirmation", "alerts", ["created_at"],
                    postgresql_where=sa.text("public_push = 'awaiting_confirmation'"))
    op.add_column("devices", sa.Column("previous_user_id", sa.UUID(),
                                       sa.ForeignKey("users.id", ondelete="SET NULL", name="fk_devices_previous_user_id")))
