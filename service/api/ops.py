"""Operations: liveness, readiness (with the effective config), Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from service.deps import MetricsDep, PublisherDep, SettingsDep
from service.responses import json_response

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="The process is alive")
async def read_health() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Broker reachable and topic present (short timeout)",
            responses={503: {"description": "Not ready; `reason` says why"}})
async def read_readiness(request: Request, publisher: PublisherDep,
                         settings: SettingsDep) -> Response:
    # A metadata round trip blocks for up to the timeout: keep it off the event loop.
    check = await asyncio.to_thread(publisher.check_ready, settings.ready_timeout_s)
    body = {
        **check,
        "mode": settings.mode.value,
        "topic": settings.topic,
        "in_flight": publisher.in_flight,
        "producer_config": request.app.state.producer_config_masked,
    }
    return json_response(body, 200 if check["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def read_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)
