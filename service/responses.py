"""Small response helpers: orjson bodies, no pydantic serialisation on the hot path."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from service.body import JSON


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)


def text_response(text: str, status: int = 200) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8")
