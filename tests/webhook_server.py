"""A real HTTP receiver on 127.0.0.1 that fails for a while and then recovers, for connector tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FlakyReceiver:
    """Answers ``fail_status`` to the first ``failures`` POSTs, then 200; records every request.

    Like a real maintenance system, card service or payment API it stores each ``Idempotency-Key`` once
    (``accepted``: one effect per key). The first ``slow_replies`` accepted requests are answered only
    after ``slow_seconds``: the effect happened, but a client with a shorter timeout never hears so.
    """

    def __init__(
        self, failures: int = 0, fail_status: int = 503, slow_replies: int = 0, slow_seconds: float = 0.0
    ):
        self.failures = failures
        self.fail_status = fail_status
        self.slow_replies = slow_replies
        self.slow_seconds = slow_seconds
        self.requests: list[dict[str, Any]] = []
        self.accepted: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with receiver._lock:
                    receiver.requests.append({"key": key, "body": body, "path": self.path})
                    failing = receiver.failures > 0
                    if failing:
                        receiver.failures -= 1
                    else:
                        receiver.accepted.setdefault(key, body)
                    slow = not failing and receiver.slow_replies > 0
                    receiver.slow_replies -= slow
                if slow:
                    time.sleep(receiver.slow_seconds)
                self.send_response(receiver.fail_status if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self.url = f"{self.base_url}/work-orders"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
