"""`python -m service`: merge arguments over the environment, then run uvicorn."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import MutableMapping, Sequence
from typing import Any

import uvicorn

from service.app import create_app
from service.guard import raise_open_files_limit, uvicorn_limits
from service.logs import configure_logging
from service.metrics import MULTIPROC_ENV
from service.modes import ProducerMode
from service.settings import Settings


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description="HTTP-to-Kafka ingestion service. Arguments override INGEST_* variables; "
        "the broker address comes from KAFKA_BOOTSTRAP_SERVERS.",
    )
    parser.add_argument("--mode", choices=[m.value for m in ProducerMode])
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="processes sharing the port")
    parser.add_argument("--topic")
    parser.add_argument("--log-level")
    return parser.parse_args(argv)


def apply_args(args: argparse.Namespace, environ: MutableMapping[str, str]) -> None:
    """Arguments win over the environment; worker processes re-read it, so write it there."""
    for name, value in vars(args).items():
        if value is not None:
            environ[f"INGEST_{name.upper()}"] = str(value)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": settings.access_log,
        "timeout_graceful_shutdown": settings.shutdown_grace_s,
        # uvloop is a dependency, named so a missing one fails loudly instead of falling back
        # to asyncio at a third of the speed (experiments/bench measures the stack). The
        # guarded protocol (httptools by default, INGEST_HTTP_PARSER=h11 to choose) enforces
        # the HTTP limits and sets TCP_NODELAY (service.guard).
        "loop": "uvloop",
        # No `server: uvicorn` on every answer: it tells a prober what to aim at.
        "server_header": False,
        **uvicorn_limits(settings),
    }


def main(argv: Sequence[str] | None = None) -> None:
    apply_args(parse_args(argv), os.environ)
    settings = Settings()
    configure_logging(settings.log_level, settings.access_log)
    raise_open_files_limit(settings.max_connections)
    owned_dir = None
    if settings.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Workers are fresh interpreters: they pick multiprocess mode up from the environment
        # when they import prometheus_client, so counts add up across processes.
        owned_dir = tempfile.mkdtemp(prefix="ingest-metrics-")
        os.environ[MULTIPROC_ENV] = owned_dir
    try:
        if settings.workers > 1:
            uvicorn.run("service.app:create_app_from_env", factory=True,
                        workers=settings.workers, **uvicorn_options(settings))
        else:
            uvicorn.run(create_app(settings), **uvicorn_options(settings))
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
