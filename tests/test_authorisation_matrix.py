"""Every endpoint x every kind of caller, with the exact status each gets (OWASP API1, API5: object-
and function-level authorisation). One row per endpoint; the columns are:

    anonymous, the commuter who owns the objects, another commuter, the council of the objects' area
    (Southwark), the council of another area (Camden), the safety team, an admin.

The objects: a report by the commuter in Peckham (Southwark), the commuter's device, a safe hub, an
alert, an export Southwark requested (not built yet), a partner's webhook subscription with a
failed delivery, and an Open311 api_key issued to Southwark. Open311 answers in its own error format."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import responses
from sqlalchemy import text

from backend.devtokens import b64url, emulator_claims
from backend.extensions import db
from backend.streets.service import load_street_segments
from tests.alerts.fcm import private_key_pem, service_account
from tests.factories import CALLERS, PECKHAM, Caller, new_key, report_body

# The matrix's columns, in order, and which of the suite's callers (tests/factories.py) each is.
COLUMNS: dict[str, Caller | None] = {
    "anonymous": None,
    "owner": CALLERS["commuter"],
    "other": CALLERS["other_commuter"],
    "council": CALLERS["southwark"],
    "other_council": CALLERS["camden"],
    "safety_team": CALLERS["staff"],
    "admin": CALLERS["admin"],
}
ANY = (200,) * 7


def expires() -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat().replace("+00:00", "Z")


HUB = {"name": "Peckham Rye station", "kind": "staffed_station", "opening_hours": "24/7",
       "location": {"type": "Point", "coordinates": PECKHAM}}
DEVICE = {"token": "fcm-matrix-" + "a" * 140, "platform": "android", "radius_m": 1000,
          "location": {"type": "Point", "coordinates": PECKHAM}}
ALERT = {"title": "Station closed", "body": "Use the buses.", "severity": "info",
         "area": {"center": {"type": "Point", "coordinates": PECKHAM}, "radius_m": 500}}
WEBHOOK = {"url": "https://partner.example.org/hook", "events": ["report.created"], "council": "E09000028"}
EXPORT = {"kind": "lighting", "council": "E09000028", "from": "2026-01-01", "to": "2026-12-31", "format": "csv"}
WHERE = "?lon=-0.0692&lat=51.474"
# A walk along the matrix's one street (the world's street network: two short streets in Peckham).
WALK = "?from=-0.0692,51.474&to=-0.0692,51.4755"
STREETS = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Matrix Road"},
     "geometry": {"type": "LineString", "coordinates": [PECKHAM, [PECKHAM[0], 51.4755]]}},
    {"type": "Feature", "properties": {"name": "Matrix Lane"},
     "geometry": {"type": "LineString", "coordinates": [PECKHAM, [-0.0702, 51.474]]}},
]}

#   method, path (with {report} {hub} {device} {alert} {cluster_alert} {export}), body, and the statuses:
#   anonymous, owner, other, council, other_council, safety_team, admin
MATRIX: list[tuple[str, str, Any, tuple[int, ...]]] = [
    ("GET", "/healthz", None, ANY),
    ("GET", "/readyz", None, ANY),
    ("GET", "/api/openapi.json", None, ANY),
    ("GET", "/metrics", None, ANY),  # open in development; behind METRICS_TOKEN otherwise (tests/test_metrics.py)
    ("GET", "/", None, ANY),  # the landing page
    ("GET", "/dashboard/", None, ANY),
    ("GET", "/api/v1/public/heatmap", None, ANY),
    ("GET", "/api/v1/meta", None, ANY),
    ("POST", "/api/v1/reports", "report", (401, 201, 201, 201, 201, 201, 201)),
    ("POST", "/api/v1/reports/batch", "batch", (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/reports", None, (401, 403, 403, 200, 200, 200, 200)),
    ("GET", "/api/v1/reports/{report}", None, (401, 200, 404, 404, 404, 200, 200)),
    ("PATCH", "/api/v1/reports/{report}", {"status": "reviewing"}, (401, 403, 403, 403, 403, 200, 200)),
    ("GET", "/api/v1/me/reports", None, (401, 200, 200, 200, 200, 200, 200)),
    ("DELETE", "/api/v1/me", None, (401, 204, 204, 204, 204, 204, 204)),
    ("GET", "/api/v1/councils", None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/heatmap?zoom=10&bbox=-0.2,51.4,0,51.6", None, (401, 403, 403, 200, 200, 200, 200)),
    ("GET", "/api/v1/heatmap/tiles/10/511/340.mvt", None, (401, 403, 403, 204, 204, 204, 204)),
    ("GET", "/api/v1/hotspots", None, (401, 403, 403, 200, 200, 200, 200)),
    ("GET", "/api/v1/safe-hubs", None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/safe-hubs/nearest" + WHERE, None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/safe-hubs/{hub}", None, (401, 200, 200, 200, 200, 200, 200)),
    ("POST", "/api/v1/safe-hubs", HUB, (401, 403, 403, 403, 403, 201, 201)),
    ("PATCH", "/api/v1/safe-hubs/{hub}", {"phone": "020 7000 0000"}, (401, 403, 403, 403, 403, 200, 200)),
    ("DELETE", "/api/v1/safe-hubs/{hub}", None, (401, 403, 403, 403, 403, 204, 204)),
    ("POST", "/api/v1/devices", "device", (401, 201, 201, 201, 201, 201, 201)),
    ("PATCH", "/api/v1/devices/{device}", {"radius_m": 2000}, (401, 200, 404, 404, 404, 404, 404)),
    ("DELETE", "/api/v1/devices/{device}", None, (401, 204, 404, 404, 404, 404, 404)),
    ("POST", "/api/v1/alerts", "alert", (401, 403, 403, 403, 403, 202, 202)),
    ("GET", "/api/v1/alerts/{alert}", None, (401, 403, 403, 403, 403, 200, 200)),
    ("GET", "/api/v1/alerts/awaiting-confirmation", None, (401, 403, 403, 403, 403, 200, 200)),
    ("POST", "/api/v1/alerts/{cluster_alert}/confirm", None, (401, 403, 403, 403, 403, 202, 202)),
    ("GET", "/api/v1/alerts/nearby" + WHERE, None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/routes/safer" + WALK, None, (401, 200, 200, 200, 200, 200, 200)),
    ("GET", "/api/v1/streets?bbox=-0.08,51.47,-0.06,51.48", None, (401, 403, 403, 200, 200, 200, 200)),
    ("GET", "/api/v1/alerts/circle" + WHERE + "&radius_m=500", None, (401, 403, 403, 403, 403, 200, 200)),
    ("POST", "/api/v1/exports", EXPORT, (401, 403, 403, 202, 403, 202, 202)),
    ("GET", "/api/v1/exports", None, (401, 403, 403, 200, 200, 200, 200)),
    ("GET", "/api/v1/exports/{export}", None, (401, 403, 403, 200, 404, 200, 200)),
    ("GET", "/api/v1/exports/{export}/download", None, (401, 403, 403, 409, 404, 409, 409)),
    ("POST", "/api/v1/webhooks", WEBHOOK, (401, 403, 403, 403, 403, 403, 201)),
    ("GET", "/api/v1/webhooks", None, (401, 403, 403, 403, 403, 403, 200)),
    ("GET", "/api/v1/webhooks/{webhook}", None, (401, 403, 403, 403, 403, 403, 200)),
    ("PATCH", "/api/v1/webhooks/{webhook}", {"precision": "exact"}, (401, 403, 403, 403, 403, 403, 200)),
    ("DELETE", "/api/v1/webhooks/{webhook}", None, (401, 403, 403, 403, 403, 403, 204)),
    ("POST", "/api/v1/webhooks/{webhook}/secret", None, (401, 403, 403, 403, 403, 403, 200)),
    ("GET", "/api/v1/webhooks/{webhook}/deliveries", None, (401, 403, 403, 403, 403, 403, 200)),
    ("POST", "/api/v1/webhooks/{webhook}/deliveries/{delivery}/replay", None, (401, 403, 403, 403, 403, 403, 202)),
    ("GET", "/open311/v2/discovery.json", None, ANY),
    ("GET", "/open311/v2/services.xml", None, ANY),
    ("GET", "/open311/v2/services/spiking.json", None, ANY),
    ("GET", "/open311/v2/requests.json", None, (401, 403, 403, 200, 200, 403, 403)),
    ("GET", "/open311/v2/requests/{request}.xml", None, (401, 403, 403, 200, 404, 403, 403)),
    ("POST", "/api/v1/open311/keys", {"council": "E09000007"}, (401, 403, 403, 403, 403, 201, 201)),
    ("GET", "/api/v1/open311/keys", None, (401, 403, 403, 403, 403, 200, 200)),
    ("DELETE", "/api/v1/open311/keys/{key}", None, (401, 403, 403, 403, 403, 204, 204)),
]


def body_for(kind: Any) -> Any:
    if kind == "report":
        return report_body()
    if kind == "batch":
        return {"reports": [{**report_body(), "client_id": new_key()}]}
    if kind == "device":
        return {**DEVICE, "token": f"fcm-{new_key()}-" + "b" * 100}
    if kind == "alert":
        return {**ALERT, "expires_at": expires()}
    return kind


@pytest.fixture
def world(client, tmp_path) -> dict[str, str]:
    """The objects the matrix reads, made through the API by their rightful callers, and a street
    network to walk on."""
    owner, council, staff = COLUMNS["owner"], COLUMNS["council"], COLUMNS["safety_team"]
    streets = tmp_path / "streets.geojson"
    streets.write_text(json.dumps(STREETS))
    with client.application.app_context():
        load_street_segments(streets)
        db.session.commit()

    def made(method: str, path: str, body: Any, caller: Caller, status: int) -> str:
        response = client.open(path, method=method, json=body, headers=caller.headers(**{"Idempotency-Key": new_key()}))
        assert response.status_code == status, response.json
        return response.json["id"]

    world = {
        "report": made("POST", "/api/v1/reports", report_body(location={"type": "Point", "coordinates": PECKHAM}), owner, 201),
        "device": made("POST", "/api/v1/devices", DEVICE, owner, 201),
        "hub": made("POST", "/api/v1/safe-hubs", HUB, staff, 201),
        "alert": made("POST", "/api/v1/alerts", {**ALERT, "expires_at": expires()}, staff, 202),
        "export": made("POST", "/api/v1/exports", EXPORT, council, 202),
        "cluster_alert": str(db.session.scalar(text("""
            INSERT INTO alerts (title, body, severity, area, radius_m, kind, category, created_by, expires_at,
                                public_push)
            VALUES ('Spiking reports nearby', '3 spiking reports from 3 people', 'urgent',
                    ST_SetSRID(ST_MakePoint(-0.0692, 51.474), 4326), 300, 'cluster', 'spiking', 'cluster-detection',
                    now() + interval '6 hours', 'awaiting_confirmation')
            RETURNING id"""))),
        "webhook": (webhook := made("POST", "/api/v1/webhooks", WEBHOOK, COLUMNS["admin"], 201)),
        "delivery": failed_delivery(webhook),
        "key": made("POST", "/api/v1/open311/keys", {"council": "E09000028"}, staff, 201),
    }
    return {**world, "request": world["report"]}  # an Open311 service request is a report


def failed_delivery(webhook: str) -> str:
    """A delivery to the partner that failed for good (what a replay is for)."""
    delivery_id = db.session.scalar(text(
        "INSERT INTO webhook_deliveries (subscription_id, event, body, status, attempts, next_attempt_at) "
        "VALUES (:w, 'report.created', '{}', 'failed', 3, NULL) RETURNING id"), {"w": webhook})
    db.session.commit()
    return str(delivery_id)


CASES = [
    pytest.param(method, path, body, who, expected, id=f"{method} {path.split('?')[0]} as {who}")
    for method, path, body, statuses in MATRIX
    for who, expected in zip(COLUMNS, statuses)
]


@pytest.mark.parametrize("method, path, body, who, expected", CASES)
def test_authorisation_matrix(client, world, method, path, body, who, expected):
    caller = COLUMNS[who]
    headers = caller.headers(**{"Idempotency-Key": new_key()}) if caller else {}
    response = client.open(path.format(**world), method=method, json=body_for(body), headers=headers)
    assert response.status_code == expected, (response.status_code, response.get_data(as_text=True)[:300])


def test_the_matrix_covers_every_documented_operation(client):
    document = client.get("/api/openapi.json").json
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations
                  if method in ("get", "post", "put", "patch", "delete")}
    placeholders = {"{report}": "{report_id}", "{hub}": "{hub_id}", "{device}": "{device_id}", "{alert}": "{alert_id}",
                    "{cluster_alert}": "{alert_id}", "{export}": "{export_id}", "{webhook}": "{subscription_id}",
                    "{delivery}": "{delivery_id}", "{request}": "{request_id}", "{key}": "{key_id}",
                    "/services/spiking.": "/services/{code}."}
    covered = set()
    for method, path, _, _ in MATRIX:
        path = path.split("?")[0]
        for ours, theirs in placeholders.items():
            path = path.replace(ours, theirs)
        path = path.replace("/tiles/10/511/340.mvt", "/tiles/{z}/{x}/{y}.mvt")
        if path.startswith("/open311/"):
            path = path.rsplit(".", 1)[0] + ".{fmt}"
        covered.add((method, path))
    assert documented - covered == set()


# -- OWASP API2: broken authentication beyond the emulator -------------------------------------------
# Production verification: no emulator, firebase-admin checks each token's RS256 signature against the
# certificates Google publishes (that endpoint, outside this machine, answers from here).

PRODUCTION_PROJECT = "safetravel-prod-test"
CERTS_URL = "https://www.googleapis.com/robot/v1/metadata/x509/securetoken@system.gserviceaccount.com"


def _key_and_certificate(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return private_key_pem(key), certificate.public_bytes(serialization.Encoding.PEM).decode()


GOOGLE_KEY, GOOGLE_CERT = _key_and_certificate("securetoken")
FORGER_KEY, _ = _key_and_certificate("mallory")


def claims(**overrides: Any) -> dict[str, Any]:
    """The safety team's claims, for the production project."""
    return emulator_claims(CALLERS["staff"].uid, project_id=PRODUCTION_PROJECT, role="safety_team", **overrides)


