"""Every HTTP route of the service, one APIRouter per resource, gathered in one place.

The ingest routes (`POST /`, `/v1/events`, `/v1/events/batch`, the `/_bench` no-ops) are
declared here once each, with the function of `service.ingest` that does their work:
FastAPI serves them for the OpenAPI document and when `INGEST_HOT_PATH=false`, and the
hot path (`service.ingest.IngestRoutes`) finds that function on the routes it is given. A batch
in which any event was not delivered (durable) or not accepted (fire-and-forget) answers
503 with every event's outcome, so the client retries exactly the ones whose status is
`failed` or `rejected`: a partial failure never hides inside a 2xx.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from service.deps import IngestDep, MetricsDep, PublisherDep, SettingsDep
from service.handlers import json_response
from service.ingest import (
    BATCH_BODY,
    ERROR_RESPONSES,
    EVENT_BODY,
    Handler,
    noop_batch,
    noop_event,
    publish_batch,
    publish_event,
    publish_seed,
    serves,
    to_response,
)


def _ingest(router: APIRouter, path: str, handler: Handler, name: str, **openapi: Any) -> None:
    """Declare an ingest route, once: FastAPI serves it (the OpenAPI document, and every
    request when INGEST_HOT_PATH=false) and the hot path finds `handler` on it."""

    async def endpoint(request: Request, ingest: IngestDep) -> Response:
        return to_response(await handler(request.scope, request.receive, ingest))

    router.add_api_route(path, serves(endpoint, handler), methods=["POST"], name=name, **openapi)


# -- POST /: the seed article's contract, so its own benchmark runs unchanged -------------
seed = APIRouter(tags=["seed"])
_ingest(
    seed, "/", publish_seed, "create_event_seed",
    summary="Publish one event; answer its id as plain text",
    description="200 once the broker acknowledged (durable) or 202 once buffered "
    "(fire-and-forget). The body is the event id.",
    openapi_extra=EVENT_BODY,
    responses={200: {"content": {"text/plain": {}}}, 202: {"content": {"text/plain": {}}},
               **ERROR_RESPONSES},
)

# -- /v1/events: one event or a batch, with per-event outcomes in request order ------------
events = APIRouter(prefix="/v1/events", tags=["events"])
_ingest(events, "", publish_event, "create_event", summary="Publish one event",
        openapi_extra=EVENT_BODY,
        responses={200: {"description": "Delivered (durable): id, partition, offset"},
                   202: {"description": "Accepted into the buffer (fire-and-forget)"},
                   **ERROR_RESPONSES})
_ingest(
    events, "/batch", publish_batch, "create_events_batch",
    summary="Publish many events (JSON array or NDJSON); per-event outcomes in request order",
    description="All-or-nothing validation: one invalid event rejects the batch (422 naming "
    "`invalid_indexes`) and nothing is published. If any valid event is not delivered "
    "(durable) or not accepted (fire-and-forget), the answer is 503 with every event's outcome.",
    openapi_extra=BATCH_BODY,
    responses={200: {"description": "All delivered (durable)"},
               202: {"description": "All accepted into the buffer (fire-and-forget)"},
               **ERROR_RESPONSES},
)


# -- Operations: liveness, readiness (with the effective config), Prometheus metrics ------
ops = APIRouter(tags=["ops"])


@ops.get("/healthz", summary="The process is alive")
async def read_health() -> Response:
    return json_response({"status": "ok"})


@ops.get("/readyz", summary="Broker reachable and topic present (short timeout)",
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


@ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def read_metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=metrics.content_type)


# -- No-op ceilings: everything the ingest routes do except producing to Kafka -------------
# `POST /_bench/noop` mirrors `POST /`; `/_bench/noop/batch` mirrors the batch route
# (answering like an all-accepted fire-and-forget batch), so a benchmark can put each
# route beside the same server's cost without Kafka.
bench = APIRouter(prefix="/_bench", tags=["bench"])


_ingest(bench, "/noop", noop_event, "create_event_noop",
        summary="Parse, validate and enrich like POST /, but do not produce",
        openapi_extra=EVENT_BODY)
_ingest(bench, "/noop/batch", noop_batch, "create_events_noop",
        summary="Parse, validate and enrich like the batch route; no produce",
        openapi_extra=BATCH_BODY)


def include_routers(app: FastAPI, bench_endpoints: bool) -> list[APIRouter]:
    """Include every router straight onto the app; returns them (the hot path reads them)."""
    routers = [seed, events, ops]
    if bench_endpoints:
        routers.append(bench)
    for router in routers:
        app.include_router(router)
    return routers
