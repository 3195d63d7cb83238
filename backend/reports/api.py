"""Reports over HTTP (docs/api.md, "Reports"). Views parse, authorise and call the service."""

from __future__ import annotations

import uuid
from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import abort
from marshmallow import ValidationError

from backend.audit import service as audit
from backend.auth import ANY_SIGNED_IN, COUNCIL, STAFF, current_principal, requires
from backend.extensions import db
from backend.http import Blueprint, lone_surrogates, raw_json
from backend.limits import limited, take_allowance
from backend.reports import service
from schemas.reports import (
    BatchInSchema,
    BatchItemSchema,
    BatchOutSchema,
    CouncilReportPageSchema,
    IdempotencyHeaderSchema,
    OwnReportPageSchema,
    OwnReportSchema,
    PageArgsSchema,
    ReportFilterSchema,
    ReportInSchema,
    ReportPageSchema,
    ReportSchema,
    StaffReportSchema,
    TriageSchema,
)

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Commuters' reports and their triage")

_batch_item_schema = BatchItemSchema()
_report_schema = ReportSchema()


def _page_or_422(fetch):
    try:
        return fetch()
    except service.InvalidCursor:
        abort(422, errors={"cursor": ["is not a cursor this API gave out"]})


@blp.route("/reports")
class Reports(MethodView):
    @requires(*ANY_SIGNED_IN)
    @limited("reports")
    @blp.alt_response(429, description="Too many reports from this user or address (Retry-After says when to retry)")
    @blp.arguments(IdempotencyHeaderSchema(), location="headers", as_kwargs=True)
    @blp.arguments(ReportInSchema())
    @blp.response(201, ReportSchema)
    @blp.alt_response(409, description="The Idempotency-Key was already used for a different report")
    def post(self, data: dict[str, Any], idempotency_key: uuid.UUID | None = None):
        """Create a report

        Send an `Idempotency-Key` (a client UUID): a replay by the same user returns the first
        response (header `Idempotent-Replayed: true`) and creates nothing; the same key with a
        different body answers 409.
        """
        try:
            created = service.create_report(
                current_principal().uid, data, service.request_fingerprint(raw_json()), idempotency_key
            )
        except service.IdempotencyConflict:
            abort(409, message="This Idempotency-Key was already used for a different report.",
                  errors={"Idempotency-Key": ["was already used for a different report"]})
        db.session.commit()
        headers = {"Location": f"/api/v1/reports/{created.report.id}"}
        if created.replayed:
            headers["Idempotent-Replayed"] = "true"
        return created.report, 201, headers

    @requires(*STAFF, COUNCIL)
    @blp.arguments(ReportFilterSchema(), location="query", as_kwargs=True)
    @blp.response(200, ReportPageSchema)
    def get(self, limit: int, cursor: str | None = None, **filters: Any):
        """List reports (staff; a council officer sees its own area, coarsened)

        Newest first. Filters: `bbox`, `category`, `status`, `mode` (each repeatable), `from`, `to`
        (local days of `occurred_at`, both included, as on heatmaps and exports). Follow
        `next_cursor` for the next page. A council officer sees the reports located in its area,
        without free text (`description`, `status_note`, transport `line` and `station`), times to
        the hour, routes clipped to its area.
        """
        principal = current_principal()
        council = principal.council if principal.is_council else None
        items, next_cursor = _page_or_422(
            lambda: service.list_reports(limit=limit, cursor=cursor, council=council, **filters)
        )
        page = {"items": items, "next_cursor": next_cursor}
        # Who read which reports: staff see descriptions, councils locations and times.
        audit.record(principal, "reports.listed", "report", None, count=len(items),
                     filters={k: (list(v) if isinstance(v, (list, tuple)) else str(v)) for k, v in filters.items()},
                     ids=[str(r.id) for r in items])
        db.session.commit()
        if principal.is_council:
            # The council view (no free text, times to the hour, routes clipped to the area): dumped
            # here, so the staff schema is not applied.
            page["items"] = service.council_view(items, council)
            return jsonify(CouncilReportPageSchema().dump(page))
        return page


