"""Who is calling: Firebase ID tokens verified with firebase-admin, roles from custom claims.

- no ``role`` claim (or one we do not know): a commuter, anonymous Firebase accounts included;
- ``role: "safety_team"`` / ``"admin"``: staff;
- ``role: "council"`` with ``council: "<GSS code>"``: a council officer, limited to that area.

In development and tests the Firebase emulator convention applies: with FIREBASE_AUTH_EMULATOR_HOST
set, firebase-admin accepts unsigned tokens. Production configuration refuses to start with it set
(backend/config.py).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import firebase_admin
import flask_smorest
from firebase_admin import auth as firebase_auth
from flask import Flask, g, request
from flask_smorest import abort

from backend.config import Settings
from backend.councils.service import council_exists

COMMUTER = "commuter"
SAFETY_TEAM = "safety_team"
ADMIN = "admin"
COUNCIL = "council"
ROLES = (COMMUTER, SAFETY_TEAM, ADMIN, COUNCIL)
STAFF = (SAFETY_TEAM, ADMIN)
ANY_SIGNED_IN = ROLES

GSS_CODE = re.compile(r"^[EWSN]\d{8}$")
CLOCK_SKEW_S = 60
# Firebase ID tokens live exactly an hour; the app refreshes them. A longer one was not made by Google.
MAX_TOKEN_LIFETIME_S = 3600
FIREBASE_APP_NAME = "safetravel"
VERIFIED_TOKENS_KEPT = 4096  # tokens whose signature check is remembered per process (about 4 MiB at most)

SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A Firebase ID token. Roles come from the `role` and `council` custom claims.",
}


@dataclass(frozen=True)
class Principal:
    """The verified caller."""

    uid: str
    role: str
    council: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    @property
    def is_council(self) -> bool:
        return self.role == COUNCIL


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    role = claims.get("role")
    if role not in ROLES or role == COMMUTER:
        # Unknown roles get the least privilege, never an error: a typo in a claim locks nobody in.
        return Principal(uid=claims["uid"], role=COMMUTER)
    council = claims.get("council") if role == COUNCIL else None
    if role == COUNCIL and not (isinstance(council, str) and GSS_CODE.match(council)):
        abort(403, message="This council account has no valid `council` claim (a GSS code such as E09000028).")
    if role == COUNCIL and not council_exists(council):
        abort(403, message="This council account's `council` claim names no council area known here "
                           "(GET /api/v1/councils lists them).")
    return Principal(uid=claims["uid"], role=role, council=council)


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    # firebase-admin reads this variable from the process environment on every verification: the
    # settings must say what it will see (backend/config.py, prepare_process_environment).
    seen = os.environ.get("FIREBASE_AUTH_EMULATOR_HOST") or None
    if seen != settings.firebase_auth_emulator_host:
        from backend.config import ConfigError

        raise ConfigError(
            f"FIREBASE_AUTH_EMULATOR_HOST is {seen!r} in the process environment, which firebase-admin reads, "
            f"but {settings.firebase_auth_emulator_host!r} in the settings: start the process through its entry "
            "point, or set the variable itself")
    app.extensions["firebase_app"] = firebase_app(settings)
    if settings.is_production:
        require_credential(app.extensions["firebase_app"])


def require_credential(fb_app: firebase_admin.App) -> None:
    """firebase-admin's auth client needs a Google credential even to check a token's signature:
    without one every request would fail. Say so at start-up instead."""
    from google.auth.exceptions import DefaultCredentialsError

    from backend.config import ConfigError

    try:
        fb_app.credential.get_credential()
    except DefaultCredentialsError as exc:
        raise ConfigError(
            "No Google credential: set GOOGLE_APPLICATION_CREDENTIALS to the Firebase service-account key "
            f"(or run where Application Default Credentials exist). {exc}"
        ) from exc


def firebase_app(settings: Settings) -> firebase_admin.App:
    """The process's firebase-admin app (auth now, FCM later), created once per project id."""
    try:
        app = firebase_admin.get_app(FIREBASE_APP_NAME)
        if app.project_id == settings.firebase_project_id:
            return app
        firebase_admin.delete_app(app)
    except ValueError:
        pass
    credential = None
    if settings.google_application_credentials:
        from firebase_admin import credentials

        credential = credentials.Certificate(settings.google_application_credentials)
    return firebase_admin.initialize_app(
        credential, options={"projectId": settings.firebase_project_id}, name=FIREBASE_APP_NAME
    )


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        abort(401, message="Sign in: send `Authorization: Bearer <Firebase ID token>`.")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, message="The Authorization header must be `Bearer <Firebase ID token>`.")
    return token.strip()