def signed_token(private_key: str = GOOGLE_KEY, kid: str = "google-key-1", **overrides: Any) -> str:
    """A Firebase ID token as Google's token service signs it (RS256, its key id in the header)."""
    from google.auth import crypt, jwt

    return jwt.encode(crypt.RSASigner.from_string(private_key, kid), claims(**overrides)).decode()


def _hs256_with_the_public_certificate() -> str:
    """The classic key confusion: HMAC-signed with the published certificate as the secret."""
    import hashlib
    import hmac
    import json

    signing_input = ".".join(b64url(json.dumps(part).encode())
                             for part in ({"alg": "HS256", "kid": "google-key-1", "typ": "JWT"}, claims()))
    signature = hmac.new(GOOGLE_CERT.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def production_app(settings, credentials_file: str | None):
    """An app configured as in production (no emulator) on a fresh firebase app; undo with
    ``restore_test_firebase``."""
    import os
    from dataclasses import replace

    import firebase_admin

    from backend import auth, create_app

    firebase_admin.delete_app(firebase_admin.get_app(auth.FIREBASE_APP_NAME))
    os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)  # a production process has none
    return create_app(replace(settings, app_env="production", firebase_project_id=PRODUCTION_PROJECT,
                              firebase_auth_emulator_host=None, google_application_credentials=credentials_file))


