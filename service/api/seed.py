"""`POST /`: the seed article's contract, so its own benchmark runs unchanged."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.common import ERROR_RESPONSES, EVENT_BODY, raise_if_failed, read_record
from service.deps import IngestDep
from service.modes import ProducerMode
from service.responses import text_response

router = APIRouter(tags=["seed"])


@router.post(
    "/",
    summary="Publish one event; answer its id as plain text",
    description="200 once the broker acknowledged (durable) or 202 once buffered "
    "(fire-and-forget). The body is the event id.",
    openapi_extra=EVENT_BODY,
    responses={200: {"content": {"text/plain": {}}}, 202: {"content": {"text/plain": {}}},
               **ERROR_RESPONSES},
)
async def create_event_seed(request: Request, ingest: IngestDep) -> Response:
    settings, producer = ingest
    record = await read_record(request, settings, producer.max_message_bytes)
    await producer.wait_for_room(1)
    if producer.mode is ProducerMode.DURABLE:
        raise_if_failed(record, await producer.publish(record), settings.retry_after_s)
        return text_response(record.event_id, 200)
    producer.publish_nowait(record)
    return text_response(record.event_id, 202)
