"""Council exports over HTTP (docs/api.md, "Council exports")."""

from __future__ import annotations

import uuid
from typing import Any

from flask import send_file
from flask.views import MethodView
from flask_smorest import abort

from backend.auth import COUNCIL, STAFF, current_principal, requires
from backend.exports import service, writers
from backend.extensions import db
from backend.http import Blueprint
from backend.limits import limited
from schemas.exports import ExportInSchema, ExportSchema

blp = Blueprint("exports", __name__, url_prefix="/api/v1", description="Council lighting exports")
MAY_EXPORT = (*STAFF, COUNCIL)


def _visible(export_id: uuid.UUID):
    export = service.get_export(export_id, current_principal())
    if export is None:
        abort(404, message="No such export.")
    return export


@blp.route("/exports")
class Exports(MethodView):
    @requires(*MAY_EXPORT)
    @limited("exports")
    @blp.alt_response(429, description="Too many exports from this user or address (Retry-After says when to retry)")
    @blp.arguments(ExportInSchema())
    @blp.response(202, ExportSchema)
    @blp.alt_response(403, description="A council asked for another council's area, or a polygon reaching outside its own")
    def post(self, data: dict[str, Any]):
        """Request a lighting-improvement export (council: own area only; staff: any): answered 202

        Give `council` (a GSS code) or `area` (a GeoJSON Polygon), the period (`from`, `to`: local
        days, inclusive) and the `format` (`geojson`, `csv` or `gpkg`). A worker writes the file;
        follow `GET /exports/{id}` for `progress`, then fetch `download_url`. Files expire after
        EXPORT_TTL_DAYS (default 7).
        """
        try:
            export = service.request_export(current_principal(), data)
        except service.OutsideScope:
            abort(403, message="A council may export its own area only.")
        except service.UnknownCouncil:
            abort(422, errors={"council": ["no council area has this code (see GET /councils)"]})
        db.session.commit()
        return export, 202, {"Location": f"/api/v1/exports/{export.id}"}

    @requires(*MAY_EXPORT)
    @blp.response(200, ExportSchema(many=True))
    def get(self):
        """The caller's exports, newest first (staff: everyone's); the latest 50"""
        return service.list_exports(current_principal())


@blp.route("/exports/<uuid:export_id>")
class ExportById(MethodView):
    @requires(*MAY_EXPORT)
    @blp.response(200, ExportSchema)
    @blp.alt_response(404, description="No such export, or not the caller's")
    def get(self, export_id: uuid.UUID):
        """An export's `status` (queued, running, done, failed), `progress`, `rows` and `download_url`"""
        return _visible(export_id)


@blp.route("/exports/<uuid:export_id>/download")
class ExportDownload(MethodView):
    @requires(*MAY_EXPORT)
    @blp.response(200, description="The file: GeoJSON, CSV or GeoPackage",
                  content_type="application/octet-stream")
    @blp.alt_response(404, description="No such export, or not the caller's")
    @blp.alt_response(409, description="Not ready yet (Retry-After says when to look again)")
    @blp.alt_response(410, description="The file has expired; request the export again")
    def get(self, export_id: uuid.UUID):
        """Download an export's file (recorded in the audit log)"""
        export = _visible(export_id)
        if export.deleted_at is not None:
            abort(410, message="This export's file has expired; request the export again.")
        if export.status == "failed":
            abort(409, message=f"This export failed: {export.error or 'unknown error'}.")
        path = service.file_path(export)
        if not export.downloadable or not path.is_file():
            abort(409, message=f"This export is {export.status} ({export.progress}%); try again shortly.",
                  headers={"Retry-After": "5"})
        service.record_download(current_principal(), export)
        db.session.commit()
        response = send_file(path, mimetype=writers.MEDIA_TYPES[export.format], as_attachment=True,
                             download_name=export.file_name, conditional=False)
        # A council's file: kept by no shared cache, and by the browser only as the download itself.
        response.headers["Cache-Control"] = "private, no-store"
        return response
