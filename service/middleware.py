"""Request counting as plain ASGI middleware (BaseHTTPMiddleware costs too much per request)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics

# The methods a label may name. Any other becomes "other": h11 passes every token a
# client sends as the method, and each would otherwise be a new series (and a new
# cached child below) for as long as the process lives.
LABELLED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in LABELLED_METHODS else "other"


class RequestCounter:
    """`ingest_http_requests_total` by route template, method and status, each from a fixed
    set (the callers pass a template or "unmatched", and a `method_label`).

    labels() takes a lock and builds a key each call; the label sets are few, so their
    children are kept. Shared by this middleware and the ingest hot path, which counts
    the requests it answers itself.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.requests = metrics.requests
        self._children: dict[tuple[str, str, int], Any] = {}

    def count(self, template: str, method: str, status: int) -> None:
        key = (template, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(template, method, str(status))
        child.inc()


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, counter: RequestCounter) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The route template, never the raw path: unknown paths must not grow labels.
            route = scope.get("route")
            self.counter.count(getattr(route, "path", None) or "unmatched",
                               method_label(scope["method"]), status)
