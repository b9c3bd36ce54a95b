"""API keys for the ingest routes: off by default, compared in constant time, never repeated.

On with `INGEST_REQUIRE_API_KEY=true`. Keys come from `INGEST_API_KEYS` (a JSON object
`{"key id": "key"}`) and/or `INGEST_API_KEYS_FILE` (one `id:key` per line, `#` comments);
a key shorter than MIN_KEY_CHARS or with fewer than MIN_DISTINCT_CHARS different characters
stops the start. A client sends `Authorization: Bearer <key>`. Every path but the
operational ones (`OPEN_PATHS`; with `INGEST_PROTECT_OPS_ROUTES=true` only /healthz) needs a
key, so a route added later is closed until someone opens it. Every refusal is counted by
reason (`ingest_auth_failures_total{reason}`: missing, malformed, unknown) and logged with
the client's address, at most one line per reason per `INGEST_AUTH_FAILURE_LOG_INTERVAL_S`
(the lines between are counted in the next one).

A key is only ever hashed and compared: the id it maps to is what the rest of the
service sees (in the ASGI scope's state, then as the Kafka record header `KEY_ID_HEADER`),
so a key cannot reach a log line, a metrics label, an error body or the topic.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ConfigError
from service.ingest import RECORD_HEADERS_KEY
from service.settings import Settings

# Kafka record header naming the key that published an event (its id, never the key).
KEY_ID_HEADER = "ingest-key-id"
# Where the middleware leaves the id, in scope["state"] (Starlette's request.state).
STATE_KEY = "ingest_key_id"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/docs/oauth2-redirect",
                        "/openapi.json", "/redoc"})
ALWAYS_OPEN = frozenset({"/healthz"})
# 32 characters: what `secrets.token_urlsafe(24)` gives (192 bits); sixteen `a`s passed before.
MIN_KEY_CHARS = 32
MIN_DISTINCT_CHARS = 8
log = logging.getLogger("service.auth")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CHALLENGE = b'Bearer realm="ingest"'


class KeyRing:
    """Key ids by the SHA-256 of their key.

    Comparing digests with `hmac.compare_digest` over every key, without stopping at a
    match, takes the same time whichever key (if any) matches and however long it is.
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        for key_id, key in keys.items():
            if not _ID.match(key_id):
                raise ConfigError(f"API key id {key_id!r} must match {_ID.pattern}")
            # The messages name the id only: a key must not reach a log, even a weak one.
            if len(key) < MIN_KEY_CHARS:
                raise ConfigError(f"API key {key_id!r} is shorter than {MIN_KEY_CHARS} characters "
                                  "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))')")
            if len(set(key)) < MIN_DISTINCT_CHARS:
                raise ConfigError(f"API key {key_id!r} has fewer than {MIN_DISTINCT_CHARS} different "
                                  "characters: use a random key")
        if not keys:
            raise ConfigError("INGEST_REQUIRE_API_KEY is on but no key is configured "
                              "(INGEST_API_KEYS or INGEST_API_KEYS_FILE)")
        self._digests = [(hashlib.sha256(key.encode()).digest(), key_id)
                         for key_id, key in keys.items()]

    def identify(self, presented: bytes) -> str | None:
        digest = hashlib.sha256(presented).digest()
        found = None
        for known, key_id in self._digests:
            if hmac.compare_digest(digest, known):
                found = key_id
        return found


def read_keys_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror}") from None
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, key = line.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected 'id:key'")
        keys[key_id.strip()] = key.strip()
    return keys


def load_keys(settings: Settings) -> dict[str, str]:
    keys = {key_id: key.get_secret_value() for key_id, key in settings.api_keys.items()}
    if settings.api_keys_file is not None:
        keys.update(read_keys_file(settings.api_keys_file))
    return keys


MISSING, MALFORMED, UNKNOWN = "missing", "malformed", "unknown"


def _bearer(scope: Scope) -> tuple[bytes | None, str]:
    """The presented key, or None and why there is none (MISSING, MALFORMED)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            if scheme.lower() != b"bearer" or not token:
                return None, MALFORMED
            return token, ""
    return None, MISSING


class FailureLog:
    """Counts refused keys by reason and logs them with the client's address, at most one
    line per reason per `interval_s`: a flood of bad keys cannot flood the log."""

    def __init__(self, counter: Any, interval_s: float) -> None:
        self.counter = counter
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def failed(self, reason: str, scope: Scope) -> None:
        self.counter.labels(reason).inc()
        now = time.monotonic()
        if now - self._last.get(reason, -self.interval_s - 1) < self.interval_s:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        self._last[reason] = now
        client = scope.get("client")
        log.warning("API key refused", extra={
            "reason": reason, "client": f"{client[0]}:{client[1]}" if client else None,
            "path": scope.get("path"), "refused_since_last_line": self._held.pop(reason, 0)})


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyRing, failures: FailureLog | None = None,
                 open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self.app = app
        self.keys = keys
        self.failures = failures
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token, why = _bearer(scope)
        key_id = self.keys.identify(token) if token else None
        if key_id is None:
            if self.failures is not None:
                self.failures.failed(why or UNKNOWN, scope)
            await _unauthorized(send, presented=why != MISSING)
            return
        scope.setdefault("state", {})[STATE_KEY] = key_id
        # Both ingest paths put these on every record they publish (service.ingest).
        scope[RECORD_HEADERS_KEY] = [(KEY_ID_HEADER, key_id.encode())]
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, presented: bool) -> None:
    # RFC 6750: error="invalid_token" only when a credential was sent. Nothing of what was
    # sent is repeated, so a mistyped key never lands in a client's or proxy's logs.
    challenge = _CHALLENGE + (b', error="invalid_token"' if presented else b"")
    body = orjson.dumps({"error": "unauthorized", "message": (
        "the API key is not valid" if presented
        else "an API key is required: send 'Authorization: Bearer <key>'")})
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"www-authenticate", challenge),
        (b"content-length", str(len(body)).encode("ascii"))]})
    await send({"type": "http.response.body", "body": body})


def key_ring(settings: Settings) -> KeyRing | None:
    """The configured keys when access control is on, None when it is off."""
    return KeyRing(load_keys(settings)) if settings.require_api_key else None


def access_control(app: ASGIApp, settings: Settings, keys: KeyRing | None,
                   auth_failures: Any = None) -> ASGIApp:
    """`app` behind the API-key check when keys are on (failures counted into
    `auth_failures`, a labelled Prometheus counter), else `app` itself."""
    if keys is None:
        return app
    failures = (FailureLog(auth_failures, settings.auth_failure_log_interval_s)
                if auth_failures is not None else None)
    return ApiKeyMiddleware(app, keys, failures,
                            ALWAYS_OPEN if settings.protect_ops_routes else OPEN_PATHS)
