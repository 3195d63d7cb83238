"""Small edges found by driving the API from outside: what a 401 says, an oversized header, a
`days` filter with trailing junk, a council code that is well formed but unknown."""

from __future__ import annotations

import os
import signal

import pytest
import requests

from backend.devserver import free_port, start_api
from tests.factories import Caller

JUNK_TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-looking-junk-" + "k" * 80


def test_a_refused_token_is_not_echoed_back(client):
    response = client.get("/api/v1/me/reports", headers={"Authorization": f"Bearer {JUNK_TOKEN}"})
    assert response.status_code == 401
    assert response.json["message"].startswith("The ID token is not valid")
    assert "secret-looking-junk" not in response.get_data(as_text=True)
    assert "k" * 60 not in response.get_data(as_text=True)


@pytest.mark.parametrize("days", ["tue;drop", "tue\x00", "tuesday", "tue,", "mon-fri-sat"])
def test_days_must_match_as_a_whole(client, staff, days):
    response = client.get("/api/v1/hotspots", query_string={"days": days}, headers=staff.headers())
    assert response.status_code == 422, response.json
    assert "days" in response.json["errors"]


def test_days_well_formed_are_accepted(client, staff):
    response = client.get("/api/v1/hotspots", query_string={"days": "FRI,sat-mon"}, headers=staff.headers())
    assert response.status_code == 200, response.json


def test_a_council_code_well_formed_but_unknown_answers_403(client):
    unknown = Caller("council-nowhere", role="council", council="E09999999")
    response = client.get("/api/v1/reports", headers=unknown.headers())
    assert response.status_code == 403
    assert "names no council area" in response.json["message"]
    known = Caller("council-southwark", role="council", council="E09000028")
    assert client.get("/api/v1/reports", headers=known.headers()).status_code == 200


@pytest.fixture(scope="module")
def gunicorn(settings):
    port = free_port()
    process = start_api(settings.database_url, settings.redis_url, port)
    yield f"http://127.0.0.1:{port}"
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


@pytest.mark.parametrize("size", [8 * 1024 + 1, 60 * 1024])
def test_an_oversized_token_gets_the_json_error_not_gunicorns_page(gunicorn, size):
    response = requests.get(f"{gunicorn}/api/v1/me/reports", headers={"Authorization": "Bearer " + "a" * size},
                            timeout=10)
    assert response.status_code == 431
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["errors"] == {"Authorization": ["at most 8,192 bytes"]}
