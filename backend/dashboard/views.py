"""Serve the dashboard page, its static files, the map's outline data and, in development only, a
sign-in as a chosen role (unsigned emulator tokens; production refuses them)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, jsonify, redirect, render_template, request, send_from_directory, url_for

from backend.auth import COUNCIL, GSS_CODE, MAX_TOKEN_LIFETIME_S, ROLES
from backend.config import current_settings
from backend.devtokens import emulator_token

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", static_folder="static", template_folder="templates")

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "data"
MAP_DATA = {"boroughs": "london_boroughs.geojson", "underground": "london_tube_lines.geojson",
            "stations": "london_stations.geojson"}


def dev_sign_in_allowed() -> bool:
    settings = current_settings()
    return not settings.is_production and bool(settings.firebase_auth_emulator_host)


@bp.get("")
def root():
    return redirect(url_for("dashboard.page"))


@bp.get("/")
def page():
    settings = current_settings()
    config = {
        "basemapStyleUrl": settings.basemap_style_url,
        "devSignIn": dev_sign_in_allowed(),
        "firebase": None if not settings.firebase_web_api_key else {
            "apiKey": settings.firebase_web_api_key,
            "authDomain": settings.firebase_auth_domain or f"{settings.firebase_project_id}.firebaseapp.com",
            "projectId": settings.firebase_project_id,
        },
    }
    response = render_template("dashboard.html", config=config)
    return response, 200, {"Cache-Control": "no-store"}


@bp.get("/data/<name>.geojson")
def map_data(name: str):
    """Borough outlines, Underground/DLR lines and TfL's stations (data/, with their attributions in
    data/SOURCES.md): the map's outlines, its built-in base layer and the alert form's station pickers."""
    if name not in MAP_DATA:
        abort(404)
    return send_from_directory(DATA_DIR, MAP_DATA[name], mimetype="application/geo+json", max_age=86400)


@bp.post("/dev-sign-in")
def dev_sign_in():
    """Development only: an unsigned token for a chosen role, as the Firebase emulator would give."""
    if not dev_sign_in_allowed():
        abort(404)
    body = request.get_json(silent=True) or {}
    role, council = body.get("role"), body.get("council")
    if role not in ROLES:
        return jsonify(code=422, status="Unprocessable Entity", message="Pick a role.",
                       errors={"role": [f"one of {', '.join(ROLES)}"]}), 422
    if role == COUNCIL and not (isinstance(council, str) and GSS_CODE.match(council)):
        return jsonify(code=422, status="Unprocessable Entity", message="Pick a council.",
                       errors={"council": ["a GSS code such as E09000028"]}), 422
    uid = f"dev-{role}" + (f"-{council}" if role == COUNCIL else "")
    token = emulator_token(uid, project_id=current_settings().firebase_project_id,
                           role=None if role == "commuter" else role, council=council if role == COUNCIL else None,
                           lifetime_s=MAX_TOKEN_LIFETIME_S)
    return jsonify(token=token, uid=uid, role=role, council=council if role == COUNCIL else None)