@blp.route("/reports/batch")
class ReportBatch(MethodView):
    max_body_setting = "max_batch_body_bytes"  # a larger body than the default: 100 reports with routes
    per_item_body = "reports"  # each item's lone surrogates are that item's errors (backend/http.py)

    @requires(*ANY_SIGNED_IN)
    @blp.alt_response(429, description="No report of the batch fits the rate limit now (Retry-After says when to retry)")
    @blp.arguments(BatchInSchema())
    @blp.response(200, BatchOutSchema)
    def post(self, data: dict[str, Any]):
        """Create up to 100 reports queued offline

        Each item is a report plus its `client_id` (a UUID serving as its idempotency key). The
        answer has one result per item, in order: 201 with the report (also for a replay), 409 if
        the `client_id` was used for a different report, 422 with the item's errors, 429 if the item
        was over the report rate limit (not stored: keep it queued and send it again after
        `Retry-After` seconds). Each item counts against the rate limit as one `POST /reports` does.
        One bad item does not sink the others.
        """
        allowance = take_allowance("reports", len(data["reports"]))
        if allowance.granted == 0:
            abort(429, message="Too many reports from this account or address; retry after Retry-After seconds.",
                  headers={"Retry-After": str(allowance.retry_after_s)})
        items = []
        for index, raw in enumerate(data["reports"][:allowance.granted]):
            try:
                if unstorable := lone_surrogates(raw):
                    raise ValidationError(unstorable)
                loaded = _batch_item_schema.load(raw)
            except ValidationError as err:
                # Echo the client's id back even when it is malformed, so the app can match results.
                client_id = raw.get("client_id") if isinstance(raw.get("client_id"), str) else None
                if client_id is not None and lone_surrogates(client_id):
                    client_id = None  # not even echoed: no encoding can carry it
                items.append(service.BatchItem(index, client_id, None, None, errors=err.messages))
                continue
            client_id = loaded.pop("client_id")
            fingerprint = service.request_fingerprint({k: val for k, val in raw.items() if k != "client_id"})
            items.append(service.BatchItem(index, client_id, loaded, fingerprint))
        outcomes = service.create_batch(current_principal().uid, items)
        db.session.commit()
        results = [
            {"index": o.index, "client_id": str(o.client_id) if o.client_id else None, "status": o.status,
             "report": o.report, "errors": o.errors}
            for o in outcomes
        ]
        for index, raw in enumerate(data["reports"][allowance.granted:], start=allowance.granted):
            client_id = raw.get("client_id") if isinstance(raw.get("client_id"), str) else None
            if client_id is not None and lone_surrogates(client_id):
                client_id = None
            results.append({"index": index, "client_id": client_id, "status": 429, "report": None, "errors": {
                "_schema": [f"over the report rate limit: not stored; send it again after {allowance.retry_after_s} "
                            "seconds"]}})
        headers = {"Retry-After": str(allowance.retry_after_s)} if allowance.retry_after_s else {}
        return {"results": results}, 200, headers


@blp.route("/reports/<uuid:report_id>")
class ReportById(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.response(200, OwnReportSchema)
    @blp.alt_response(404, description="No such report, or not yours")
    def get(self, report_id: uuid.UUID):
        """One report (its author, with its status history; staff, with the internal `status_note` instead)"""
        principal = current_principal()
        report = service.report_visible_to(principal, report_id)
        if report is None:
            abort(404, message="No such report.")
        if principal.is_staff:
            audit.record(principal, "report.read", "report", report.id)
            db.session.commit()
            # Staff's view: dumped here, so the author's schema is not applied.
            return jsonify(StaffReportSchema().dump(report))
        return service.with_history([report])[0]

    @requires(*STAFF)
    @blp.arguments(TriageSchema())
    @blp.response(200, StaffReportSchema)
    @blp.alt_response(404, description="No such report")
    def patch(self, data: dict[str, Any], report_id: uuid.UUID):
        """Triage a report (staff): set its `status`, with an optional internal `note` and a `public_note` for the reporter

        Moving it to a status in REPORTER_UPDATE_STATUSES (default actioned, closed, rejected) pushes
        the new status and the public note to the reporter's own devices, in each device's language.
        """
        report = service.triage(report_id, data["status"], data.get("note"), current_principal(),
                                data.get("public_note"))
        if report is None:
            abort(404, message="No such report.")
        db.session.commit()
        return report


@blp.route("/me/reports")
class MyReports(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.arguments(PageArgsSchema(), location="query", as_kwargs=True)
    @blp.response(200, OwnReportPageSchema)
    def get(self, limit: int, cursor: str | None = None):
        """The caller's own reports, newest first, each with its status history and public notes"""
        items, next_cursor = _page_or_422(
            lambda: service.list_own_reports(current_principal(), limit=limit, cursor=cursor)
        )
        return {"items": items, "next_cursor": next_cursor}
