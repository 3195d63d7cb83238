"""Rules written once in SQL, for every query that needs them: a report's local day and hour, and a
geometry widened by a distance in metres (a device's interest box, an alert's reach).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Before this, the local day and hour were spelled out in the heatmap's queries four times and in the
lighting export twice, and the interest box was one string reused by text replacement. SQL functions
of one expression are inlined by the planner, so they cost nothing and indexes on them are matched.

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# 110 km to a degree of latitude: a little less than the real 110.6-111.7 km, so that the box is a
# little generous and never misses what lies at the exact distance (ST_DWithin then decides exactly).
METRES_PER_DEGREE_LOWER_BOUND = 110_000.0


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION local_day(at timestamptz, tz text) RETURNS date
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN (at AT TIME ZONE tz)::date;

        CREATE FUNCTION local_hour(at timestamptz, tz text) RETURNS smallint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN extract(hour FROM at AT TIME ZONE tz)::smallint;
    """)
    # Widened by the same number of degrees of longitude all round: those of the latitude nearest a
    # pole within the geometry (where a degree of longitude is shortest); beyond 87 degrees, 20 times.
    op.execute(f"""
        CREATE FUNCTION expand_by_metres(g geometry, metres double precision) RETURNS geometry
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        RETURN ST_Expand(
            g,
            metres / {METRES_PER_DEGREE_LOWER_BOUND}
                / greatest(0.05, cos(radians(greatest(abs(ST_YMin(g)), abs(ST_YMax(g)))))),
            metres / {METRES_PER_DEGREE_LOWER_BOUND});
    """)
    op.execute("CREATE INDEX ix_devices_interest_box ON devices USING gist (expand_by_metres(location, radius_m)) "
               "WHERE location IS NOT NULL")
    op.execute("DROP INDEX ix_devices_interest")


def downgrade() -> None:
    raise NotImplementedError("Migrations are forward only; restore from a backup instead.")
