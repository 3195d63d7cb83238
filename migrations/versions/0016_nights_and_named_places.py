"""Nights as people live them, local days on timestamps, and the stations hotspots are named by.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02

- ``night_day(day, hour, after_midnight)``: the day a local (day, hour) belongs to under an hours
  filter. An hours range that wraps midnight (``22-4``) belongs to the day it starts on, so its
  hours after midnight (``after_midnight``: 0, 1, 2, 3) count with the day before: 01:30 on a Sunday
  is Saturday night. Every heatmap query (cells, tiles, hotspots) filters days and weekdays through
  it (backend/heatmap/queries.py); one expression, so the planner inlines it.
- ``local_midnight(day, tz)``: when a local day starts, as a timestamp: filters on a timestamp
  column (``GET /reports``' ``from`` and ``to``) take local days, both included, as the heatmaps
  and exports do (``local_day``, 0009), and still use the column's index.
- ``stations``: London's rail, Underground, DLR, Overground and Elizabeth line stations, copied from
  data/london_stations.geojson (TfL open data, data/SOURCES.md), with a spatial index: a hotspot is
  named by its nearest station. Reference data: loaded here, not by a command.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import json
from pathlib import Path

from alembic import op
from sqlalchemy import text

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STATIONS = Path(__file__).resolve().parents[2] / "data" / "london_stations.geojson"


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION night_day(day date, hour smallint, after_midnight smallint[]) RETURNS date
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN CASE WHEN hour = ANY(after_midnight) THEN day - 1 ELSE day END;

        CREATE FUNCTION local_midnight(day date, tz text) RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN day::timestamp AT TIME ZONE tz;
    """)
    op.execute("""
        CREATE TABLE stations (
            id text PRIMARY KEY,
            name text NOT NULL,
            lines text[] NOT NULL,
            geom geometry(Point, 4326) NOT NULL
        )
    """)
    op.execute("CREATE INDEX ix_stations_geom ON stations USING gist (geom)")
    features = json.loads(STATIONS.read_text())["features"]
    op.get_bind().execute(
        text("INSERT INTO stations (id, name, lines, geom) "
             "VALUES (:id, :name, :lines, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))"),
        [{"id": f["properties"]["id"], "name": f["properties"]["name"], "lines": f["properties"].get("lines") or [],
          "lon": f["geometry"]["coordinates"][0], "lat": f["geometry"]["coordinates"][1]} for f in features],
    )


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
