"""What the single-event routes share, so the no-op ceiling does exactly the same work."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from service.auth import record_headers
from service.body import JSON, NDJSON, NDJSON_ALIASES, media_type, read_body
from service.errors import DeliveryFailed
from service.events import (
    Event,
    Record,
    check_sizes,
    parse_event,
    parse_json_batch,
    parse_ndjson_batch,
    received_at,
    to_records,
)
from service.kafka import Outcome
from service.settings import Settings

JSON_ONLY = frozenset({JSON})
BATCH_TYPES = JSON_ONLY | NDJSON_ALIASES

EVENT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {JSON: {"schema": Event.model_json_schema(),
                           "example": {"client_id": "test", "name": "hello_event",
                                       "data": {"test": "value"}}}},
    }
}

BATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON: {"schema": {"type": "array", "items": Event.model_json_schema()}},
            NDJSON: {"schema": {"type": "string",
                                "description": "one event JSON object per line"}},
        },
    }
}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON"},
    413: {"description": "Body, batch or record over its limit"},
    415: {"description": "Wrong Content-Type"},
    422: {"description": "Schema violation; `errors` carries field paths"},
    503: {"description": "Overloaded (with Retry-After), delivery failed or not ready"},
}


async def read_record(request: Request, settings: Settings, max_message_bytes: int) -> Record:
    """Media type, size limit, parse, validate, enrich: everything short of producing."""
    media_type(request, JSON_ONLY)
    body = await read_body(request, settings.max_body_bytes)
    records = to_records([parse_event(body)], received_at(), record_headers(request.scope))
    check_sizes(records, max_message_bytes)
    return records[0]


async def read_records(request: Request, settings: Settings,
                       max_message_bytes: int) -> list[Record]:
    """The batch counterpart of `read_record`: all events valid, or an error and nothing."""
    kind = media_type(request, BATCH_TYPES)
    body = await read_body(request, settings.max_body_bytes)
    parse = parse_json_batch if kind == JSON else parse_ndjson_batch
    records = to_records(parse(body, settings.max_batch_events), received_at(),
                         record_headers(request.scope))
    check_sizes(records, max_message_bytes)
    return records


def raise_if_failed(record: Record, outcome: Outcome, retry_after: int) -> None:
    if outcome.error is not None:
        raise DeliveryFailed(
            f"the broker did not acknowledge the event: {outcome.error}",
            retry_after=retry_after if outcome.retriable else None,
            reason=outcome.error, retriable=outcome.retriable, event_id=record.event_id,
        )


def accepted_results(records: list[Record]) -> list[dict[str, Any]]:
    """Batch results of events handed to the producer's buffer (and of the no-op route)."""
    return [{"event_id": r.event_id, "status": "accepted"} for r in records]
