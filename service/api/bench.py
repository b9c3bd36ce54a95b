"""No-op ceilings: everything the ingest routes do except producing to Kafka.

`POST /_bench/noop` mirrors `POST /`; `POST /_bench/noop/batch` mirrors
`POST /v1/events/batch` (answering like an all-accepted fire-and-forget batch), so a
benchmark can put each route beside the same server's cost without Kafka. Both take
the same path as the routes they mirror (`service.ingest`, hot path included).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import IngestDep
from service.ingest import BATCH_BODY, EVENT_BODY, noop_batch, noop_event, to_response

router = APIRouter(prefix="/_bench", tags=["bench"])


@router.post("/noop", summary="Parse, validate and enrich like POST /, but do not produce",
             openapi_extra=EVENT_BODY)
async def create_event_noop(request: Request, ingest: IngestDep) -> Response:
    return to_response(await noop_event(request.scope, request.receive, ingest))


@router.post("/noop/batch", summary="Parse, validate and enrich like the batch route; no produce",
             openapi_extra=BATCH_BODY)
async def create_events_noop(request: Request, ingest: IngestDep) -> Response:
    return to_response(await noop_batch(request.scope, request.receive, ingest))
