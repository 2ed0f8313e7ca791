"""Connectors: deliver one effect to an outside system, at most one effect per idempotency key.

Every delivery carries an idempotency key. Over HTTP it is the ``Idempotency-Key`` header, as payment
and ticketing APIs expect: the receiver keeps one effect per key, so a retry after a lost response, or
a second delivery after a worker died before recording the first, changes nothing. Transient failures
(connection errors, timeouts, 408, 425, 429, any 5xx) are retried with exponential back-off; any other
4xx is refused at once, since sending it again cannot help.

With no endpoint configured, a ``FileSink`` records each key as one file under the data directory,
created atomically and never overwritten, so the product runs without a network and keeps the same
once-per-key guarantee.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

RETRYABLE_4XX = frozenset({408, 425, 429})
MAX_RETRY_AFTER_SECONDS = 30.0
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class DeliveryFailed(RuntimeError):
    """The receiver did not accept the message after every retry; trying again later may succeed."""


class DeliveryRefused(DeliveryFailed):
    """The receiver refused the message (a 4xx other than 408/425/429), or no connector can send it:
    sending it again cannot succeed, a person has to look."""


def is_retryable_status(code: int) -> bool:
    return code >= 500 or code in RETRYABLE_4XX


def _retry_after(exc: urllib.error.HTTPError) -> float:
    """The receiver's ``Retry-After`` in seconds (numeric form only), capped; 0 when absent."""
    try:
        return min(float(exc.headers.get("Retry-After", 0)), MAX_RETRY_AFTER_SECONDS)
    except (TypeError, ValueError):
        return 0.0


def post_json(
    url: str,
    payload: dict[str, Any],
    key: str,
    attempts: int,
    backoff_seconds: float,
    timeout_seconds: float = 10.0,
) -> int:
    """POST ``payload`` with ``Idempotency-Key: key``; retry transient failures with exponential back-off
    (or the receiver's ``Retry-After`` when longer). Returns the attempts used; raises ``DeliveryRefused``
    on a permanent refusal and ``DeliveryFailed`` when every attempt failed."""
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    last_error = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        wait = backoff_seconds * 2 ** (attempt - 1)
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
                if 200 <= response.status < 300:
                    return attempt
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last_error = f"HTTP {exc.code}"
            if not is_retryable_status(exc.code):
                raise DeliveryRefused(f"{url} refused {key}: {last_error}") from exc
            wait = max(wait, _retry_after(exc))
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            time.sleep(wait)
    raise DeliveryFailed(f"{url} did not accept {key} after {attempts} attempts: {last_error}")


class Connector(Protocol):
    """Delivers the actions it names; raises ``DeliveryFailed`` (try later) or ``DeliveryRefused``."""

    actions: frozenset[str]

    def deliver(self, action: str, idempotency_key: str, payload: dict[str, Any]) -> str:
        """Deliver once per key; returns a short receipt for the audit entry."""
        ...


def checked_action(name: str, actions: frozenset[str], action: str) -> str:
    """``action`` when connector ``name`` delivers it; else refused (no retry can fix a wrong route)."""
    if action not in actions:
        raise DeliveryRefused(f"{name} does not deliver {action!r} (it delivers {sorted(actions)})")
    return action


def checked_name(name: str) -> str:
    """A connector or action name that is safe as one path segment."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a valid name: lowercase letters, digits and '_', at most 64")
    return name


class HttpConnector:
    """POSTs each action's payload to ``{base_url}/{action}`` with the idempotency key."""

    def __init__(
        self,
        name: str,
        base_url: str,
        actions: Iterable[str],
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 10.0,
    ):
        self.name = checked_name(name)
        self.base_url = base_url.rstrip("/")
        self.actions = frozenset(checked_name(a) for a in actions)
        self.attempts, self.backoff_seconds, self.timeout_seconds = attempts, backoff_seconds, timeout_seconds

    def deliver(self, action: str, idempotency_key: str, payload: dict[str, Any]) -> str:
        url = f"{self.base_url}/{checked_action(self.name, self.actions, action)}"
        used = post_json(url, payload, idempotency_key, self.attempts, self.backoff_seconds,
                         self.timeout_seconds)  # fmt: skip
        return f"{self.name}: accepted by {url} after {used} attempt(s)"


class FileSink:
    """One JSON file per idempotency key under ``folder``: the local stand-in for a service."""

    def __init__(self, name: str, folder: Path, actions: Iterable[str]):
        self.name = checked_name(name)
        self.folder = Path(folder)
        self.actions = frozenset(checked_name(a) for a in actions)

    def path_for(self, idempotency_key: str) -> Path:
        """Keys are outside names: hashed, so no key can reach beyond the folder."""
        return self.folder / f"{hashlib.sha256(idempotency_key.encode()).hexdigest()}.json"

    def deliver(self, action: str, idempotency_key: str, payload: dict[str, Any]) -> str:
        checked_action(self.name, self.actions, action)
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path_for(idempotency_key)
        record = {
            "action": action,
            "idempotency_key": idempotency_key,
            "payload": payload,
            "recorded_at": datetime.now(UTC).isoformat(),
        }
        staging = self.folder / f".{target.stem}.{uuid.uuid4().hex}.tmp"
        with open(staging, "w") as handle:
            json.dump(record, handle, sort_keys=True, default=str)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(staging, target)  # atomic, and refuses to replace: the first record of a key wins
        except FileExistsError:
            return f"{self.name}: already recorded in {target}"
        finally:
            staging.unlink()
        return f"{self.name}: recorded in {target}"

    def records(self) -> list[dict[str, Any]]:
        """Every recorded delivery, oldest first."""
        paths = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        return [json.loads(p.read_text()) for p in paths]


def connectors_by_action(*connectors: Connector) -> dict[str, Connector]:
    """Action name -> the one connector that delivers it; two connectors claiming one action is an error."""
    routes: dict[str, Connector] = {}
    for connector in connectors:
        for action in connector.actions:
            if action in routes:
                raise ValueError(f"two connectors deliver {action!r}")
            routes[action] = connector
    return routes
