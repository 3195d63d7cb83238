"""The street edges each report lies near, so that a safer route's penalties are a join.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

- ``report_edges``: one row per (street edge, report) where the report's route, or its place when it
  has none, passes within 25 m of the edge (backend/streets/nearby.py), with the report's
  ``occurred_at`` (never changed once stored), so that a route reads only the recent ones. Written by the streets
  domain's ``report.created`` handler and again whenever the graph is rebuilt; a report's rows go
  with it (erasure, the retention purge) and an edge's with the graph (``ON DELETE CASCADE``).
  Filled here for the reports and graph already loaded.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE report_edges (
            edge_id bigint NOT NULL REFERENCES street_edges (id) ON DELETE CASCADE,
            report_id uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
            occurred_at timestamptz NOT NULL,
            PRIMARY KEY (edge_id, report_id)
        )""")
    op.execute("CREATE INDEX ix_report_edges_report ON report_edges (report_id)")
    op.execute("CREATE INDEX ix_report_edges_edge_occurred_at ON report_edges (edge_id, occurred_at) INCLUDE (report_id)")
    op.execute("""
        INSERT INTO report_edges (report_id, occurred_at, edge_id)
        SELECT DISTINCT p.id, p.occurred_at, e.id
        FROM (
            SELECT r.id, r.occurred_at, ST_Subdivide(ST_Transform(coalesce(r.route, r.location), 3857), 8) AS g,
                   25 / cos(radians(ST_Y(r.location))) AS near_m
            FROM reports r
        ) AS p
        JOIN street_edges e ON ST_DWithin(e.geom_m, p.g, p.near_m)""")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward only")
