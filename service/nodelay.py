"""An HTTP protocol for uvicorn that always turns Nagle's algorithm off.

With `--workers N` uvicorn binds the listening socket itself with protocol number 0,
and asyncio only sets TCP_NODELAY on accepted sockets whose protocol is IPPROTO_TCP:
the workers then answer every keep-alive request after a 40 ms delayed-ACK stall
(measured: 45 req/s per connection instead of about 2000). Setting the option on each
accepted connection makes both paths behave the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

try:  # uvloop/httptools are optional: use httptools' parser when it is installed
    import httptools  # noqa: F401
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayProtocol(_Base):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
