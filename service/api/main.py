"""All routers in one place; the bench router only when asked for."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from service.api import bench, events, ops, seed


def include_routers(app: FastAPI, bench_endpoints: bool) -> list[APIRouter]:
    """Include every router straight onto the app; returns them (the hot path reads them)."""
    routers = [seed.router, events.router, ops.router]
    if bench_endpoints:
        routers.append(bench.router)
    for router in routers:
        app.include_router(router)
    return routers
