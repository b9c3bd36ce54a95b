"""Metrics live on a per-app object, so several apps can exist in one process."""

from __future__ import annotations

from service.metrics import Metrics

NAMES = (
    "ingest_http_requests_total", "ingest_events_accepted_total", "ingest_events_delivered_total",
    "ingest_events_failed_total", "ingest_events_rejected_total", "ingest_producer_queue_depth",
    "ingest_in_flight_deliveries", "ingest_delivery_latency_seconds_bucket",
)


def test_two_instances_do_not_share_values() -> None:
    a, b = Metrics(), Metrics()
    a.events_accepted.labels(mode="durable").inc(3)
    b.events_failed.labels(mode="durable", reason="_MSG_TIMED_OUT").inc()
    b.delivery_latency.labels(mode="durable").observe(0.01)
    a.requests.labels("/", "POST", "200").inc()
    text_a, text_b = a.render().decode(), b.render().decode()
    assert 'ingest_events_accepted_total{mode="durable"} 3.0' in text_a
    assert 'ingest_events_accepted_total{mode="durable"} 3.0' not in text_b
    assert 'reason="_MSG_TIMED_OUT"' in text_b and 'reason="_MSG_TIMED_OUT"' not in text_a
    for name in NAMES:
        assert name in text_a + text_b, name
