"""Answers: the media types and orjson bodies every route uses, and every error as a JSON
answer, in one place; no stack trace reaches a client."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from service.errors import IngestError

log = logging.getLogger("service.errors")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An orjson body: no pydantic serialisation on the hot path."""
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request",
               413: "payload_too_large", 415: "unsupported_media_type"}


async def answer_ingest_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IngestError)
    if exc.status >= 500:
        log.warning("request failed", extra={"path": request.url.path, "error": exc.code,
                                             "detail": exc.message})
    return json_response(exc.body(), exc.status, exc.headers())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    return json_response({"error": code, "message": message}, exc.status_code, exc.headers)


async def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": ".".join(str(p) for p in e["loc"]), "loc": list(e["loc"]),
               "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return json_response({"error": "validation_failed", "message": "invalid request",
                          "errors": errors}, 422)


async def answer_client_gone(request: Request, exc: Exception) -> Response:
    # Nobody is left to answer; 499 (nginx's "client closed request") only labels the metric.
    log.info("client disconnected mid-request", extra={"path": request.url.path})
    return Response(status_code=499)


async def answer_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return json_response({"error": "internal_error", "message": "internal server error"}, 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(IngestError, answer_ingest_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ClientDisconnect, answer_client_gone)
    app.add_exception_handler(Exception, answer_unexpected)
