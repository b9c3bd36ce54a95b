"""The ingest routes end to end: request -> records -> Publisher -> answer, in one place.

`POST /`, `POST /v1/events`, `POST /v1/events/batch` (and their no-op twins under
`/_bench`) do the same things in the same order: media type, body within its limit,
parse and validate (`service.events`), enrich into records, admission, publish, and an
answer built from the outcome. Every step is a function here over the ASGI scope and
`receive`, so two callers share them exactly:

- `IngestRoutes`, a plain ASGI handler in front of FastAPI's middleware stack (the
  default, see `service.app.ServiceApp`), which serves those paths without FastAPI's
  middleware layers, building a Request, matching routes or resolving dependencies, and
  sends its answer as two ASGI messages;
- the FastAPI routes in `service.routes`, which stay declared for the OpenAPI document
  (and serve the requests when `INGEST_HOT_PATH=false`).

Errors are raised as `IngestError` in both cases and answered by `service.handlers`,
so the bodies, statuses and headers of every error are the same whichever path ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, NoReturn

import orjson
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.deps import Ingest
from service.errors import (
    BadRequest,
    DeliveryFailed,
    IngestError,
    PartialDelivery,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from service.events import (
    Event,
    Record,
    check_sizes,
    parse_event,
    parse_json_batch,
    parse_ndjson_batch,
)
from service.handlers import (
    JSON,
    TEXT,
    answer_client_gone,
    answer_ingest_error,
    answer_unexpected,
)
from service.kafka import Outcome, RecordHeaders
from service.kafka.delivery import QUEUE_FULL_OUTCOME
from service.kafka.errors import QUEUE_FULL
from service.middleware import RequestCounter
from service.modes import ProducerMode

NDJSON = "application/x-ndjson"
NDJSON_ALIASES = frozenset({NDJSON, "application/ndjson", "application/jsonl"})
JSON_ONLY = frozenset({JSON})
BATCH_TYPES = JSON_ONLY | NDJSON_ALIASES
_JSON_RAW = JSON.encode()

# An outer middleware (e.g. authentication) may put Kafka record headers under this scope
# key; they are added to every record the request publishes.
RECORD_HEADERS_KEY = "ingest.record_headers"

# -- OpenAPI: what the ingest routes accept and answer (the routes live in service.routes) --
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


def record_headers(scope: Scope) -> RecordHeaders | None:
    """The Kafka headers an outer middleware put on this request, for each of its records."""
    headers: RecordHeaders | None = scope.get(RECORD_HEADERS_KEY)
    return headers


class Answer(NamedTuple):
    """A successful ingest answer: status, body and its media type."""

    status: int
    body: bytes
    media_type: str


# -- request -> records ----------------------------------------------------------------
def _content_headers(scope: Scope) -> tuple[bytes | None, bytes | None]:
    """Content-Type and Content-Length as sent (first occurrence, as Starlette reads them)."""
    kind = length = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if kind is None:
                kind = value
        elif name == b"content-length" and length is None:
            length = value
    return kind, length


def media_type(raw: bytes | None, allowed: frozenset[str]) -> str:
    """The request's media type (parameters such as charset dropped), or 415."""
    if raw == _JSON_RAW and JSON in allowed:
        return JSON
    kind = raw.decode("latin-1").split(";", 1)[0].strip().lower() if raw else ""
    if kind not in allowed:
        wanted = ", ".join(sorted(allowed))
        got = f"'{kind}'" if kind else "no Content-Type"
        raise UnsupportedMediaType(f"expected Content-Type {wanted}; got {got}",
                                   supported=sorted(allowed))
    return kind


