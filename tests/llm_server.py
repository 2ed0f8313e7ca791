"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and the router benchmark.

It answers ``POST /v1/chat/completions`` with JSON completions (or tool calls) and usage counts, can be
told to answer 408, 409, 429, 500, 503 (with ``Retry-After`` headers), slowly or with malformed JSON,
can behave like a local server that rejects ``json_schema`` response formats, truncates output at the
request's ``max_completion_tokens``, and records every request it receives, so tests can check what
actually crossed the wire (retries, fallbacks, redaction, token usage).

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

# A responder gets the request body and returns the assistant message content (usually JSON text), or a
# whole assistant message (a dict with ``tool_calls``) when it answers with tool calls.
Responder = Callable[[dict[str, Any]], str | dict[str, Any]]
Tokenizer = Callable[[str], int]
ERROR_STATUSES = ("408", "409", "429", "500", "503")
BEHAVIOURS = ("ok", "slow", "malformed", *ERROR_STATUSES)
# What a widely used local server answers to a ``json_schema`` response format it does not support.
UNSUPPORTED_FORMAT_MESSAGE = (
    'response_format type must be one of "text" or "json_object", but got: json_schema'
)


def token_count(text: str) -> int:
    """The server's default tokeniser: four characters a token, like the usual rule of thumb."""
    return math.ceil(len(text) / 4)


def request_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The output schema a request asks for: ``json_schema``, or ``json_object`` with a ``schema``."""
    response_format = body["response_format"]
    if response_format["type"] == "json_schema":
        return response_format["json_schema"]["schema"]
    return response_format["schema"]


def _example_value(spec: dict[str, Any]) -> Any:
    if "enum" in spec:
        return spec["enum"][0]
    return {"string": "ok", "number": 0.9, "integer": 1, "boolean": False, "array": []}[spec["type"]]


def schema_responder(body: dict[str, Any]) -> str:
    """A valid answer for the request's JSON schema: the first enum value, fixed scalars otherwise."""
    schema = request_schema(body)
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
    received_at: float  # time.monotonic() on arrival

    @property
    def model(self) -> str:
        return self.body.get("model", "")


class LLMTestServer:
    """Start with ``with LLMTestServer() as server:``; point the client at ``server.base_url``."""

    def __init__(
        self,
        responder: Responder = schema_responder,
        slow_seconds: float = 2.0,
        tokenizer: Tokenizer = token_count,
        json_schema_supported: bool = True,
        error_headers: Callable[[], dict[str, str]] = dict,
        latency_s: float = 0.0,
    ):
        """``tokenizer`` counts the tokens of the messages and of the serialised response format and tools
        (providers bill those too); ``error_headers`` are sent with every error answer (``Retry-After``);
        ``latency_s`` delays every answer, like a real model's generation time."""
        self.responder = responder
        self.slow_seconds = slow_seconds
        self.tokenizer = tokenizer
        self.json_schema_supported = json_schema_supported
        self.error_headers = error_headers
        self.latency_s = latency_s
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

    def _prompt_tokens(self, body: dict[str, Any]) -> int:
        billed = [message.get("content") or "" for message in body.get("messages", [])]
        billed += [json.dumps(m["tool_calls"]) for m in body.get("messages", []) if m.get("tool_calls")]
        billed += [json.dumps(body[key]) for key in ("response_format", "tools") if key in body]
        return sum(self.tokenizer(text) for text in billed)

    def _limit_output(self, body: dict[str, Any], message: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
        """Like a real server: stop at ``max_completion_tokens`` (``finish_reason="length"``)."""
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        tokens = self.tokenizer(content or "") + (self.tokenizer(json.dumps(tool_calls)) if tool_calls else 0)
        if limit is None or tokens <= limit or content is None:
            return message, "tool_calls" if tool_calls else "stop", tokens
        while content and self.tokenizer(content) > limit:
            content = content[: max(0, len(content) - max(1, len(content) // 8))]
        return {"content": content}, "length", self.tokenizer(content)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real provider

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                received_at = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                body = json.loads(raw)
                if not server.json_schema_supported and _asks_json_schema(body):
                    server._record(_recorded(self, raw, body, "unsupported_format", 0, 0, received_at))
                    self._send(500, {"error": {"code": 500, "message": UNSUPPORTED_FORMAT_MESSAGE}})
                    return
                behaviour = server._next_behaviour(body.get("model", ""))
                prompt_tokens = server._prompt_tokens(body)
                message = None
                if behaviour in ("ok", "slow"):
                    answer = server.responder(body)
                    message = answer if isinstance(answer, dict) else {"content": answer}
                elif behaviour == "malformed":
                    message = {"content": '{"category": "billing", "confidence": '}
                finish_reason, completion_tokens = "stop", 0
                if message is not None:
                    message, finish_reason, completion_tokens = server._limit_output(body, message)
                billed = message is not None
                server._record(
                    _recorded(
                        self,
                        raw,
                        body,
                        behaviour,
                        prompt_tokens if billed else 0,
                        completion_tokens,
                        received_at,
                    )
                )
                if behaviour == "slow":  # recorded first: the client may time out before the answer
                    time.sleep(server.slow_seconds)
                time.sleep(server.latency_s)
                if behaviour in ERROR_STATUSES:
                    kind = {"429": "rate_limit_exceeded", "408": "timeout", "409": "conflict"}
                    error = kind.get(behaviour, "server_error")
                    self._send(
                        int(behaviour), {"error": {"message": error, "type": error}}, server.error_headers()
                    )
                    return
                completion = _completion(
                    body.get("model", ""), message, finish_reason, prompt_tokens, completion_tokens
                )
                self._send(200, completion)

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        return Handler


def _asks_json_schema(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") == "json_schema"


def _recorded(handler, raw, body, behaviour, prompt_tokens, completion_tokens, received_at):
    return RecordedRequest(
        path=handler.path,
        headers={name.lower(): value for name, value in handler.headers.items()},
        raw_body=raw,
        body=body,
        behaviour=behaviour,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        received_at=received_at,
    )


def _completion(
    model: str, message: dict[str, Any], finish_reason: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None} | message,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
