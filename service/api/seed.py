"""`POST /`: the seed article's contract, so its own benchmark runs unchanged."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import IngestDep
from service.ingest import ERROR_RESPONSES, EVENT_BODY, publish_seed, to_response

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
    return to_response(await publish_seed(request.scope, request.receive, ingest))
