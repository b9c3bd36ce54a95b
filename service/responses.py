"""Small response helpers: orjson bodies, no pydantic serialisation on the hot path."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)
