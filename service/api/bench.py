"""No-op ceilings: everything the ingest routes do except producing to Kafka.

`POST /_bench/noop` mirrors `POST /`; `POST /_bench/noop/batch` mirrors
`POST /v1/events/batch` (answering like an all-accepted fire-and-forget batch), so a
benchmark can put each route beside the same server's cost without Kafka.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.common import BATCH_BODY, EVENT_BODY, accepted_results, read_record, read_records
from service.deps import IngestDep
from service.responses import json_response, text_response

router = APIRouter(prefix="/_bench", tags=["bench"])


@router.post("/noop", summary="Parse, validate and enrich like POST /, but do not produce",
             openapi_extra=EVENT_BODY)
async def create_event_noop(request: Request, ingest: IngestDep) -> Response:
    settings, producer = ingest
    record = await read_record(request, settings, producer.max_message_bytes)
    return text_response(record.event_id, 200)


@router.post("/noop/batch", summary="Parse, validate and enrich like the batch route; no produce",
             openapi_extra=BATCH_BODY)
async def create_events_noop(request: Request, ingest: IngestDep) -> Response:
    settings, producer = ingest
    records = await read_records(request, settings, producer.max_message_bytes)
    return json_response({"accepted": len(records), "results": accepted_results(records)})
