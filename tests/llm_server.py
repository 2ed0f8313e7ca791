"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and the router benchmark.

It answers ``POST /v1/chat/completions`` with JSON completions and usage counts, can be told to answer
429, 500, slowly or with malformed JSON, and records every request it receives, so tests can check
what actually crossed the wire (retries, fallbacks, redaction, token usage).

It lives in ``tests/`` because it is test infrastructure that must not ship in the product package;
``benchmarks/router.py`` loads this file by path (``tests/`` is not a package).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A responder gets the request body and returns the assistant message content (usually JSON text).
Responder = Callable[[dict[str, Any]], str]
BEHAVIOURS = ("ok", "429", "500", "slow", "malformed")


def token_count(text: str) -> int:
    """The server's tokeniser: four characters a token, like the usual rule of thumb."""
    return math.ceil(len(text) / 4)


def _example_value(spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return spec["enum"][0]
    return {"string": "ok", "number": 0.9, "integer": 1, "boolean": False, "array": []}[spec["type"]]


def schema_responder(body: dict[str, Any]) -> str:
    """A valid answer for the request's JSON schema: the first enum value, fixed scalars otherwise."""
    schema = body["response_format"]["json_schema"]["schema"]
    return json.dumps({name: _example_value(spec) for name, spec in schema["properties"].items()})


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    raw_body: str
    body: dict[str, Any]
    behaviour: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def model(self) -> str:
        return self.body.get("model", "")


class LLMTestServer:
    """Start with ``with LLMTestServer() as server:``; point the client at ``server.base_url``."""

    def __init__(self, responder: Responder = schema_responder, slow_seconds: float = 2.0):
        self.responder = responder
        self.slow_seconds = slow_seconds
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str | None, deque[str]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-test-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *behaviours: str, model: str | None = None) -> None:
        """Queue behaviours for the next requests (to ``model`` only, if given); then back to ``ok``."""
        unknown = set(behaviours) - set(BEHAVIOURS)
        if unknown:
            raise ValueError(f"unknown behaviours {sorted(unknown)}; choose from {BEHAVIOURS}")
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    def __enter__(self) -> LLMTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_behaviour(self, model: str) -> str:
        with self._lock:
            for key in (model, None):
                if self._scripts.get(key):
                    return self._scripts[key].popleft()
        return "ok"

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real provider

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                body = json.loads(raw)
                behaviour = server._next_behaviour(body.get("model", ""))
                prompt_tokens = sum(token_count(m.get("content") or "") for m in body.get("messages", []))
                content = None
                if behaviour in ("ok", "slow"):
                    content = server.responder(body)
                elif behaviour == "malformed":
                    content = '{"category": "billing", "confidence": '
                completion_tokens = token_count(content) if content is not None else 0
                billed = content is not None
                server._record(
                    RecordedRequest(
                        path=self.path,
                        headers={name.lower(): value for name, value in self.headers.items()},
                        raw_body=raw,
                        body=body,
                        behaviour=behaviour,
                        prompt_tokens=prompt_tokens if billed else 0,
                        completion_tokens=completion_tokens,
                    )
                )
                if behaviour == "slow":  # recorded first: the client may time out before the answer
                    time.sleep(server.slow_seconds)
                if behaviour in ("429", "500"):
                    kind = "rate_limit_exceeded" if behaviour == "429" else "server_error"
                    self._send(int(behaviour), {"error": {"message": kind, "type": kind}})
                    return
                self._send(200, _completion(body.get("model", ""), content, prompt_tokens, completion_tokens))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        return Handler


def _completion(model: str, content: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
