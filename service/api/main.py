"""All routers in one place; the bench router only when asked for."""

from __future__ import annotations

from fastapi import FastAPI

from service.api import bench, events, ops, seed


def include_routers(app: FastAPI, bench_endpoints: bool) -> None:
    # Straight onto the app: every extra router level adds a match pass per request.
    app.include_router(seed.router)
    app.include_router(events.router)
    app.include_router(ops.router)
    if bench_endpoints:
        app.include_router(bench.router)
