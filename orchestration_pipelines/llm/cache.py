"""Response cache in the operational store, keyed by prompt id, prompt version, model and redacted input.

Only validated outputs are cached, and the key is computed from the redacted messages, so the cache
holds no PII and a repeated request costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from orchestration_pipelines.opstore import OpStore


def cache_key(prompt_id: str, prompt_version: str, model: str, messages: list[dict[str, str]]) -> str:
    payload = json.dumps([prompt_id, prompt_version, model, messages], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class ResponseCache:
    def __init__(self, store: OpStore):
        self.store = store

    def get(self, key: str) -> str | None:
        with self.store.transaction() as cur:
            row = cur.execute("SELECT output FROM llm_response_cache WHERE cache_key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, prompt_id: str, prompt_version: str, model: str, output: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT INTO llm_response_cache"
                " (cache_key, prompt_id, prompt_version, model, output, created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (cache_key) DO NOTHING",
                (key, prompt_id, prompt_version, model, output, datetime.now(UTC).isoformat()),
            )
