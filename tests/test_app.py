"""Configuration, health checks, the OpenAPI document, and behaviour when PostgreSQL is down."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from backend import create_app
from backend.config import ConfigError, Settings
from backend.devserver import free_port
from backend.devtokens import emulator_token
from backend.extensions import db
from tests.factories import report_body


def test_production_refuses_to_start_with_the_auth_emulator_set():
    with pytest.raises(ConfigError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        Settings.from_env({"APP_ENV": "production", "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
                           "FIREBASE_PROJECT_ID": "safetravel-prod"})


def test_production_needs_a_real_project_id():
    with pytest.raises(ConfigError, match="FIREBASE_PROJECT_ID"):
        Settings.from_env({"APP_ENV": "production"})


@pytest.mark.parametrize("secret", [None, "too-short", "development-public-noise-secret-not-for-production"])
def test_production_needs_a_public_noise_secret_of_its_own(secret):
    env = {"APP_ENV": "production", "FIREBASE_PROJECT_ID": "safetravel-prod"}
    with pytest.raises(ConfigError, match="PUBLIC_NOISE_SECRET"):
        Settings.from_env({**env, **({"PUBLIC_NOISE_SECRET": secret} if secret else {})})
    assert Settings.from_env({**env, "PUBLIC_NOISE_SECRET": "0123456789abcdef" * 4}).public_noise_secret


@pytest.mark.parametrize("value", ["0", "-1", "eleven", "11"])
def test_public_epsilon_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="PUBLIC_EPSILON"):
        Settings.from_env({"PUBLIC_EPSILON": value})


def test_development_defaults_to_the_emulator_convention():
    settings = Settings.from_env({})
    assert settings.app_env == "development"
    assert settings.firebase_project_id == "demo-safetravel"
    assert settings.firebase_auth_emulator_host


@pytest.mark.parametrize("env, message", [
    ({"APP_ENV": "staging"}, "APP_ENV"),
    ({"PORT": "eighty"}, "PORT"),
    ({"PUBLIC_MIN_REPORTERS": "0"}, "PUBLIC_MIN_REPORTERS"),
    ({"CITY_TIMEZONE": "Mars/Olympus"}, "CITY_TIMEZONE"),
])
def test_bad_configuration_is_refused_with_a_clear_message(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_libpq_style_database_urls_are_accepted():
    assert Settings.from_env({"DATABASE_URL": "postgres://u@h/db"}).database_url == "postgresql+psycopg://u@h/db"


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_openapi_document_describes_the_contract(client):
    spec = client.get("/api/openapi.json").json
    for path in ("/api/v1/reports", "/api/v1/reports/batch", "/api/v1/reports/{report_id}", "/api/v1/me/reports",
                 "/api/v1/me", "/api/v1/councils", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert spec["components"]["securitySchemes"]["firebase"]["scheme"] == "bearer"
    post = spec["paths"]["/api/v1/reports"]["post"]
    assert post["security"] == [{"firebase": []}]
    assert {"201", "401", "403", "409", "422"} <= set(post["responses"])
    assert client.get("/api/docs").status_code == 200
    assert client.get("/api/docs/static/swagger-ui-bundle.js").status_code == 200


def test_unknown_path_and_method_answer_json(client, commuter):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json["code"] == 404
    wrong = client.put("/api/v1/reports", json={}, headers=commuter.headers())
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


def test_councils_are_listed_for_signed_in_users(client, commuter):
    response = client.get("/api/v1/councils", headers=commuter.headers())
    assert response.status_code == 200
    assert len(response.json) == 33
    assert {"code": "E09000028", "name": "Southwark"} in response.json
    assert client.get("/api/v1/councils").status_code == 401


@pytest.fixture
def app_without_database(settings):
    """An app whose PostgreSQL is down (nothing listens on its port)."""
    broken = create_app(replace(settings, database_url=f"postgresql+psycopg://safetravel@127.0.0.1:{free_port()}/x"))
    yield broken
    db.configure(settings)


def test_database_down_answers_503_with_retry_after_not_500(app_without_database, commuter):
    client = app_without_database.test_client()
    response = client.post("/api/v1/reports", json=report_body(), headers=commuter.headers())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json["code"] == 503 and "Traceback" not in response.get_data(as_text=True)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["database"].startswith("unavailable")


def test_an_overlong_query_string_is_a_json_414(client, staff):
    response = client.get("/api/v1/heatmap?" + "&".join(["category=spiking"] * 300), headers=staff.headers())
    assert response.status_code == 414 and response.json["code"] == 414 and "4,096" in response.json["message"]


# -- emulator tokens are checked as Google's would be (development behaves as production) ------------

# Times are taken when the test runs, not when it is collected (a long suite reaches it much later).
@pytest.mark.parametrize("claims, reason", [
    (lambda now: {"lifetime_s": 10 * 365 * 86400}, "longer than Firebase's 60 minutes"),
    (lambda now: {"lifetime_s": 3601}, "longer than Firebase's 60 minutes"),
    (lambda now: {"nbf": int(now) + 600}, "not valid yet"),
    (lambda now: {"nbf": "soon"}, "not valid yet"),
    (lambda now: {"issued_at": now - 7200}, "expired"),
    (lambda now: {"issued_at": now + 600}, "issued in the future"),
])
def test_emulator_tokens_firebase_would_never_issue_are_refused(client, claims, reason):
    token = emulator_token("odd-claims", **claims(time.time()))
    response = client.get("/api/v1/me/reports", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and reason in response.json["message"]


def test_an_hour_long_emulator_token_with_a_past_nbf_is_accepted(client):
    token = emulator_token("ordinary", lifetime_s=3600, nbf=int(time.time()) - 5)
    assert client.get("/api/v1/me/reports", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_cluster_settings_come_from_the_environment_and_the_old_name_is_refused():
    settings = Settings.from_env({"CLUSTER_MIN_REPORTERS": "5", "CLUSTER_AUTO_PUBLIC_PUSH": "true",
                                  "BASEMAP_ORIGINS": "https://tiles.example.org, https://fonts.example.org:8443/"})
    assert (settings.cluster_min_reporters, settings.cluster_auto_public_push) == (5, True)
    assert settings.basemap_origins == ("https://tiles.example.org", "https://fonts.example.org:8443")
    assert Settings.from_env({}).cluster_auto_public_push is False
    with pytest.raises(ConfigError, match="CLUSTER_MIN_REPORTERS"):
        Settings.from_env({"CLUSTER_MIN_REPORTS": "3"})
    with pytest.raises(ConfigError, match="CLUSTER_AUTO_PUBLIC_PUSH"):
        Settings.from_env({"CLUSTER_AUTO_PUBLIC_PUSH": "sometimes"})
