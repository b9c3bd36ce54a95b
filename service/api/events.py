"""`/v1/events`: one event or a batch, with per-event outcomes in request order.

A batch in which any event was not delivered (durable) or not accepted
(fire-and-forget) answers 503 with every event's outcome, so the client retries
exactly the ones whose status is `failed` or `rejected`: a partial failure never
hides inside a 2xx.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.common import (
    BATCH_BODY,
    ERROR_RESPONSES,
    EVENT_BODY,
    accepted_results,
    raise_if_failed,
    read_record,
    read_records,
)
from service.deps import IngestDep
from service.errors import DeliveryFailed, PartialDelivery
from service.events import Record
from service.kafka import Outcome
from service.kafka.delivery import QUEUE_FULL_OUTCOME
from service.kafka.errors import QUEUE_FULL
from service.modes import ProducerMode
from service.responses import json_response

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("", summary="Publish one event", openapi_extra=EVENT_BODY,
             responses={200: {"description": "Delivered (durable): id, partition, offset"},
                        202: {"description": "Accepted into the buffer (fire-and-forget)"},
                        **ERROR_RESPONSES})
async def create_event(request: Request, ingest: IngestDep) -> Response:
    settings, producer = ingest
    record = await read_record(request, settings, producer.max_message_bytes)
    await producer.wait_for_room(1)
    if producer.mode is ProducerMode.DURABLE:
        outcome = await producer.publish(record)
        raise_if_failed(record, outcome, settings.retry_after_s)
        return json_response({"event_id": record.event_id, "status": "delivered",
                              "partition": outcome.partition, "offset": outcome.offset})
    producer.publish_nowait(record)
    return json_response({"event_id": record.event_id, "status": "accepted"}, 202)


def _result(record: Record, outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return {"event_id": record.event_id, "status": "delivered",
                "partition": outcome.partition, "offset": outcome.offset}
    status = "rejected" if outcome.error == QUEUE_FULL else "failed"
    return {"event_id": record.event_id, "status": status, "error": outcome.error,
            "retriable": outcome.retriable}


def _raise_partial(results: list[dict[str, Any]], ok: int, retriable: bool,
                   retry_after: int) -> None:
    bad = len(results) - ok
    error = PartialDelivery if ok else DeliveryFailed
    raise error(
        f"{bad} of {len(results)} events were not published; retry those whose status is "
        "'failed' or 'rejected'",
        retry_after=retry_after if retriable else None,
        published=ok, failed=bad, results=results,
    )


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
    settings, producer = ingest
    await producer.wait_for_room()
    records = await read_records(request, settings, producer.max_message_bytes)
    await producer.wait_for_room(len(records))

    if producer.mode is ProducerMode.DURABLE:
        outcomes = await producer.publish_batch(records)
        results = [_result(r, o) for r, o in zip(records, outcomes, strict=True)]
        ok = sum(1 for o in outcomes if o.error is None)
        if ok < len(records):
            retriable = any(o.retriable for o in outcomes if o.error is not None)
            _raise_partial(results, ok, retriable, settings.retry_after_s)
        return json_response({"delivered": ok, "results": results})

    accepted = producer.publish_batch_nowait(records)
    results = accepted_results(records[:accepted])
    results += [_result(r, QUEUE_FULL_OUTCOME) for r in records[accepted:]]
    if accepted < len(records):
        _raise_partial(results, accepted, True, settings.retry_after_s)
    return json_response({"accepted": accepted, "results": results}, 202)
