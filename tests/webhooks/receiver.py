"""A partner's webhook receiver: a real HTTP server on loopback that checks every delivery's signature
with the `standardwebhooks` package (as a partner would), and can be told to fail, answer 410, or go
away and come back on the same port."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from backend.devserver import free_port


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    body: str
    verified: bool
    answered: int
    at: float = field(default_factory=time.monotonic)

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.secret: str | None = None
        self.received: list[Received] = []
        # How to answer: "ok" (204), "fail_first" (500 the first time a webhook-id is seen), "fail" (500), "gone" (410).
        self.mode = "ok"
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/safetravel"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                headers = {k: v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                with receiver._lock:
                    seen = any(r.webhook_id == headers.get("webhook-id") for r in receiver.received)
                    status = {"ok": 204, "fail": 500, "gone": 410}.get(receiver.mode) or (204 if seen else 500)
                    if not verified:
                        status = 401
                    receiver.received.append(Received(headers.get("webhook-id", ""), headers.get("webhook-timestamp", ""),
                                                      headers.get("webhook-signature", ""), body, verified, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        """The deliveries it took (answered 2xx)."""
        return [r for r in self.received if 200 <= r.answered < 300]
