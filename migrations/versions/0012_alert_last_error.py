"""An alert whose fan-out gave up is ``failed``, with the error that ended it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("last_error", sa.String(1000), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
