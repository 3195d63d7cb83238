"""FCM intercepted at the HTTP boundary (the `responses` library): firebase-admin's real code runs,
with a throwaway service account; Google's token endpoint and FCM's send endpoint answer from here."""

from __future__ import annotations

import json
from collections import Counter

import firebase_admin
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from firebase_admin import credentials

PROJECT = "demo-safetravel"
TOKEN_URL = "https://oauth2.googleapis.com/token"
SEND_URL = f"https://fcm.googleapis.com/v1/projects/{PROJECT}/messages:send"


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def service_account() -> dict:
    pem = private_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return {"type": "service_account", "project_id": PROJECT, "private_key_id": "test-key", "private_key": pem,
            "client_email": f"tests@{PROJECT}.iam.gserviceaccount.com", "client_id": "1", "token_uri": TOKEN_URL}


def fcm_error(status: int, code: str, error_code: str | None, message: str = "") -> tuple[int, dict, str]:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}] \
        if error_code else []
    return status, {}, json.dumps({"error": {"code": status, "message": message or code, "status": code,
                                             "details": details}})


class FakeFcm:
    """Answers FCM sends by token: 'dead' tokens are UNREGISTERED, 'bad' ones invalid; 'quota' tokens
    fail with QUOTA_EXCEEDED once; 'busy' tokens with 503 five times (firebase-admin's HTTP client
    itself retries a 503 four times, so the first job sees a failure and the next succeeds)."""

    def __init__(self, rsps: responses.RequestsMock, failures: dict[str, int] | None = None) -> None:
        self.sends: Counter = Counter()  # token -> accepted sends
        self.attempts: Counter = Counter()
        self.failures = failures or {"quota": 1, "busy": 5}
        self.payloads: list[dict] = []
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "test", "expires_in": 3600, "token_type": "Bearer"})
        rsps.add_callback(responses.POST, SEND_URL, callback=self._send)

    def _send(self, request):
        message = json.loads(request.body)["message"]
        token = message["token"]
        self.attempts[token] += 1
        if "dead" in token:
            return fcm_error(404, "NOT_FOUND", "UNREGISTERED")
        if "bad" in token:
            return fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                             "The registration token is not a valid FCM registration token")
        if "quota" in token and self.attempts[token] <= self.failures["quota"]:
            return fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
        if "busy" in token and self.attempts[token] <= self.failures["busy"]:
            return fcm_error(503, "UNAVAILABLE", None)
        self.sends[token] += 1
        self.payloads.append(message)
        return 200, {}, json.dumps({"name": f"projects/{PROJECT}/messages/{self.attempts.total()}"})


def firebase_test_app() -> firebase_admin.App:
    try:
        return firebase_admin.get_app("fcm-tests")
    except ValueError:
        return firebase_admin.initialize_app(credentials.Certificate(service_account()),
                                             {"projectId": PROJECT}, name="fcm-tests")
