"""Unsigned Firebase ID tokens in the emulator's format, for development, the demo and the tests.

firebase-admin accepts them only while FIREBASE_AUTH_EMULATOR_HOST is set, which production
configuration forbids (backend/config.py)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64(data: dict[str, Any]) -> str:
    return b64url(json.dumps(data, separators=(",", ":")).encode())


def emulator_claims(
    uid: str,
    *,
    project_id: str = "demo-safetravel",
    role: str | None = None,
    council: str | None = None,
    lifetime_s: int = 3600,
    issued_at: float | None = None,
    **claims: Any,
) -> dict[str, Any]:
    """The claims of a Firebase ID token for ``uid`` (those Google's token service would sign)."""
    now = int(time.time() if issued_at is None else issued_at)
    payload: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{project_id}",
        "aud": project_id,
        "sub": uid,
        "user_id": uid,
        "iat": now,
        "auth_time": now,
        "exp": now + lifetime_s,
        "firebase": {"identities": {}, "sign_in_provider": "anonymous" if role is None else "password"},
    }
    if role is not None:
        payload["role"] = role
    if council is not None:
        payload["council"] = council
    payload.update(claims)
    return payload


def emulator_token(uid: str, **kwargs: Any) -> str:
    """An unsigned token with those claims (``emulator_claims`` takes the same arguments)."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(emulator_claims(uid, **kwargs))}."
