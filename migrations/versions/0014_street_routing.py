"""Real streets: street lighting on each segment, the network's provenance, and a routable graph.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

- ``street_segments.lit``: ``yes``, ``no`` or NULL (not known), as tagged in the source.
- ``street_networks``: the file the loaded network came from and its SHA-256, so that loading the
  same file again (every ``make run``) is skipped; and its extent (the squares of a ~300 m grid that
  hold a segment), which decides whether an export's area is ranked by street or by grid cell.
- ``street_edges`` and ``street_vertices``: the network noded for pgRouting (``backend/routes``):
  every segment cut at each vertex it shares with another segment (coordinates snapped to a small
  grid first: the sources were not all split at junctions), with source and target vertices, costs
  in metres, and the segment's ``lit`` copied (the route's edge query reads no other table); the
  line also in Web Mercator (``geom_m``), where "within 25 m of a report" is a planar test. Rebuilt whenever the network is loaded.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting")
    op.execute("ALTER TABLE street_segments ADD COLUMN lit text CHECK (lit IN ('yes', 'no'))")
    op.execute("""
        CREATE TABLE street_networks (
            id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            source text NOT NULL,
            sha256 text NOT NULL,
            segments integer NOT NULL,
            edges integer NOT NULL,
            extent geometry(MultiPolygon, 4326) NOT NULL,
            loaded_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE street_vertices (
            id bigint PRIMARY KEY,
            geom geometry(Point, 4326) NOT NULL
        )""")
    op.execute("CREATE INDEX ix_street_vertices_geom ON street_vertices USING gist (geom)")
    op.execute("""
        CREATE TABLE street_edges (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            segment_id bigint NOT NULL REFERENCES street_segments (id) ON DELETE CASCADE,
            source bigint NOT NULL,
            target bigint NOT NULL,
            length_m double precision NOT NULL,
            lit text,
            geom geometry(LineString, 4326) NOT NULL,
            geom_m geometry(LineString, 3857) NOT NULL
        )""")
    op.execute("CREATE INDEX ix_street_edges_geom ON street_edges USING gist (geom)")
    op.execute("CREATE INDEX ix_street_edges_geog ON street_edges USING gist ((geom::geography))")
    op.execute("CREATE INDEX ix_street_edges_geom_m ON street_edges USING gist (geom_m)")
    op.execute("CREATE INDEX ix_street_edges_segment ON street_edges (segment_id)")


def downgrade() -> None:
    raise NotImplementedError("migrations are forward only")
