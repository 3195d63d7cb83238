"""Each street edge's two ends in planar metres, so that a route's search area is float arithmetic.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02

- ``street_edges.source_x``, ``source_y``, ``target_x``, ``target_y``: the edge's source and target
  vertex in the British National Grid (EPSG:27700, metres), written when the graph is built
  (backend/streets/graph.py). The shortest route is sought first among the edges both of whose ends
  lie in an ellipse around the two places (backend/routes/service.py): the sum of two planar
  distances per edge, computed from these plain columns inside the box's index scan, where PostGIS
  per row was 20-30 times slower. Filled here for the graph already loaded.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("source_x", "source_y", "target_x", "target_y"):
        op.execute(f"ALTER TABLE street_edges ADD COLUMN {column} double precision")
    op.execute("""
        UPDATE street_edges e
        SET source_x = ST_X(ST_Transform(vs.geom, 27700)), source_y = ST_Y(ST_Transform(vs.geom, 27700)),
            target_x = ST_X(ST_Transform(vt.geom, 27700)), target_y = ST_Y(ST_Transform(vt.geom, 27700))
        FROM street_vertices vs, street_vertices vt
        WHERE vs.id = e.source AND vt.id = e.target""")
    for column in ("source_x", "source_y", "target_x", "target_y"):
        op.execute(f"ALTER TABLE street_edges ALTER COLUMN {column} SET NOT NULL")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward only")
