"""Open311 GeoReport v2 over HTTP, at /open311/v2 (each resource as .json or .xml), and the API keys
staff issue to councils, at /api/v1/open311/keys.

Open311 answers in the spec's own shapes, errors included (a list of ``{code, description}``, or
``<errors><error>``), with ``Content-Type`` exactly ``application/json`` or ``text/xml``."""

from __future__ import annotations

import json
import uuid
from typing import Any
from xml.etree import ElementTree

from flask import Response, request
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.exceptions import HTTPException

from backend.audit import service as audit
from backend.auth import STAFF, Principal, current_principal, requires
from backend.extensions import db
from backend.http import Blueprint
from backend.open311 import service
from schemas.open311 import ApiKeyCreatedSchema, ApiKeyInSchema, ApiKeySchema

blp = Blueprint("open311", __name__, url_prefix="",
                description="Open311 GeoReport v2 (read side) for councils' systems, and the api_keys staff issue")

FORMATS = {"json": "application/json", "xml": "text/xml"}
# XML element names for the members of a list, after the spec.
SINGULAR = {"services": "service", "service_requests": "request", "endpoints": "endpoint", "formats": "format",
            "attributes": "attribute", "errors": "error"}


def _xml_value(parent: ElementTree.Element, tag: str, value: Any) -> None:
    element = ElementTree.SubElement(parent, tag)
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(element, key, item)
    elif isinstance(value, list):
        for item in value:
            _xml_value(element, SINGULAR[tag], item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def _answer(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    if fmt == "xml":
        document = ElementTree.Element(root)
        if isinstance(value, list):
            for item in value:
                _xml_value(document, SINGULAR[root], item)
        else:
            for key, item in value.items():
                _xml_value(document, key, item)
        body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(document, encoding="utf-8",
                                                                                   xml_declaration=False)
        return Response(body, status=status, content_type=FORMATS["xml"])
    return Response(json.dumps(value), status=status, content_type=FORMATS["json"])


def _error(fmt: str, code: int, description: str) -> Response:
    return _answer(fmt if fmt in FORMATS else "json", "errors", [{"code": code, "description": description}], code)


def _unknown_format(fmt: str) -> Response | None:
    if fmt not in FORMATS:
        return _error("json", 404, f"Unknown format .{fmt}: use .json or .xml.")
    return None


def _doc(summary: str, description: str, root: str, query: list[dict[str, Any]] | None = None,
         errors: tuple[int, ...] = (404,)) -> Any:
    shape = "object" if root in ("discovery", "service_definition") else "array"
    content = {mime: {"schema": {"type": shape}} for mime in FORMATS.values()}
    responses = {"200": {"description": f"`{root}` in the chosen format", "content": content}}
    for code in errors:
        responses[str(code)] = {"description": "An Open311 error list: `[{code, description}]` or `<errors><error>`"}
    parameters = [{"name": "fmt", "in": "path", "required": True, "description": "json or xml",
                   "schema": {"type": "string", "enum": list(FORMATS)}}, *(query or [])]
    return blp.doc(summary=summary, description=description, parameters=parameters, responses=responses)


def _query(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": "string"}}


CREDENTIALS = [_query("api_key", "A council's api_key (issued by staff); or send a council officer's bearer token"),
               _query("jurisdiction_id", "Accepted and ignored: one jurisdiction")]


@blp.route("/open311/v2/discovery.<fmt>")
class Discovery(MethodView):
    @_doc("Open311 discovery (public)", "Where this endpoint is, which specification and formats it serves.",
          "discovery")
    def get(self, fmt: str):
        if (refused := _unknown_format(fmt)) is not None:
            return refused
        url = request.url_root.rstrip("/") + "/open311/v2"
        return _answer(fmt, "discovery", {
            "changeset": service.CHANGESET,
            "contact": "The SafeTravel safety team (api_keys for councils are issued by staff)",
            "key_service": "Ask the SafeTravel safety team for your council's api_key",
            "endpoints": [{"specification": service.SPECIFICATION, "url": url, "changeset": service.CHANGESET,
                           "type": "production", "formats": list(FORMATS.values())}],
        })


@blp.route("/open311/v2/services.<fmt>")
class Services(MethodView):
    @_doc("Open311 services (public)", "The report categories as services: harassment, spiking, unsafe_route.",
          "services", [_query("jurisdiction_id", "Accepted and ignored: one jurisdiction")])
    def get(self, fmt: str):
        return _unknown_format(fmt) or _answer(fmt, "services", service.services())


@blp.route("/open311/v2/services/<code>.<fmt>")
class ServiceDefinition(MethodView):
    @_doc("Open311 service definition (public)", "No service has extra attributes (`metadata` is false).",
          "service_definition", [_query("jurisdiction_id", "Accepted and ignored: one jurisdiction")])
    def get(self, code: str, fmt: str):
        if (refused := _unknown_format(fmt)) is not None:
            return refused
        definition = service.service_definition(code)
        if definition is None:
            return _error(fmt, 404, f"No service has the code {code!r} (see services.{fmt}).")
        return _answer(fmt, "service_definition", definition)


def _council(fmt: str) -> Principal | Response:
    """The calling council, by api_key or by a council officer's bearer token; an error list otherwise."""
    key = request.args.get("api_key")
    if key:
        principal = service.council_for_key(key)
        if principal is None:
            return _error(fmt, 401, "This api_key is not valid (unknown or revoked).")
        return principal
    if not request.headers.get("Authorization"):
        return _error(fmt, 401, "Send your council's api_key, or Authorization: Bearer <a council officer's ID token>.")
    try:
        principal = current_principal()
    except HTTPException as exc:
        message = (getattr(exc, "data", None) or {}).get("message") or exc.description
        return _error(fmt, exc.code or 401, message)
    if not principal.is_council:
        return _error(fmt, 403, "Open311 requests are for councils: a council officer's token or a council's api_key.")
    return principal


def _requests(fmt: str, args: dict[str, str]) -> Response:
    if (refused := _unknown_format(fmt)) is not None:
        return refused
    principal = _council(fmt)
    if isinstance(principal, Response):
        db.session.commit()
        return principal
    try:
        filters = service.parse_filters(args)
    except service.BadRequest as exc:
        return _error(fmt, 400, str(exc))
    found = service.service_requests(principal.council, filters)
    audit.record(principal, "open311.requests", "report", None, count=len(found),
                 ids=[r["service_request_id"] for r in found])
    db.session.commit()
    return found


REQUEST_FILTERS = [
    _query("service_request_id", "Request ids, comma-separated; overrides the other filters"),
    _query("service_code", "Service codes, comma-separated"),
    _query("start_date", "W3C date and time (default: end_date less 90 days)"),
    _query("end_date", "W3C date and time (default: now); at most 90 days after start_date"),
    _query("status", "open or closed (comma-separated)"),
]


@blp.route("/open311/v2/requests.<fmt>")
class ServiceRequests(MethodView):
    @_doc("Open311 service requests (council)",
          "The reports in the caller's council area, newest first, at most 1,000: coarse locations (about 100 m), "
          "no description; received and reviewing are open, actioned, closed and rejected closed; status_notes "
          "is the public note.", "service_requests", [*CREDENTIALS, *REQUEST_FILTERS], errors=(400, 401, 403, 404))
    def get(self, fmt: str):
        found = _requests(fmt, request.args.to_dict())
        return found if isinstance(found, Response) else _answer(fmt, "service_requests", found)


@blp.route("/open311/v2/requests/<request_id>.<fmt>")
class ServiceRequest(MethodView):
    @_doc("One Open311 service request (council)", "As a list of one, as the spec has it; 404 outside the caller's area.",
          "service_requests", CREDENTIALS, errors=(400, 401, 403, 404))
    def get(self, request_id: str, fmt: str):
        found = _requests(fmt, {"service_request_id": request_id})
        if isinstance(found, Response):
            return found
        if not found:
            return _error(fmt, 404, f"No service request {request_id} in your area.")
        return _answer(fmt, "service_requests", found)


@blp.route("/api/v1/open311/keys")
class ApiKeys(MethodView):
    @requires(*STAFF)
    @blp.arguments(ApiKeyInSchema())
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data: dict[str, Any]):
        """Issue an Open311 api_key to a council (staff): answered 201 with the key, shown once"""
        principal = current_principal()
        try:
            row, key = service.issue_key(principal, data["council"], data.get("label"))
        except service.UnknownCouncil:
            abort(422, errors={"council": ["no council area has this code (see GET /councils)"]})
        audit.record(principal, "open311.key_issued", "council_api_key", row.id, council=row.council)
        db.session.commit()
        row.key = key
        return row

    @requires(*STAFF)
    @blp.response(200, ApiKeySchema(many=True))
    def get(self):
        """The api_keys issued, newest first (staff); the keys themselves are never shown again"""
        return service.list_keys()


@blp.route("/api/v1/open311/keys/<uuid:key_id>")
class ApiKeyById(MethodView):
    @requires(*STAFF)
    @blp.response(204)
    @blp.alt_response(404, description="No such key")
    def delete(self, key_id: uuid.UUID):
        """Revoke an api_key (staff): it stops working at once"""
        if not service.revoke_key(key_id):
            abort(404, message="No such api_key.")
        audit.record(current_principal(), "open311.key_revoked", "council_api_key", key_id)
        db.session.commit()
