"""The Python ceiling: a minimal ASGI app that reads the body and answers a fixed id.

It does what any ingest handler must (read the whole body, send a status, a content
type and a 36-byte id) and nothing else, so the service's cost per request can be put
beside the least any Python app on the same server stack can cost.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from service.guard import GuardedHttpToolsProtocol, GuardMiddleware, Limits
from service.settings import Settings

FIXED_ID = b"00000000-0000-4000-8000-000000000000"
_START = {"type": "http.response.start", "status": 202,
          "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                      (b"content-length", str(len(FIXED_ID)).encode())]}
_BODY = {"type": "http.response.body", "body": FIXED_ID}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message: Any = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(_START)
    await send(_BODY)


# The same app behind the service's HTTP guard with its default limits (the guard
# middleware and the guarded httptools protocol, service/guard.py): the difference to the
# plain ceiling is what the guard costs per request, measured rather than guessed.
_LIMITS = Limits.from_settings(Settings())
guarded_app = GuardMiddleware(app, _LIMITS)


class GuardedProtocol(GuardedHttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, limits=_LIMITS, **kwargs)
