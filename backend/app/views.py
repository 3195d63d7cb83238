"""Serve the commuter's web app: its page, service worker, manifest and static files, the transport
lines it offers, and, in development only, an anonymous sign-in with an unsigned emulator token (what
Firebase's anonymous sign-in gives in production). Everything else the app does goes through the
public API (/api/v1), as a phone app would."""

from __future__ import annotations

import json
import re
import uuid
from functools import cache
from pathlib import Path

from flask import Blueprint, abort, jsonify, redirect, render_template, request, send_from_directory, url_for

from backend.auth import MAX_TOKEN_LIFETIME_S
from backend.config import Settings, current_settings
from backend.devtokens import emulator_token

bp = Blueprint("commuter_app", __name__, url_prefix="/app", static_folder="static", template_folder="templates")

STATIC_DIR = Path(__file__).resolve().parent / "static"
DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
# Where Quick exit goes: a busy, neutral site that says nothing about the app.
NEUTRAL_SITE = "https://www.bbc.co.uk/weather"
ANONYMOUS_UID = re.compile(r"^anon-[0-9a-f]{32}$")
DEV_TOKEN_LIFETIME_S = MAX_TOKEN_LIFETIME_S  # as long as Firebase's own, and no longer (backend/auth.py)


def dev_sign_in_allowed() -> bool:
    settings = current_settings()
    return not settings.is_production and bool(settings.firebase_auth_emulator_host)


def app_config() -> dict:
    settings = current_settings()
    return {
        "api": "/api/v1",
        "basemapStyleUrl": settings.basemap_style_url,
        "devSignIn": dev_sign_in_allowed(),
        "neutralSite": NEUTRAL_SITE,
        "firebase": None if not settings.firebase_web_api_key else {
            "apiKey": settings.firebase_web_api_key,
            "authDomain": settings.firebase_auth_domain or f"{settings.firebase_project_id}.firebaseapp.com",
            "projectId": settings.firebase_project_id,
            **({"appId": settings.firebase_web_app_id} if settings.firebase_web_app_id else {}),
            **({"messagingSenderId": settings.firebase_messaging_sender_id} if settings.firebase_messaging_sender_id else {}),
        },
        "vapidKey": settings.firebase_vapid_key if push_configured(settings) else None,
    }


def push_configured(settings: Settings) -> bool:
    return all((settings.firebase_web_api_key, settings.firebase_web_app_id, settings.firebase_messaging_sender_id,
                settings.firebase_vapid_key))


@bp.get("")
def root():
    return redirect(url_for("commuter_app.page"))


@bp.get("/")
def page():
    # The service worker keeps a copy for offline starts; no-cache makes the browser revalidate it.
    return render_template("app.html", config=app_config()), 200, {"Cache-Control": "no-cache"}


@bp.get("/sw.js")
def service_worker():
    """At /app/ so that its scope is the app; revalidated on every check so an update is seen at once."""
    response = send_from_directory(STATIC_DIR, "sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/manifest.webmanifest")
def manifest():
    body = json.loads((STATIC_DIR / "manifest.webmanifest").read_text())
    return jsonify(body), 200, {"Content-Type": "application/manifest+json", "Cache-Control": "no-cache"}


@bp.get("/data/lines.json")
def lines():
    """The transport lines a report may name, from data/london_tube_lines.geojson (data/SOURCES.md)."""
    return jsonify(lines=_line_names()), 200, {"Cache-Control": "public, max-age=86400"}


@cache
def _line_names() -> list[str]:
    features = json.loads((DATA_DIR / "london_tube_lines.geojson").read_text())["features"]
    return sorted({f["properties"]["line"] for f in features if f["properties"].get("line")})


@bp.get("/data/stations.json")
def stations():
    """The stations "A safer way" can walk to: name and place, from data/london_stations.geojson
    (TfL, data/SOURCES.md), one per name, sorted by name."""
    return jsonify(stations=_stations()), 200, {"Cache-Control": "public, max-age=86400"}


@cache
def _stations() -> list[dict]:
    features = json.loads((DATA_DIR / "london_stations.geojson").read_text())["features"]
    by_name: dict[str, dict] = {}
    for f in features:
        name = f["properties"].get("name")
        if name and name not in by_name:
            lon, lat = f["geometry"]["coordinates"]
            by_name[name] = {"name": name, "lon": lon, "lat": lat}
    return [by_name[name] for name in sorted(by_name)]


@bp.post("/dev-sign-in")
def dev_sign_in():
    """Development only: an anonymous commuter's unsigned token, as Firebase's emulator would give.

    The app keeps its uid and asks again with it when the token expires, so a phone stays one user.
    """
    if not dev_sign_in_allowed():
        abort(404)
    uid = (request.get_json(silent=True) or {}).get("uid")
    if uid is None:
        uid = f"anon-{uuid.uuid4().hex}"
    elif not (isinstance(uid, str) and ANONYMOUS_UID.match(uid)):
        return jsonify(code=422, status="Unprocessable Entity", message="Invalid input: uid.",
                       errors={"uid": ["an anonymous uid this endpoint gave: anon- and 32 hex digits"]}), 422
    token = emulator_token(uid, project_id=current_settings().firebase_project_id, lifetime_s=DEV_TOKEN_LIFETIME_S)
    return jsonify(token=token, uid=uid, expires_in=DEV_TOKEN_LIFETIME_S)
