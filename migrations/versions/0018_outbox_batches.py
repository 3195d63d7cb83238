"""Outbox tasks run in batches: which task's job carries a task.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

- ``outbox.batch_id``: the relay enqueues up to a batch of pending tasks of one kind (a handler
  registered with ``batch=``) as one RQ job, named after the batch's first task; each other task of
  the batch records that first task's id here, so that the sweep knows which job holds it. NULL: the
  task's job is its own (``outbox-<id>``).

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE outbox ADD COLUMN batch_id bigint")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward only")
