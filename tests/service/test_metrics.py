"""Metrics live on a per-app object, so several apps can exist in one process."""

from __future__ import annotations

from service.metrics import LatencyTally, Metrics

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


def _latency_lines(metrics: Metrics) -> list[str]:
    return [line for line in metrics.render().decode().splitlines()
            if line.startswith("ingest_delivery_latency_seconds") and "_created" not in line]


def test_latency_tally_adds_up_to_what_observe_gives() -> None:
    latencies = [0.0001, 0.0005, 0.003, 0.003, 0.07, 1.0, 29.0, 31.0, 0.0005]
    tallied, observed = Metrics(), Metrics()
    tally = LatencyTally(tallied.delivery_latency.labels(mode="durable"))
    for latency in latencies:
        tally.add(latency)
        observed.delivery_latency.labels(mode="durable").observe(latency)
    assert _latency_lines(tallied) != _latency_lines(observed)  # nothing added before flush
    tally.flush()
    tally.flush()  # nothing new: adds nothing
    assert _latency_lines(tallied) == _latency_lines(observed)