def restore_test_firebase(app, settings) -> None:
    """Back to the emulator convention and the test process's own firebase app."""
    import os

    import firebase_admin

    from backend import auth

    os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = settings.firebase_auth_emulator_host
    firebase_admin.delete_app(firebase_admin.get_app(auth.FIREBASE_APP_NAME))
    app.extensions["firebase_app"] = auth.firebase_app(settings)


@pytest.fixture
def production_verification(app, settings, tmp_path):
    """A test client of the production app with a service-account key, Google's certificates answered
    over HTTP by `responses`."""
    import json

    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(service_account()))
    real = production_app(settings, str(key_file))
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as google:
            yield real.test_client(), google
    finally:
        restore_test_firebase(app, settings)


def test_production_without_a_google_credential_refuses_to_start(app, settings, monkeypatch):
    from backend.config import ConfigError

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no gcloud application-default credentials either
    monkeypatch.setattr("google.auth.compute_engine._metadata.is_on_gce", lambda *args, **kwargs: False)
    try:
        with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS"):
            production_app(settings, None)
    finally:
        restore_test_firebase(app, settings)


def test_unsigned_tokens_are_refused_outside_development(production_verification):
    """With real verification, an unsigned (emulator) token is refused before any key fetch."""
    client, google = production_verification
    response = client.get("/api/v1/reports", headers={"Authorization": f"Bearer {CALLERS['staff'].token()}"})
    assert response.status_code == 401 and "not valid" in response.json["message"]
    assert len(google.calls) == 0


