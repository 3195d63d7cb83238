"""The interactive API reference at /api/docs: Swagger UI from the installed swagger-ui-bundle package
(no CDN), started by a script file of ours rather than the inline script flask-smorest's page has, so
that the page runs under a Content-Security-Policy without inline script (backend/security.py)."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, render_template, send_from_directory, url_for

bp = Blueprint("apidocs", __name__, url_prefix="/api/docs", static_folder="static", static_url_path="/own",
               template_folder="templates")


@bp.get("")
def page():
    return render_template("api_docs.html", config={"url": url_for("api-docs.openapi_json")})


@bp.get("/static/<path:filename>")
def swagger_ui_static(filename: str):
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86400)
