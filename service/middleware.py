"""Request counting as plain ASGI middleware (BaseHTTPMiddleware costs too much per request)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import Metrics


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.requests = metrics.requests
        # labels() takes a lock and builds a key each call; the label sets are few.
        self._children: dict[tuple[str, str, int], Any] = {}

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
            template = getattr(route, "path", None) or "unmatched"
            key = (template, scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.requests.labels(*key[:2], str(status))
            child.inc()
