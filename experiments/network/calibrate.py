"""What round trip a run actually got on each proxied link, measured before its load.

Per route (one node's listener behind its proxy) a Kafka ApiVersions request, which a
broker or controller answers at once from memory, is timed from this process through the
proxy and, interleaved, on the node's own port; the difference of the two medians is the
round trip the proxy added, its own hop included. The median keeps a scheduling hiccup
of a shared box out, and is still the mean for Toxiproxy's jitter, which is symmetric.
"""

from __future__ import annotations

import socket
import statistics
import struct
import time
from dataclasses import dataclass

from experiments.network.layout import NetworkError
from experiments.network.proxy import HOST, ProxyState, Route, take_off

API_VERSIONS = 18
# v0: no tagged fields, accepted by every broker and controller that speaks ApiVersions at all.
API_VERSION = 0
CLIENT_ID = b"lab-calibration"
SAMPLES = 20
SAMPLES_WITH_JITTER = 40


def api_versions_request(correlation_id: int) -> bytes:
    """A size-prefixed ApiVersions v0 request (request header v1, empty body)."""
    header = struct.pack(">hhih", API_VERSIONS, API_VERSION, correlation_id, len(CLIENT_ID)) + CLIENT_ID
    return struct.pack(">i", len(header)) + header


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            raise NetworkError("the connection closed before the ApiVersions answer arrived")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class Prober:
    """One connection that times ApiVersions round trips to `port`."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.correlation_id = 0

    def round_trip_ms(self) -> float:
        self.correlation_id += 1
        request = api_versions_request(self.correlation_id)
        started = time.perf_counter_ns()
        self.sock.sendall(request)
        (size,) = struct.unpack(">i", _recv_exactly(self.sock, 4))
        body = _recv_exactly(self.sock, size)
        elapsed = time.perf_counter_ns() - started
        (correlation_id,) = struct.unpack(">i", body[:4])
        if correlation_id != self.correlation_id:
            raise NetworkError(f"port {self.port} answered correlation id {correlation_id}, "
                               f"expected {self.correlation_id}")
        return elapsed / 1e6

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class RouteMeasurement:
    route: Route
    proxied_ms: float  # median through the proxy
    direct_ms: float  # median on the node's own port
    min_ms: float  # of proxied minus the direct median
    max_ms: float
    samples: int

    @property
    def measured_ms(self) -> float:
        return self.proxied_ms - self.direct_ms


def measure_route(route: Route, samples: int = SAMPLES) -> RouteMeasurement:
    proxied, direct = Prober(route.listen_port), Prober(route.upstream_port)
    try:
        # The first request of a connection pays for its setup (and the proxy's dial).
        proxied.round_trip_ms()
        direct.round_trip_ms()
        through, around = [], []
        for _ in range(samples):
            through.append(proxied.round_trip_ms())
            around.append(direct.round_trip_ms())
    finally:
        proxied.close()
        direct.close()
    direct_ms = statistics.median(around)
    return RouteMeasurement(route=route, proxied_ms=statistics.median(through), direct_ms=direct_ms,
                            min_ms=min(through) - direct_ms, max_ms=max(through) - direct_ms,
                            samples=samples)


def calibrate(state: ProxyState, samples: int | None = None) -> list[RouteMeasurement]:
    """Every route of the cluster's proxy, one after the other (parallel probes would time
    each other's GIL waits)."""
    jittered = state.layout.client.jitter_ms or state.layout.broker.jitter_ms
    count = samples or (SAMPLES_WITH_JITTER if jittered else SAMPLES)
    return [measure_route(route, count) for route in state.routes]


# `correct`: rounds of measure-then-set until every delayed link is within this of the
# asked round trip (well inside MISS_RULE's 0.2 ms floor), and the samples per round.
CORRECTION_TOLERANCE_US = 50
CORRECTION_ROUNDS = 3
CORRECTION_SAMPLES = 30


def correct(state: ProxyState) -> ProxyState:
    """Take what the proxy itself adds off every delayed link's toxics, once its cluster is up.

    The proxy's hop and its toxic's lateness (about 70 us per nanosleep here) would make
    every delayed link long by 0.2-0.5 ms. Each round measures every
    route as the runs' calibration does and moves its toxics by what it measured off the
    asked round trip; links asking no delay have no toxic and keep the bare hop.
    """
    for _ in range(CORRECTION_ROUNDS):
        excess: dict[str, int] = {}
        for measurement in calibrate(state, CORRECTION_SAMPLES):
            route = measurement.route
            asked_ms = state.layout.link(route.link).rtt_ms
            if not asked_ms:
                continue
            off_us = round((measurement.measured_ms - asked_ms) * 1000)
            if abs(off_us) > CORRECTION_TOLERANCE_US:
                excess[route.name] = max(0, state.excess_us.get(route.name, 0) + off_us)
        if not excess:
            break
        state = take_off(state, excess)
    return state
