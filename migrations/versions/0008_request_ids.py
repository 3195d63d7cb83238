"""Outbox tasks carry the id of the request that created them, so logs follow a report into its jobs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("request_id", sa.String(64)))