def _without(message: str, token: str) -> str:
    """``message`` without the token or any part of it: firebase-admin quotes what it could not parse
    (``Wrong number of segments in token: b'...'``), and long token-like runs are cut too."""
    message = message.replace(token, "") if len(token) >= 8 else message
    message = re.sub(r":\s*b?'.*$", "", message, flags=re.DOTALL)
    return re.sub(r"[A-Za-z0-9_\-.]{40,}", "", message).strip()[:300] or "malformed"


@functools.lru_cache(maxsize=VERIFIED_TOKENS_KEPT)
def _verified_claims(token: str, fb_app: firebase_admin.App) -> dict[str, Any]:
    """firebase-admin's verification of one token (signature, audience, issuer), kept per process: an app
    sends the same token for its hour, and checking it again gives the same answer. Failures are not
    kept (they raise). The time checks in ``verify`` run on every request."""
    return firebase_auth.verify_id_token(token, app=fb_app, clock_skew_seconds=CLOCK_SKEW_S)


def verify(token: str, fb_app: firebase_admin.App) -> dict[str, Any]:
    try:
        claims = _verified_claims(token, fb_app)
    except firebase_auth.ExpiredIdTokenError:
        abort(401, message="The ID token has expired: refresh it and try again.")
    except firebase_auth.CertificateFetchError:
        abort(503, message="Cannot reach Google to check the ID token; try again shortly.",
              headers={"Retry-After": "5"})
    except (firebase_auth.InvalidIdTokenError, ValueError) as exc:
        # firebase-admin's messages may quote the token: the answer says why, never what was sent.
        abort(401, message=f"The ID token is not valid: {_without(str(exc), token)}")
    # The emulator path skips time checks; keep them, as Google's tokens would pass them, so that tests
    # and development behave like production: an expired, not-yet-valid or over-long token is refused.
    now = time.time()
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp < now - CLOCK_SKEW_S:
        abort(401, message="The ID token has expired: refresh it and try again.")
    if not isinstance(iat, (int, float)) or iat > now + CLOCK_SKEW_S:
        abort(401, message="The ID token was issued in the future; check the device clock.")
    if exp - iat > MAX_TOKEN_LIFETIME_S:
        abort(401, message=f"The ID token is valid for longer than Firebase's {MAX_TOKEN_LIFETIME_S // 60} minutes: "
                           "it was not issued by Firebase.")
    if nbf is not None and (not isinstance(nbf, (int, float)) or nbf > now + CLOCK_SKEW_S):
        abort(401, message="The ID token is not valid yet (nbf); check the device clock.")
    return claims


def current_principal() -> Principal:
    """The caller, verified once per request."""
    if "principal" not in g:
        from flask import current_app

        claims = verify(_bearer_token(), current_app.extensions["firebase_app"])
        g.principal = principal_from_claims(claims)
    return g.principal


def requires(*roles: str) -> Callable:
    """Let only these roles call the view: 401 without a valid token, 403 for another role."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal.role not in roles:
                abort(403, message=f"This needs one of the roles: {', '.join(roles)}.")
            return view(*args, **kwargs)

        return flask_smorest.Blueprint.doc(
            security=[{"firebase": []}],
            responses={
                "401": {"description": "No valid Firebase ID token"},
                "403": {"description": f"Allowed roles: {', '.join(roles)}"},
            },
        )(wrapper)

    return decorator
