"""``GET /api/v1/meta``: the deployment's time zone, vocabulary and report limits, for any client (no auth)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, request
from flask.views import MethodView

from backend import vocabulary as v
from backend.alerts.models import SEVERITIES
from backend.config import Settings, current_settings
from backend.http import Blueprint
from backend.hubs.models import KINDS
from schemas.meta import MetaSchema

blp = Blueprint("meta", __name__, url_prefix="/api/v1", description="What clients need to know about this deployment (no auth)")

# It changes only with a deployment or a configuration change; the ETag makes revalidation cheap.
MAX_AGE_S = 3600


def meta_document(settings: Settings) -> dict[str, Any]:
    return {
        "time_zone": settings.city_timezone,
        "vocabulary": {
            "categories": [{"name": c, "subcategories": list(v.SUBCATEGORIES[c])} for c in v.CATEGORIES],
            "modes": list(v.MODES),
            "factors": list(v.FACTORS),
            "statuses": list(v.STATUSES),
            "hub_kinds": list(KINDS),
            "alert_severities": list(SEVERITIES),
        },
        "report_limits": {
            "max_description_chars": v.MAX_DESCRIPTION_CHARS,
            "max_note_chars": v.MAX_NOTE_CHARS,
            "max_route_vertices": v.MAX_ROUTE_VERTICES,
            "max_route_length_m": v.MAX_ROUTE_LENGTH_M,
            "max_accuracy_m": v.MAX_ACCURACY_M,
            "future_skew_s": v.FUTURE_SKEW_S,
        },
        # Without FCM credentials the notifier only logs pushes (backend/alerts/notifier.py): the
        # dashboard says so on an alert's card instead of implying that phones were reached.
        "push_notifications": "fcm" if settings.google_application_credentials else "logged",
    }


@blp.route("/meta")
class Meta(MethodView):
    @blp.response(200, MetaSchema)
    @blp.alt_response(304, description="Not modified (If-None-Match)")
    def get(self):
        """The city's time zone, the words reports, hubs and alerts use, and the report limits

        Public and the same for every caller: a client reads it once (it is cacheable for an hour,
        with an ETag) instead of repeating these rules. Labels for the words are the client's own.
        """
        document = meta_document(current_settings())
        etag = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:32]
        headers = {"Cache-Control": f"public, max-age={MAX_AGE_S}", "ETag": f'"{etag}"'}
        if request.if_none_match.contains(etag):
            return Response(status=304, headers=headers)
        return document, 200, headers
