"""Reading request bodies ourselves: media type first, then a size limit enforced twice."""

from __future__ import annotations

from fastapi import Request

from service.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON = "application/json"
NDJSON = "application/x-ndjson"
NDJSON_ALIASES = frozenset({NDJSON, "application/ndjson", "application/jsonl"})


def media_type(request: Request, allowed: frozenset[str]) -> str:
    """The request's media type (parameters such as charset dropped), or 415."""
    raw = request.headers.get("content-type")
    kind = raw.split(";", 1)[0].strip().lower() if raw else ""
    if kind not in allowed:
        wanted = ", ".join(sorted(allowed))
        got = f"'{kind}'" if kind else "no Content-Type"
        raise UnsupportedMediaType(f"expected Content-Type {wanted}; got {got}",
                                   supported=sorted(allowed))
    return kind


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing early on Content-Length and again while reading.

    Counting the chunks matters for chunked uploads and for clients whose
    Content-Length lies; the server would otherwise buffer whatever it is sent.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit}",
                                  limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
