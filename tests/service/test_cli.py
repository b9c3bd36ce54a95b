"""The CLI only merges arguments over the environment and hands uvicorn its options."""

from __future__ import annotations

import asyncio

import pytest

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
