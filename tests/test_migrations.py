"""Migrations apply to an empty database, and the models agree with them."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from backend.devserver import ensure_database
from backend.migrate import upgrade
from backend.models import Base


@pytest.fixture
def empty_database(settings):
    url = make_url(settings.database_url).set(database=f"safetravel_scratch_{uuid.uuid4().hex[:8]}")
    ensure_database(url.render_as_string(hide_password=False))
    yield url
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_migrations_apply_from_empty_and_twice_is_a_no_op(empty_database):
    url = empty_database.render_as_string(hide_password=False)
    upgrade(url)
    upgrade(url)
    engine = create_engine(url)
    inspector = inspect(engine)
    assert {"users", "reports", "report_status_changes", "council_areas", "outbox"} <= set(inspector.get_table_names())
    with engine.connect() as conn:
        columns = dict(conn.execute(text(
            "SELECT f_geometry_column, type || ',' || srid FROM geometry_columns WHERE f_table_name = 'reports'"
        )).all())
        gist = conn.scalars(text(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'reports' AND indexdef LIKE '%USING gist%'"
        )).all()
    assert columns == {"location": "POINT,4326", "route": "LINESTRING,4326"}
    assert sorted(gist) == ["ix_reports_location", "ix_reports_route"]
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("reports")}
    assert {("category", "occurred_at"), ("occurred_at",), ("mode", "occurred_at")} <= indexed
    engine.dispose()


# Expression indexes whose SQL PostgreSQL rewrites beyond what Alembic can compare to the model.
UNCOMPARABLE_INDEXES = {"ix_devices_interest"}


def _include(obj, name, type_, reflected, compare_to):
    if type_ == "index" and name in UNCOMPARABLE_INDEXES:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def test_models_match_the_migrations(app):
    from backend.extensions import db

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _include, "compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
