"""The caller's own account (docs/api.md, "Reports": DELETE /me)."""

from __future__ import annotations

from flask.views import MethodView

from backend.auth import ANY_SIGNED_IN, current_principal, requires
from backend.extensions import db
from backend.http import Blueprint
from backend.users import service

blp = Blueprint("me", __name__, url_prefix="/api/v1", description="The caller's own data")


@blp.route("/me")
class Me(MethodView):
    @requires(*ANY_SIGNED_IN)
    @blp.response(204)
    def delete(self):
        """Erase the caller's reports, devices and identity link

        Aggregates (heatmap counts) keep only counts. Idempotent: erasing twice answers 204 twice.
        """
        service.erase_user(current_principal().uid)
        db.session.commit()
