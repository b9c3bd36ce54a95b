"""TCP_NODELAY on every accepted connection, whatever path accepted it.

With `--workers N` uvicorn binds the listening socket itself with protocol number 0,
and asyncio only sets TCP_NODELAY on accepted sockets whose protocol is IPPROTO_TCP:
the workers then answer every keep-alive request after a 40 ms delayed-ACK stall
(measured: 45 req/s per connection instead of about 2000). Setting the option on each
accepted connection makes both paths behave the same. The guarded protocols the service
runs with (service.guard) call `set_nodelay`; `NoDelayProtocol` does the same alone. The
parser is httptools', a dependency of the service (measured 3.5x h11 on a raw ASGI app,
see experiments/bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
