"""The CLI only merges arguments over the environment and hands uvicorn its options."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from service.cli import apply_args, parse_args, uvicorn_options
from service.settings import Settings


def test_arguments_override_the_environment() -> None:
    env = {"INGEST_MODE": "durable", "INGEST_PORT": "1", "INGEST_TOPIC": "keep.me"}
    apply_args(parse_args(["--mode", "fire-and-forget", "--port", "8123", "--workers", "3"]), env)
    assert env == {"INGEST_MODE": "fire-and-forget", "INGEST_PORT": "8123",
                   "INGEST_WORKERS": "3", "INGEST_TOPIC": "keep.me"}


def test_absent_arguments_leave_the_environment_alone() -> None:
    env: dict[str, str] = {}
    apply_args(parse_args([]), env)
    assert env == {}


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--mode", "maybe"])


def test_uvicorn_gets_our_logging_and_no_access_log() -> None:
    options = uvicorn_options(Settings(host="127.0.0.1", port=8001, shutdown_grace_s=3))
    assert options["log_config"] is None
    assert options["access_log"] is False
    # The guarded protocol (service.guard) also sets TCP_NODELAY like NoDelayProtocol.
    assert issubclass(options["http"].func, asyncio.Protocol)
    assert (options["host"], options["port"], options["timeout_graceful_shutdown"]) == (
        "127.0.0.1", 8001, 3)


class _Transport(asyncio.Transport):
    """An accepted TCP connection as uvicorn's protocol sees it; nothing is written."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": self.sock, "peername": self.sock.getpeername(),
                "sockname": self.sock.getsockname()}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_the_protocol_uvicorn_gets_sets_tcp_nodelay_on_each_connection(parser: str) -> None:
    """What the CLI hands uvicorn sets TCP_NODELAY on an accepted socket (asyncio does not
    for the workers' socket: every keep-alive answer then waits 40 ms for a delayed ACK)."""
    protocol = uvicorn_options(Settings(http_parser=parser))["http"]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0

            async def connect() -> None:
                config = Config(app=lambda *_: None, loop="none", log_config=None)
                config.load()
                server = protocol(config=config, server_state=ServerState(), app_state={})
                server.connection_made(_Transport(accepted))
                server.connection_lost(None)

            asyncio.run(connect())
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
