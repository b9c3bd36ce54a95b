"""API keys: off by default, compared in constant time, never repeated; every failure counted.

On with `INGEST_REQUIRE_API_KEY=true` for the ingest routes and `INGEST_REQUIRE_OPS_KEY=true`
for the operational ones (`OPS_PATHS`: readiness, metrics, the OpenAPI pages; `/healthz`
stays open for liveness probes). Keys come from `INGEST_API_KEYS` (a JSON object
`{"key id": "key"}`) and/or `INGEST_API_KEYS_FILE` (one `id:key` per line, `#` comments);
the operational routes take their own (`INGEST_OPS_API_KEYS[_FILE]`, which open nothing
else) when any is configured, else the ingest keys. A client sends
`Authorization: Bearer <key>`. Every path but the operational ones needs an ingest key,
so a route added later is closed until someone opens it.

A key is only ever hashed and compared: the id it maps to is what the rest of the
service sees (in the ASGI scope's state, then as the Kafka record header `KEY_ID_HEADER`),
so a key cannot reach a log line, a metrics label, an error body or the topic. A refusal
is counted by reason (`ingest_auth_failures_total`) and logged with the client's address,
at most `AuthFailures.BURST` lines at once and one a second after that.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path

import orjson
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ConfigError
from service.ingest import RECORD_HEADERS_KEY
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service.auth")

# Kafka record header naming the key that published an event (its id, never the key).
KEY_ID_HEADER = "ingest-key-id"
# Where the middleware leaves the id, in scope["state"] (Starlette's request.state).
STATE_KEY = "ingest_key_id"
# Never behind a key: a liveness probe must not need a credential to find the process alive.
ALWAYS_OPEN = frozenset({"/healthz"})
OPS_PATHS = frozenset({"/readyz", "/metrics", "/docs", "/docs/oauth2-redirect",
                       "/openapi.json", "/redoc"})
# A key must be long and not a placeholder: 32 characters is 192 bits as
# `secrets.token_urlsafe(24)` draws them; 8 different characters refuses "aaaa...",
# "abab..." and the like, while a random key of 32 characters has fewer than 8 different
# ones with a probability below 1e-5 even drawn from 16 (hex).
MIN_KEY_CHARS = 32
MIN_KEY_DISTINCT_CHARS = 8
_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CHALLENGE = b'Bearer realm="ingest"'


class Failure(StrEnum):
    """Why a request was refused 401: the `reason` label, a fixed set."""

    MISSING = "missing"  # no Authorization header
    MALFORMED = "malformed"  # not `Bearer <token>`, or an empty token
    UNKNOWN_KEY = "unknown_key"  # a well-formed token that is no configured key


def check_key_strength(key_id: str, key: str) -> None:
    """Refuse a weak key at start; the message names the id only, never the key."""
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"API key {key_id!r} is shorter than {MIN_KEY_CHARS} characters "
                          "(make one with: python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))')")
    if len(set(key)) < MIN_KEY_DISTINCT_CHARS:
        raise ConfigError(f"API key {key_id!r} has fewer than {MIN_KEY_DISTINCT_CHARS} "
                          "different characters: a placeholder, not a random key")


class KeyRing:
    """Key ids by the SHA-256 of their key.

    Comparing digests with `hmac.compare_digest` over every key, without stopping at a
    match, takes the same time whichever key (if any) matches and however long it is.
    """

    def __init__(self, keys: Mapping[str, str], required_by: str = "INGEST_REQUIRE_API_KEY",
                 source: str = "INGEST_API_KEYS or INGEST_API_KEYS_FILE") -> None:
        for key_id, key in keys.items():
            if not _ID.match(key_id):
                raise ConfigError(f"API key id {key_id!r} must match {_ID.pattern}")
            check_key_strength(key_id, key)
        if not keys:
            raise ConfigError(f"{required_by} is on but no key is configured ({source})")
        self._digests = [(hashlib.sha256(key.encode()).digest(), key_id)
                         for key_id, key in keys.items()]

    def identify(self, presented: bytes) -> str | None:
        digest = hashlib.sha256(presented).digest()
        found = None
        for known, key_id in self._digests:
            if hmac.compare_digest(digest, known):
                found = key_id
        return found

    def shared_ids(self, other: KeyRing) -> list[str]:
        """Ids of keys in this ring that `other` holds too."""
        theirs = {digest for digest, _ in other._digests}
        return sorted(key_id for digest, key_id in self._digests if digest in theirs)


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


def _load(inline: Mapping[str, SecretStr], path: Path | None) -> dict[str, str]:
    keys = {key_id: key.get_secret_value() for key_id, key in inline.items()}
    if path is not None:
        keys.update(read_keys_file(path))
    return keys


def load_keys(settings: Settings) -> dict[str, str]:
    return _load(settings.api_keys, settings.api_keys_file)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else b""
    return None


class AuthFailures:
    """Counts every refusal by reason; logs them, at most `BURST` lines at once and then
    `PER_SECOND`, each line saying how many were not logged since the one before.

    The limit is a token bucket: a flood of bad keys costs a line a second, not a line a
    request, and a single misconfigured client is still logged at once.
    """

    BURST = 10
    PER_SECOND = 1.0

    def __init__(self, metrics: Metrics) -> None:
        self._counters = {reason: metrics.auth_failures.labels(reason.value)
                          for reason in Failure}
        self._tokens = float(self.BURST)
        self._refilled = time.monotonic()
        self._unlogged = 0

    def record(self, reason: Failure, scope: Scope) -> None:
        self._counters[reason].inc()
        now = time.monotonic()
        self._tokens = min(self.BURST, self._tokens + (now - self._refilled) * self.PER_SECOND)
        self._refilled = now
        if self._tokens < 1:
            self._unlogged += 1
            return
        self._tokens -= 1
        client = scope.get("client")
        log.warning("authentication failed", extra={
            "reason": reason.value, "path": scope["path"][:200],
            "client": f"{client[0]}:{client[1]}" if client else None,
            "not_logged_since_last": self._unlogged})
        self._unlogged = 0


class ApiKeyMiddleware:
    """The key ring each path needs (None: open), checked before anything else runs."""

    def __init__(self, app: ASGIApp, ingest: KeyRing | None, ops: KeyRing | None,
                 failures: AuthFailures) -> None:
        self.app = app
        self.ingest = ingest
        self.ops = ops
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        ring = self.ops if path in OPS_PATHS else self.ingest
        if ring is None or path in ALWAYS_OPEN:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        key_id = ring.identify(token) if token else None
        if key_id is None:
            reason = (Failure.MISSING if token is None
                      else Failure.MALFORMED if not token else Failure.UNKNOWN_KEY)
            self.failures.record(reason, scope)
            await _unauthorized(send, presented=token is not None)
            return
        scope.setdefault("state", {})[STATE_KEY] = key_id
        if ring is self.ingest:
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
    """The ingest keys when access control is on, None when it is off."""
    return KeyRing(load_keys(settings)) if settings.require_api_key else None


def ops_key_ring(settings: Settings, ingest: KeyRing | None) -> KeyRing | None:
    """The keys of the operational routes: their own when configured, else the ingest ones
    (loaded even when the ingest routes are open); None when those routes are open."""
    if not settings.require_ops_key:
        return None
    own = _load(settings.ops_api_keys, settings.ops_api_keys_file)
    if not own:
        return ingest or KeyRing(load_keys(settings), "INGEST_REQUIRE_OPS_KEY",
                                 "INGEST_OPS_API_KEYS[_FILE] or INGEST_API_KEYS[_FILE]")
    ops = KeyRing(own, "INGEST_REQUIRE_OPS_KEY", "INGEST_OPS_API_KEYS or INGEST_OPS_API_KEYS_FILE")
    shared = ops.shared_ids(ingest) if ingest is not None else []
    if shared:
        raise ConfigError(f"ops keys {shared} are also ingest keys: an ops key must open "
                          "nothing but the operational routes")
    return ops


def access_control(settings: Settings, metrics: Metrics) -> Callable[[ASGIApp], ASGIApp] | None:
    """What puts an app behind the keys the settings ask for, None when every route is open.
    The keys are loaded here, so a bad key file or a weak key stops the start."""
    ingest = key_ring(settings)
    ops = ops_key_ring(settings, ingest)
    if ingest is None and ops is None:
        return None
    return functools.partial(ApiKeyMiddleware, ingest=ingest, ops=ops,
                             failures=AuthFailures(metrics))


def open_beyond_loopback(settings: Settings) -> bool:
    """True when the service listens on more than loopback with the ingest routes open:
    anyone who reaches the port can publish. A host name other than localhost counts as
    beyond (it is not resolved here)."""
    if settings.require_api_key:
        return False
    host = settings.host.strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True
