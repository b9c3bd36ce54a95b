"""Prometheus metrics on a per-app registry; multiprocess-aware for `--workers N`."""

from __future__ import annotations

import os
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_mp

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)


class Metrics:
    """Every collector of one app; tests build several apps, so nothing is module-global."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # In multiprocess mode values live in mmap files shared by the workers; the scrape
        # aggregates them, so the per-app registry only serves the single-process case.
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ingest_http_requests", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.auth_failures = Counter(
            "ingest_auth_failures",
            "Requests refused 401, by reason: missing, malformed or unknown_key.",
            ["reason"], registry=r,
        )
        self.events_accepted = Counter(
            "ingest_events_accepted", "Events the producer accepted into its buffer.",
            ["mode"], registry=r,
        )
        self.events_delivered = Counter(
            "ingest_events_delivered", "Events the broker acknowledged.", ["mode"], registry=r,
        )
        self.events_failed = Counter(
            "ingest_events_failed", "Accepted events whose delivery failed, by librdkafka error.",
            ["mode", "reason"], registry=r,
        )
        self.events_rejected = Counter(
            "ingest_events_rejected",
            "Valid events refused before produce (full buffer, in-flight bound, not ready).",
            ["mode", "reason"], registry=r,
        )
        self.queue_depth = Gauge(
            "ingest_producer_queue_depth", "Messages in the librdkafka queue (len(producer)).",
            registry=r, multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "ingest_in_flight_deliveries", "Events produced whose delivery report is pending.",
            registry=r, multiprocess_mode="livesum",
        )
        self.delivery_latency = Histogram(
            "ingest_delivery_latency_seconds", "From produce() to the broker's acknowledgement.",
            ["mode"], buckets=LATENCY_BUCKETS, registry=r,
        )

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            prom_mp.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def process_exited(self) -> None:
        """Drop this worker's live gauges from the shared files (multiprocess mode only)."""
        if self.multiprocess:
            prom_mp.mark_process_dead(os.getpid())


class LatencyTally:
    """Delivery latencies counted per bucket in plain numbers, added to a histogram in bulk.

    `Histogram.observe` takes a lock and two value updates per call; once per delivery
    report it was a sixth of a durable batch's CPU (profiled). `add` is a bisect and two
    additions; `flush` (once per poll) adds each bucket's count to the histogram child's
    own values, which is what `observe` would have done one event at a time.
    """

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds = list(child._upper_bounds)  # ends with +Inf, as observe() walks them
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.pending = False

    def add(self, latency: float) -> None:
        self.counts[bisect_left(self.bounds, latency)] += 1
        self.total += latency
        self.pending = True

    def flush(self) -> None:
        if not self.pending:
            return
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total, self.pending = self.total, 0.0, False
        self.child._sum.inc(total)
        for bucket, count in zip(self.child._buckets, counts, strict=True):
            if count:
                bucket.inc(count)
