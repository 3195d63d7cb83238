"""``python -m tests.faults.fcm_worker``: the real worker (``python -m worker``), with Google's token
endpoint and FCM's send endpoint answered inside its own process (the `responses` library, as in
tests/alerts/fcm.py), so that firebase-admin's real code sends every push. Used by the fault drills,
which need a worker process they can SIGKILL in the middle of a fan-out.

- ``FAKE_FCM_LOG``: every push FCM accepts is appended to this file, one JSON line
  (``token``, ``alert_id``, the collapse identifiers, ``pid``), with one ``write()`` per line so that
  several workers can share the file.
- ``FAKE_FCM_HOLD``: JSON, alert title -> ``{"after": n, "accept": bool}``. Once this process has
  accepted ``n`` pushes of that alert, every later request for it hangs until the process is killed:
  with ``accept`` false before FCM took it (nothing delivered), with ``accept`` true after (delivered,
  but the answer never reaches the worker). A ``{"held": alert_id}`` line says when holding begins.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter

import responses

from tests.alerts.fcm import PROJECT, SEND_URL, TOKEN_URL


class RecordingFcm:
    def __init__(self, log_path: str, holds: dict[str, dict]) -> None:
        self.fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.holds = holds
        self.accepted: Counter = Counter()  # alert title -> pushes accepted by this process
        self.held: set[str] = set()
        self.lock = threading.Lock()

    def write(self, line: dict) -> None:
        os.write(self.fd, (json.dumps({**line, "pid": os.getpid()}) + "\n").encode())

    def send(self, request):
        message = json.loads(request.body)["message"]
        title = message["notification"]["title"]
        hold = self.holds.get(title)
        with self.lock:
            holding = hold is not None and self.accepted[title] >= hold["after"]
            if holding and title not in self.held:
                self.held.add(title)
                self.write({"held": message["data"]["alert_id"], "accept": hold["accept"]})
            if not holding or hold["accept"]:
                self.accepted[title] += 1
                self.write({
                    "token": message["token"],
                    "alert_id": message["data"]["alert_id"],
                    "collapse": [message.get("android", {}).get("collapse_key"),
                                 message.get("android", {}).get("notification", {}).get("tag"),
                                 message.get("apns", {}).get("headers", {}).get("apns-collapse-id"),
                                 message.get("webpush", {}).get("notification", {}).get("tag")],
                })
        if holding:
            time.sleep(24 * 3600)  # the answer never comes: the drill kills this process
        return 200, {}, json.dumps({"name": f"projects/{PROJECT}/messages/{time.monotonic_ns()}"})


def main() -> None:
    from worker.__main__ import main as worker_main

    fcm = RecordingFcm(os.environ["FAKE_FCM_LOG"], json.loads(os.environ.get("FAKE_FCM_HOLD", "{}")))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "drill", "expires_in": 3600, "token_type": "Bearer"})
        rsps.add_callback(responses.POST, SEND_URL, callback=fcm.send)
        worker_main([])


if __name__ == "__main__":
    main()
