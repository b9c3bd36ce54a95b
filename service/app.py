"""The app factory and its lifespan: the Publisher starts here and is flushed here."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from confluent_kafka import KafkaException
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth import access_control, open_beyond_loopback
from service.deps import Ingest
from service.events import RecordMaker
from service.guard import GuardMiddleware, Limits
from service.handlers import install_error_handlers
from service.ingest import IngestRoutes
from service.kafka import Publisher, ensure_topic
from service.logs import configure_logging
from service.metrics import Metrics
from service.middleware import RequestCounter, RequestMetricsMiddleware
from service.producer_config import admin_config, effective_config, masked, weaker_than_mode
from service.routes import include_routers
from service.settings import Settings

log = logging.getLogger("service")
_TOPIC_RETRY_S = 5.0


async def _create_topic(settings: Settings, config: dict[str, object]) -> bool:
    try:
        created = await asyncio.to_thread(
            ensure_topic, admin_config(config), settings.topic, settings.topic_partitions,
            settings.startup_timeout_s,
        )
    except KafkaException as exc:
        log.error("could not ensure the topic exists; will retry",
                  extra={"topic": settings.topic, "detail": str(exc)})
        return False
    if created:
        log.info("created topic", extra={"topic": settings.topic,
                                         "partitions": settings.topic_partitions})
    return True


async def _keep_creating_topic(settings: Settings, config: dict[str, object]) -> None:
    """Started only when the broker was down at start: readiness turns green once it works."""
    while not await _create_topic(settings, config):
        await asyncio.sleep(_TOPIC_RETRY_S)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    ingest: Ingest = app.state.ingest
    settings, publisher = ingest.settings, ingest.publisher
    metrics: Metrics = app.state.metrics
    log.info("starting", extra={"settings": settings.public(),
                                "producer_config": app.state.producer_config_masked})
    for warning in weaker_than_mode(settings.mode, publisher.config):
        log.warning("producer override weakens the mode", extra={"detail": warning})
    if open_beyond_loopback(settings):
        log.warning("listening beyond loopback with API keys off: anyone who reaches the port "
                    "can publish (INGEST_REQUIRE_API_KEY=true closes it)",
                    extra={"host": settings.host})
    publisher.start(asyncio.get_running_loop())
    topic_task: asyncio.Task[None] | None = None
    if settings.create_topic and not await _create_topic(settings, publisher.config):
        topic_task = asyncio.create_task(_keep_creating_topic(settings, publisher.config))
    # What is alive once the service has started (FastAPI's and pydantic's objects, the
    # producer) stays alive. A durable request's objects outlive the young collections while
    # they wait ~8 ms for the broker, so the collector's full pass ran about once a second and
    # walked that whole start-up heap: 17-20 ms in which no request was served (50
    # connections: p99.9 21 ms, max 28, against p50 7.7). Frozen, a full pass walks only what
    # the requests left behind: 0.2 ms.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if topic_task is not None:
            topic_task.cancel()
            with suppress(asyncio.CancelledError):
                await topic_task
        log.info("flushing the producer", extra={"in_flight": publisher.in_flight,
                                                  "deadline_s": settings.shutdown_flush_s})
        undelivered = await publisher.aclose(settings.shutdown_flush_s)
        level = logging.ERROR if undelivered else logging.INFO
        log.log(level, "producer closed", extra={"undelivered": undelivered})
        metrics.process_exited()


class ServiceApp(FastAPI):
    """FastAPI with the service's entry in front of its middleware stack.

    FastAPI wraps every request in its own layers (server errors, telemetry, a body
    limit, exception handling): a sixth of the ingest hot path's CPU on the wire
    (measured with py-spy). `entry` wraps that whole stack instead of sitting inside it:
    the guard (for every request), the ingest routes (which answer, count and handle
    their own errors) and request metrics for the rest. Middleware added with
    `app.add_middleware` wraps the entry, so it still sees every request.
    """

    entry: Callable[[ASGIApp], ASGIApp] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # FastAPI's __call__ asks its telemetry hook (off here) and hands over to Starlette's,
        # which sets the app on the scope and calls the stack: two coroutine layers per
        # request for one assignment once the stack is built.
        stack = self.middleware_stack
        if stack is not None and scope["type"] == "http" and not self.root_path:
            scope["app"] = self
            await stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        added, self.user_middleware = self.user_middleware, []
        try:
            app = super().build_middleware_stack()
        finally:
            self.user_middleware = added
        if self.entry is not None:
            app = self.entry(app)
        for cls, args, kwargs in reversed(added):
            app = cls(app, *args, **kwargs)
        return app


def create_app(settings: Settings) -> ServiceApp:
    """A fully wired app; the Publisher's producer is created in the lifespan, not here.

    From the outside in: middleware added to the returned app, the guard (framing,
    limits), API keys (when on), the ingest hot path (`IngestRoutes`, unless `hot_path`
    is off), request metrics for every other route, then FastAPI's stack.
    """
    metrics = Metrics()
    config = effective_config(settings)
    app = ServiceApp(
        title="Kafka ingestion service",
        version="0.1.0",
        summary="JSON events over HTTP into Apache Kafka, durable or fire-and-forget.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry looks up the global providers on every request
        # (a quarter of the ingest hot path's CPU, measured); the service configures none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # A redirect to the path with(out) a trailing slash builds its absolute Location
        # from the client's Host header; such a path is a 404 instead.
        redirect_slashes=False,
        # INGEST_DOCS=false: no /docs, /redoc or /openapi.json (FastAPI's defaults otherwise).
        **({} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}),
    )
    publisher = Publisher(
        config, settings.topic, settings.mode, metrics,
        max_in_flight=settings.max_in_flight, retry_after=settings.retry_after_s,
        shed_delay_s=settings.shed_delay_s, bridge=settings.delivery_bridge,
        reports=settings.delivery_reports,
    )
    ingest = Ingest(settings, publisher, RecordMaker())
    app.state.ingest = ingest
    app.state.metrics = metrics
    app.state.producer_config_masked = masked(config)
    routers = include_routers(app, settings.bench_endpoints)
    install_error_handlers(app)
    counter = RequestCounter(metrics)
    routes = [route for router in routers for route in router.routes]
    limits = Limits.from_settings(settings)
    behind_keys = access_control(settings, metrics)

    def entry(stack: ASGIApp) -> ASGIApp:
        stack = RequestMetricsMiddleware(stack, counter=counter)
        if settings.hot_path:
            stack = IngestRoutes(stack, ingest=ingest, routes=routes, counter=counter)
        if behind_keys is not None:
            stack = behind_keys(stack)
        return GuardMiddleware(stack, limits)

    app.entry = entry
    return app


def create_app_from_env() -> FastAPI:
    """Uvicorn's factory for `--workers N`: each worker process builds its own app."""
    settings = Settings()
    configure_logging(settings.log_level, settings.access_log)
    return create_app(settings)
