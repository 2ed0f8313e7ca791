"""``make review``: the inbox under uvicorn, on loopback unless the operator explicitly allows more."""

from __future__ import annotations

import argparse
import os

from orchestration_pipelines.review.web.security import check_bind_host
from orchestration_pipelines.settings import default_opstore_url

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def serve(argv: list[str] | None = None) -> None:
    """Serve on ``REVIEW_HOST``:``REVIEW_PORT``; a non-loopback host needs ``REVIEW_ALLOW_REMOTE=1``."""
    parser = argparse.ArgumentParser(prog="python -m orchestration_pipelines.review.web")
    parser.add_argument("--host", default=os.environ.get("REVIEW_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("REVIEW_PORT", DEFAULT_PORT)))
    parser.add_argument("--store-url", default=default_opstore_url())
    args = parser.parse_args(argv)
    allow_remote = _truthy(os.environ.get("REVIEW_ALLOW_REMOTE"))
    host = check_bind_host(args.host, allow_remote=allow_remote)

    import uvicorn

    from orchestration_pipelines.review.web.app import LOOPBACK_HOSTS, create_app

    extra_hosts = [h.strip() for h in os.environ.get("REVIEW_ALLOWED_HOSTS", "").split(",") if h.strip()]
    app = create_app(
        args.store_url,
        allowed_hosts=[*LOOPBACK_HOSTS, host, *extra_hosts],
        secure_cookie=allow_remote,  # beyond loopback the operator must put TLS in front
    )
    uvicorn.run(app, host=host, port=args.port, server_header=False, proxy_headers=False)
