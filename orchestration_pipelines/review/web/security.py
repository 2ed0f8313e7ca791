"""What keeps the reviewer inbox private: loopback binding, the session secret, CSRF tokens, headers.

The inbox decides on card blocks and customer replies, so it is served on loopback only unless an
operator says otherwise, every form carries a per-session synchronizer token, and every response
forbids framing, sniffing and third-party content.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = ("localhost",)
SECRET_FILE_NAME = "review_session_secret"
CSRF_FIELD = "csrf_token"
_CSRF_SESSION_KEY = "csrf"

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)


class RemoteBindRefused(ValueError):
    """Raised when asked to listen beyond loopback without the explicit allow flag."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; any other name or address is remote."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, allow_remote: bool) -> str:
    """The host to bind, refusing a non-loopback one unless ``allow_remote`` is set."""
    if not host:
        raise RemoteBindRefused("REVIEW_HOST is empty: give an address such as 127.0.0.1")
    if not is_loopback(host) and not allow_remote:
        raise RemoteBindRefused(
            f"refusing to serve the review inbox on {host!r}, which is not a loopback address; "
            "set REVIEW_ALLOW_REMOTE=1 to allow it (and put TLS in front of it)"
        )
    return host


def session_secret(data_dir: Path) -> str:
    """``REVIEW_SESSION_SECRET`` if set, else a random secret kept in ``data_dir`` (mode 0600).

    Created once with O_EXCL so two servers starting together agree on one secret.
    """
    configured = os.environ.get("REVIEW_SESSION_SECRET")
    if configured:
        if len(configured) < 32:
            raise ValueError("REVIEW_SESSION_SECRET must be at least 32 characters")
        return configured
    path = data_dir / SECRET_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if len(secret) < 32:
            raise ValueError(f"{path} holds no usable secret: delete it to have a new one made") from None
        return secret
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def csrf_token(session: dict) -> str:
    """This session's synchronizer token, made on first use."""
    token = session.get(_CSRF_SESSION_KEY)
    if not token:
        token = session[_CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_valid(session: dict, submitted: object) -> bool:
    expected = session.get(_CSRF_SESSION_KEY)
    return bool(expected) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every HTTP response the app sends."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