@pytest.mark.parametrize("token, status, reason", [
    (lambda: signed_token(), 200, None),
    (lambda: signed_token(FORGER_KEY), 401, "signature"),
    (lambda: signed_token(kid="unknown-key"), 401, "key id"),
    (lambda: signed_token(aud="another-project"), 401, "aud"),
    (lambda: signed_token(iss="https://securetoken.google.com/another-project"), 401, "iss"),
    (lambda: signed_token(exp=1_000_000_000, iat=999_996_400, auth_time=999_996_400), 401, "expired"),
    (lambda: signed_token(sub=""), 401, "sub"),
    (_hs256_with_the_public_certificate, 401, "alg"),
], ids=["signed by Google", "signed by another key", "unknown key id", "wrong audience", "wrong issuer",
        "expired", "no subject", "HS256 with the public certificate"])
def test_production_accepts_only_tokens_google_signed_for_this_project(production_verification, token, status, reason):
    client, google = production_verification
    google.add(responses.GET, CERTS_URL, json={"google-key-1": GOOGLE_CERT})
    response = client.get("/api/v1/reports", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == status, response.json
    if reason:
        assert reason in response.json["message"].lower(), response.json


def test_google_certificates_unreachable_is_503_with_retry_after_not_401(production_verification):
    client, google = production_verification
    google.add(responses.GET, CERTS_URL, status=503)
    response = client.get("/api/v1/reports", headers={"Authorization": f"Bearer {signed_token()}"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


# -- OWASP API3: no property a caller should not see --------------------------------------------------

SECRET_TEXT = "He followed me off the N29 and waited outside"


def test_no_description_or_author_leaks_to_anyone_but_staff_and_the_author(client, world):
    owner = COLUMNS["owner"]
    client.post("/api/v1/reports", json=report_body(description=SECRET_TEXT, location={"type": "Point", "coordinates": PECKHAM}),
                headers=owner.headers(**{"Idempotency-Key": new_key()}))
    reads = ["/api/v1/reports", "/api/v1/reports/{report}", "/api/v1/heatmap?zoom=10&bbox=-0.2,51.4,0,51.6",
             "/api/v1/hotspots", "/api/v1/public/heatmap", "/api/v1/alerts/nearby" + WHERE, "/api/v1/exports"]
    for who in ("anonymous", "other", "council", "other_council"):
        caller = COLUMNS[who]
        for path in reads:
            response = client.get(path.format(**world), headers=caller.headers() if caller else {})
            body = response.get_data(as_text=True)
            assert SECRET_TEXT not in body and owner.uid not in body and "author_id" not in body, (who, path)
    staff_view = client.get("/api/v1/reports", headers=COLUMNS["safety_team"].headers()).get_data(as_text=True)
    assert SECRET_TEXT in staff_view and owner.uid not in staff_view and "author_id" not in staff_view


# -- OWASP API4: unrestricted resource consumption ----------------------------------------------------

@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/api/v1/reports?limit=201", None, 422),
    ("GET", "/api/v1/reports?bbox=-5,50,5,56", None, 422),
    ("GET", "/api/v1/heatmap?zoom=14&bbox=-3,50,3,55", None, 422),
    ("GET", "/api/v1/heatmap?zoom=12", None, 422),  # street-level cells need a bbox
    ("GET", "/api/v1/heatmap?zoom=10&limit=20001", None, 422),
    ("GET", "/api/v1/safe-hubs?limit=2001", None, 422),
    ("GET", "/api/v1/safe-hubs/nearest?lon=0&lat=51&limit=51", None, 422),
    ("GET", "/api/v1/routes/safer?from=-0.1,51.5&to=-0.1,51.6", None, 422),  # 11 km apart
    ("GET", "/api/v1/streets?bbox=-0.2,51.4,0,51.6", None, 422),  # streets in at most 0.1 degrees
    ("GET", "/api/v1/streets?bbox=-0.1,51.5,-0.09,51.51&limit=20001", None, 422),
    ("POST", "/api/v1/exports", {**EXPORT, "from": "2000-01-01", "to": "2026-01-01"}, 422),
    ("POST", "/api/v1/exports", {**{k: v for k, v in EXPORT.items() if k != "council"},
                                 "area": {"type": "Polygon", "coordinates": [[[-9, 50], [0, 50], [0, 58], [-9, 58], [-9, 50]]]}},
     422),
    ("POST", "/api/v1/reports/batch", {"reports": [{**report_body(), "client_id": str(i)} for i in range(101)]}, 422),
])
def test_oversized_requests_are_refused(client, method, path, body, status):
    response = client.open(path, method=method, json=body, headers=CALLERS["staff"].headers())
    assert response.status_code == status, response.json


def test_an_oversized_body_is_413_and_a_long_route_is_422(client):
    huge = {**report_body(), "description": "x" * 300_000}
    assert client.post("/api/v1/reports", json=huge, headers=CALLERS["commuter"].headers()).status_code == 413
    steps = [[-0.1 + 0.0001 * i, 51.5 + 0.00005 * (i % 2)] for i in range(501)]
    route = report_body(category="unsafe_route", subcategory="poor_lighting",
                        route={"type": "LineString", "coordinates": steps})
    assert client.post("/api/v1/reports", json=route, headers=CALLERS["commuter"].headers()).status_code == 422
