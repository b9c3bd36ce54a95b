"""`/v1/events`: one event or a batch, with per-event outcomes in request order.

A batch in which any event was not delivered (durable) or not accepted
(fire-and-forget) answers 503 with every event's outcome, so the client retries
exactly the ones whose status is `failed` or `rejected`: a partial failure never
hides inside a 2xx. The work itself is in `service.ingest`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import IngestDep
from service.ingest import (
    BATCH_BODY,
    ERROR_RESPONSES,
    EVENT_BODY,
    publish_batch,
    publish_event,
    to_response,
)

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("", summary="Publish one event", openapi_extra=EVENT_BODY,
             responses={200: {"description": "Delivered (durable): id, partition, offset"},
                        202: {"description": "Accepted into the buffer (fire-and-forget)"},
                        **ERROR_RESPONSES})
async def create_event(request: Request, ingest: IngestDep) -> Response:
    return to_response(await publish_event(request.scope, request.receive, ingest))


@router.post(
    "/batch",
    summary="Publish many events (JSON array or NDJSON); per-event outcomes in request order",
    description="All-or-nothing validation: one invalid event rejects the batch (422 naming "
    "`invalid_indexes`) and nothing is published. If any valid event is not delivered "
    "(durable) or not accepted (fire-and-forget), the answer is 503 with every event's outcome.",
    openapi_extra=BATCH_BODY,
    responses={200: {"description": "All delivered (durable)"},
               202: {"description": "All accepted into the buffer (fire-and-forget)"},
               **ERROR_RESPONSES},
)
async def create_events_batch(request: Request, ingest: IngestDep) -> Response:
    return to_response(await publish_batch(request.scope, request.receive, ingest))
