"""``/healthz``: the process is up. ``/readyz``: PostgreSQL and Redis answer (503 otherwise)."""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import Schema, fields
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from backend.extensions import db, redis_conn
from backend.http import Blueprint

blp = Blueprint("health", __name__, description="Health checks (no auth)")


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class ReadySchema(HealthSchema):
    database = fields.String(metadata={"example": "ok"})
    redis = fields.String(metadata={"example": "ok"})


def check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        db.session.rollback()
        return f"unavailable: {type(exc).__name__}"


def check_redis() -> str:
    try:
        redis_conn.client.ping()
        return "ok"
    except RedisError as exc:
        return f"unavailable: {type(exc).__name__}"


@blp.route("/healthz")
class Healthz(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """The process is up"""
        return {"status": "ok"}


@blp.route("/readyz")
class Readyz(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="PostgreSQL or Redis is unreachable")
    def get(self):
        """PostgreSQL and Redis are reachable"""
        checks = {"database": check_database(), "redis": check_redis()}
        ready = all(value == "ok" for value in checks.values())
        return {"status": "ok" if ready else "unavailable", **checks}, (200 if ready else 503)