async def read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The whole body, refusing early on Content-Length and again while reading.

    Counting the chunks matters for chunked uploads and for clients whose
    Content-Length lies; the server would otherwise buffer whatever it is sent.
    """
    if declared is not None:  # a length is bytes of ASCII digits, or a 400
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared.decode()} bytes exceeds the limit of {limit}",
                                  limit=limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes", limit=limit)
        if not message.get("more_body", False):
            if not chunks:
                return chunk  # the usual case: the whole body in one message
            chunks.append(chunk)
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def read_record(scope: Scope, receive: Receive, ingest: Ingest) -> Record:
    """Media type, size limit, parse, validate, enrich: everything short of publishing."""
    kind, length = _content_headers(scope)
    if kind != _JSON_RAW:
        media_type(kind, JSON_ONLY)
    body = await read_body(receive, length, ingest.settings.max_body_bytes)
    record = ingest.record_maker.record(parse_event(body))
    if len(record.value) + len(record.event_id) > ingest.publisher.max_message_bytes:
        check_sizes([record], ingest.publisher.max_message_bytes)
    return record


async def read_records(scope: Scope, receive: Receive, ingest: Ingest) -> list[Record]:
    """The batch counterpart of `read_record`: all events valid, or an error and nothing."""
    settings = ingest.settings
    raw_kind, length = _content_headers(scope)
    kind = media_type(raw_kind, BATCH_TYPES)
    body = await read_body(receive, length, settings.max_body_bytes)
    parse = parse_json_batch if kind == JSON else parse_ndjson_batch
    records = ingest.record_maker.records(parse(body, settings.max_batch_events))
    check_sizes(records, ingest.publisher.max_message_bytes)
    return records


# -- outcome -> answer -----------------------------------------------------------------
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


def accepted_answer(records: list[Record], status: int) -> Answer:
    """`{"accepted": n, "results": accepted_results(records)}` as orjson writes it, built
    with one join: ids are hex and dashes, so nothing needs escaping (a third of the
    no-op batch's CPU went to building and serialising those dicts)."""
    ids = '","status":"accepted"},{"event_id":"'.join([r.event_id for r in records])
    body = f'{{"accepted":{len(records)},"results":[{{"event_id":"{ids}","status":"accepted"}}]}}'
    return Answer(status, body.encode(), JSON)


def delivered_answer(records: list[Record], outcomes: list[Outcome]) -> Answer:
    """A durable batch's 200 once every event was delivered: `{"delivered": n, "results":
    [event_result(...), ...]}` as orjson writes it, built with one join as `accepted_answer`
    is (ids are hex and dashes; partitions and offsets integers)."""
    results = ",".join([
        f'{{"event_id":"{r.event_id}","status":"delivered","partition":{o.partition},"offset":{o.offset}}}'
        for r, o in zip(records, outcomes, strict=True)])
    return Answer(200, f'{{"delivered":{len(records)},"results":[{results}]}}'.encode(), JSON)


def event_result(record: Record, outcome: Outcome) -> dict[str, Any]:
    """One event's entry in a batch answer."""
    if outcome.error is None:
        return {"event_id": record.event_id, "status": "delivered",
                "partition": outcome.partition, "offset": outcome.offset}
    status = "rejected" if outcome.error == QUEUE_FULL else "failed"
    return {"event_id": record.event_id, "status": status, "error": outcome.error,
            "retriable": outcome.retriable}


def raise_partial(results: list[dict[str, Any]], ok: int, retriable: bool,
                  retry_after: int) -> NoReturn:
    """A batch not wholly published: 503 with every event's outcome (see README, Errors)."""
    bad = len(results) - ok
    error = PartialDelivery if ok else DeliveryFailed
    raise error(
        f"{bad} of {len(results)} events were not published; retry those whose status is "
        "'failed' or 'rejected'",
        retry_after=retry_after if retriable else None,
        published=ok, failed=bad, results=results,
    )


def _json(body: Any, status: int = 200) -> Answer:
    return Answer(status, orjson.dumps(body), JSON)


def to_response(answer: Answer) -> Response:
    """The answer as a Starlette response, for the FastAPI routes."""
    return Response(answer.body, status_code=answer.status, media_type=answer.media_type)


# -- the routes ------------------------------------------------------------------------
async def _publish_one(scope: Scope, receive: Receive, ingest: Ingest) -> tuple[Record, Outcome | None]:
    """Read, admit and publish one event: its delivery outcome (durable), None (buffered)."""
    record = await read_record(scope, receive, ingest)
    publisher = ingest.publisher
    if not publisher.has_room(1):
        await publisher.wait_for_room(1)
    headers = record_headers(scope)
    if publisher.mode is ProducerMode.DURABLE:
        outcome = await publisher.publish(record, headers)
        raise_if_failed(record, outcome, ingest.settings.retry_after_s)
        return record, outcome
    publisher.publish_nowait(record, headers)
    return record, None


async def publish_seed(scope: Scope, receive: Receive, ingest: Ingest) -> Answer:
    """`POST /`: the event id as plain text, 200 once acknowledged or 202 once buffered."""
    record, outcome = await _publish_one(scope, receive, ingest)
    return Answer(202 if outcome is None else 200, record.event_id.encode(), TEXT)


async def publish_event(scope: Scope, receive: Receive, ingest: Ingest) -> Answer:
    """`POST /v1/events`: one event, answered as JSON."""
    record, outcome = await _publish_one(scope, receive, ingest)
    if outcome is None:
        return _json({"event_id": record.event_id, "status": "accepted"}, 202)
    return _json({"event_id": record.event_id, "status": "delivered",
                  "partition": outcome.partition, "offset": outcome.offset})


async def publish_batch(scope: Scope, receive: Receive, ingest: Ingest) -> Answer:
    """`POST /v1/events/batch`: per-event results in request order."""
    publisher, retry_after = ingest.publisher, ingest.settings.retry_after_s
    if not publisher.has_room(1):
        await publisher.wait_for_room()
    records = await read_records(scope, receive, ingest)
    if not publisher.has_room(len(records)):
        await publisher.wait_for_room(len(records))
    headers = record_headers(scope)

    if publisher.mode is ProducerMode.DURABLE:
        outcomes = await publisher.publish_batch(records, headers)
        if all(o.error is None for o in outcomes):
            return delivered_answer(records, outcomes)
        results = [event_result(r, o) for r, o in zip(records, outcomes, strict=True)]
        ok = sum(1 for o in outcomes if o.error is None)
        retriable = any(o.retriable for o in outcomes if o.error is not None)
        raise_partial(results, ok, retriable, retry_after)

    accepted = publisher.publish_batch_nowait(records, headers)
    if accepted == len(records):
        return accepted_answer(records, 202)
    results = accepted_results(records[:accepted])
    results += [event_result(r, QUEUE_FULL_OUTCOME) for r in records[accepted:]]
    raise_partial(results, accepted, True, retry_after)


async def noop_event(scope: Scope, receive: Receive, ingest: Ingest) -> Answer:
    """`POST /_bench/noop`: everything `POST /` does short of publishing."""
    record = await read_record(scope, receive, ingest)
    return Answer(200, record.event_id.encode(), TEXT)


async def noop_batch(scope: Scope, receive: Receive, ingest: Ingest) -> Answer:
    """`POST /_bench/noop/batch`: the batch route's work short of publishing."""
    return accepted_answer(await read_records(scope, receive, ingest), 200)


Handler = Callable[[Scope, Receive, Ingest], Awaitable[Answer]]
_HANDLER = "ingest_handler"


def serves(endpoint: Callable[..., Any], handler: Handler) -> Callable[..., Any]:
    """Mark a FastAPI endpoint as the route of `handler` (service.routes declares each
    ingest route once, with its handler); `IngestRoutes` serves the marked routes."""
    setattr(endpoint, _HANDLER, handler)
    return endpoint


def handler_of(route: BaseRoute) -> Handler | None:
    """The ingest handler of a `POST` route declared by `serves`, else None."""
    if isinstance(route, APIRoute) and "POST" in route.methods:
        handler: Handler | None = getattr(route.endpoint, _HANDLER, None)
        return handler
    return None


# -- the hot path ----------------------------------------------------------------------
class IngestRoutes:
    """The ingest routes served in front of FastAPI's middleware stack; all else goes on.

    `routes` are the routes the app includes (the bench routes only when enabled); only
    `POST` on one of those declared with an ingest handler (`serves`) is taken, and its
    `APIRoute` is put in the scope as routing would. Every answer is this class's own, as
    FastAPI's stack would give it: errors by `service.handlers`, an unexpected exception
    as the same 500 JSON and then re-raised for the server to log and close the
    connection (ServerErrorMiddleware's contract), and each request counted by route and
    status.
    """

    def __init__(self, app: ASGIApp, ingest: Ingest, routes: Sequence[BaseRoute],
                 counter: RequestCounter) -> None:
        self.app = app
        self.ingest = ingest
        self.counter = counter
        self.table: dict[str, tuple[Handler, BaseRoute]] = {}
        for route in routes:
            handler = handler_of(route)
            if handler is not None:
                self.table[route.path] = (handler, route)  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        found = self.table.get(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, route = found
        scope["route"] = route
        status = 500
        try:
            try:
                answer = await handler(scope, receive, self.ingest)
            except IngestError as exc:
                response = await answer_ingest_error(Request(scope, receive), exc)
            except ClientDisconnect as exc:
                response = await answer_client_gone(Request(scope, receive), exc)
            except Exception as exc:
                await (await answer_unexpected(Request(scope, receive), exc))(scope, receive, send)
                raise
            else:
                status, body = answer.status, answer.body
                # A fresh message each time: an outer middleware may add headers to it.
                await send({"type": "http.response.start", "status": status, "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", answer.media_type.encode()),
                ]})
                await send({"type": "http.response.body", "body": body})
                return
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.counter.count(route.path, "POST", status)
