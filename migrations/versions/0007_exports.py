"""Council lighting exports: street segments (optional input), export jobs, an audit log, and where
the sun is.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21

Forward only: once landed, a migration is never edited; a change is a new migration.
"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A street network (OS Open Roads, an OpenStreetMap extract, ...) loaded by `safetravel streets
    # load`. Reports are matched to segments by distance in metres: geography indexes on the line and
    # on its midpoint (a route counts on the segments whose midpoint it passes near).
    op.create_table(
        "street_segments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source_id", sa.String(100)),
        sa.Column("name", sa.String(200)),
        sa.Column("road_class", sa.String(100)),
        sa.Column("geom", Geometry("LINESTRING", srid=4326, spatial_index=False), nullable=False),
        sa.Column("midpoint", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
        sa.Column("length_m", sa.Float, nullable=False),
    )
    op.execute("CREATE INDEX ix_street_segments_geog ON street_segments USING gist ((geom::geography))")
    op.execute("CREATE INDEX ix_street_segments_midpoint_geog ON street_segments USING gist ((midpoint::geography))")

    op.create_table(
        "exports",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requester_role", sa.String(16), nullable=False),
        sa.Column("council", sa.String(9)),
        sa.Column("area", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.Column("period_from", sa.Date, nullable=False),
        sa.Column("period_to", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("rows", sa.Integer),
        sa.Column("places", sa.String(16)),
        sa.Column("unmatched_reports", sa.Integer),
        sa.Column("file_name", sa.String(200)),
        sa.Column("file_bytes", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("kind IN ('lighting')", name="ck_exports_kind"),
        sa.CheckConstraint("format IN ('geojson', 'csv', 'gpkg')", name="ck_exports_format"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_exports_status"),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="ck_exports_progress"),
    )
    op.create_index("ix_exports_requested_by_created_at", "exports", ["requested_by", "created_at"])
    op.create_index("ix_exports_expires_at", "exports", ["expires_at"], postgresql_where=sa.text("deleted_at IS NULL"))

    # Who did what with sensitive data, and when: kept when the thing itself is gone (an expired file).
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")),
        sa.Column("actor_uid", sa.String(128), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(64)),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor_uid", "at"])

    # Whether the sun is down (its centre more than 0.833 degrees below the horizon: the usual
    # sunset/sunrise, with refraction and the sun's radius) at a moment and place. NOAA's solar
    # position equations (after Meeus), good to about a minute for the years 1800-2100, checked
    # against the astral library in the tests. Pure arithmetic on the epoch, hence IMMUTABLE;
    # PL/pgSQL because its variables compute each term once (about 2 us a call, where one inlined
    # SQL expression repeating the terms took 60 us).
    op.execute("""
        CREATE FUNCTION sun_is_down(at timestamptz, lon double precision, lat double precision) RETURNS boolean
        LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT AS $$
        DECLARE
            -- Julian centuries since J2000.0
            c double precision := (extract(epoch FROM at)::double precision / 86400.0 - 10957.5) / 36525.0;
            mean_long double precision := 280.46646 + c * (36000.76983 + c * 0.0003032);
            mean_anomaly double precision := 357.52911 + c * (35999.05029 - 0.0001537 * c);
            eccentricity double precision := 0.016708634 - c * (0.000042037 + 0.0000001267 * c);
            omega double precision := 125.04 - 1934.136 * c;
            apparent_long double precision := mean_long
                + sind(mean_anomaly) * (1.914602 - c * (0.004817 + 0.000014 * c))
                + sind(2 * mean_anomaly) * (0.019993 - 0.000101 * c) + sind(3 * mean_anomaly) * 0.000289
                - 0.00569 - 0.00478 * sind(omega);
            obliquity double precision := 23 + (26 + (21.448 - c * (46.815 + c * (0.00059 - c * 0.001813))) / 60) / 60
                + 0.00256 * cosd(omega);
            declination double precision := asind(sind(obliquity) * sind(apparent_long));
            y double precision := tand(obliquity / 2) ^ 2;
            equation_of_time_min double precision := 4 * degrees(
                y * sind(2 * mean_long) - 2 * eccentricity * sind(mean_anomaly)
                + 4 * eccentricity * y * sind(mean_anomaly) * cosd(2 * mean_long)
                - 0.5 * y * y * sind(4 * mean_long) - 1.25 * eccentricity * eccentricity * sind(2 * mean_anomaly));
            utc_min double precision := mod(extract(epoch FROM at), 86400)::double precision / 60.0;
            hour_angle double precision := (utc_min + equation_of_time_min + 4 * lon) / 4 - 180;
        BEGIN
            RETURN sind(lat) * sind(declination) + cosd(lat) * cosd(declination) * cosd(hour_angle) < cosd(90.833);
        END
        $$;
    """)
