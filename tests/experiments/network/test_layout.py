"""The network's pure parts, which always run: profiles, parameter validation, the toxic
math against Toxiproxy's own draw, the miss rule, the request the calibration times, the
`network` section and the network plan."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.kafka.broker import BrokerState, LocalKafka, NodeState, proxied_listeners, server_properties
from experiments.network import build as proxy_build
from experiments.network.calibrate import API_VERSIONS, Prober, api_versions_request
from experiments.network.layout import (
    LOOPBACK_LAYOUT,
    PROFILES,
    Link,
    NetworkError,
    NetworkLayout,
    off_target,
    resolve,
)
from experiments.network.proxy import ProxyState, Route
from experiments.network.record import add_proxy_cpu, network_section
from experiments.params import ParamsError, RunParams
from experiments.plans import load_plan
from experiments.rundir import COMPONENTS, CPU_KEYS, OPTIONAL_COMPONENTS, PROXY


def toxic_delays(latency_us: int, jitter_us: int) -> list[int]:
    """Every delay the proxy's `latency_us` toxic can draw, equally likely:
    `latency_us + rand.Int63n(2*jitter_us+1) - jitter_us` (experiments/network/proxy/main.go),
    and no wait for a delay at or below 0."""
    if not jitter_us:
        return [latency_us]
    return [max(0, latency_us + k - jitter_us) for k in range(2 * jitter_us + 1)]


def test_loopback_is_no_proxy_and_every_other_profile_proxies_every_link() -> None:
    assert resolve("loopback") == LOOPBACK_LAYOUT and not LOOPBACK_LAYOUT.proxied
    assert set(PROFILES) == {"loopback", "same-zone", "cross-zone", "cross-region"}
    same_zone = resolve("same-zone")
    assert same_zone.proxied and (same_zone.client.rtt_ms, same_zone.broker.rtt_ms) == (0, 0)
    assert (resolve("cross-zone").client.rtt_ms, resolve("cross-zone").broker.rtt_ms) == (1, 1)
    assert (resolve("cross-region").client.rtt_ms, resolve("cross-region").broker.rtt_ms) == (20, 1)
    every = resolve("5ms")
    assert every.proxied and every.client == every.broker == Link(5, 0)


def test_a_links_own_value_overrides_the_profile_and_proxies_even_loopback() -> None:
    layout = resolve("loopback", broker_rtt_ms=30)
    assert layout.proxied and layout.client == Link(0, 0) and layout.broker == Link(30, 0)
    layout = resolve("cross-region", client_rtt_ms=40.0, client_jitter_ms=2)
    assert layout.client == Link(40, 2) and layout.broker == Link(1, 0)
    # The profile's name does not make another network: a running cluster is kept.
    assert resolve("same-zone").same_network(resolve("0ms"))
    assert not resolve("same-zone").same_network(LOOPBACK_LAYOUT)


@pytest.mark.parametrize(("rtt", "jitter"), [(r, j) for r in range(0, 41) for j in range(0, 6)
                                              if 2 * j <= r])
def test_the_toxics_give_the_asked_round_trip_on_average(rtt: int, jitter: int) -> None:
    toxics = Link(rtt, jitter).toxics()
    up, down = toxics["upstream"], toxics["downstream"]
    assert up["jitter_us"] == down["jitter_us"] == jitter * 1000
    assert up["latency_us"] - down["latency_us"] == 0  # half each way
    up_delays, down_delays = toxic_delays(**up), toxic_delays(**down)
    assert min(up_delays) >= 0 and min(down_delays) >= 0  # nothing clamped: the mean holds
    mean = sum(up_delays) / len(up_delays) + sum(down_delays) / len(down_delays)
    assert mean == rtt * 1000
    if jitter:  # the round trip really varies by +- twice the per-direction jitter
        assert max(up_delays) + max(down_delays) - min(up_delays) - min(down_delays) == 4000 * jitter


@pytest.mark.parametrize(("rtt", "excess_us", "total_us"),
                         [(1, 0, 1000), (1, 301, 699), (5, 555, 4445), (20, 800, 19200), (1, 1500, 0)])
def test_what_the_proxy_adds_is_taken_off_both_directions(rtt: int, excess_us: int,
                                                          total_us: int) -> None:
    toxics = Link(rtt).toxics(excess_us)
    up, down = toxics["upstream"]["latency_us"], toxics["downstream"]["latency_us"]
    assert (up + down, up - down in (0, 1)) == (total_us, True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"profile": "moon"}, "expected one of"),
        ({"profile": "5.5ms"}, "expected one of"),
        ({"profile": "loopback", "client_rtt_ms": 0.5}, "whole number of milliseconds"),
        ({"profile": "loopback", "broker_rtt_ms": -1}, "whole number of milliseconds"),
        ({"profile": "5ms", "broker_jitter_ms": 1.5}, "whole number of milliseconds"),
        ({"profile": "1ms", "client_jitter_ms": 2}, "at least 4 ms"),
        ({"profile": "1ms", "client_jitter_ms": 1}, "at least 2 ms"),
        ({"profile": "same-zone", "broker_jitter_ms": 1}, "at least 2 ms"),
    ],
)
def test_a_network_the_proxy_cannot_make_is_refused_with_the_reason(kwargs: dict[str, Any],
                                                                    message: str) -> None:
    with pytest.raises(NetworkError, match=message):
        resolve(**kwargs)


def test_run_params_refuse_a_network_outside_the_suites_cluster_and_service() -> None:
    assert RunParams().network_layout() == LOOPBACK_LAYOUT
    assert RunParams(bootstrap="broker1:9092").network == "loopback"  # loopback asks nothing
    with pytest.raises(ParamsError, match="existing cluster whose listeners it cannot reach"):
        RunParams(network="cross-zone", bootstrap="broker1:9092,broker2:9092")
    # A plan or a papermill -p still giving the old name is refused the same way.
    with pytest.raises(ParamsError, match=r"bootstrap='broker1:9092' is an existing cluster"):
        RunParams.from_dict({"network": "5ms", "kafka_bootstrap": "broker1:9092"})
    with pytest.raises(ParamsError, match="a route of its own"):
        RunParams(network="5ms", target_url="http://127.0.0.1:8000", topic="t")
    with pytest.raises(ParamsError, match="whole number of milliseconds"):
        RunParams(network_client_rtt_ms=0.25)
    # An address on this machine may be the suite's own cluster (the runner hands it over):
    # experiments.experiment.connect decides, against the cluster's state.
    assert RunParams(network="5ms", bootstrap="127.0.0.1:9092").network_layout().proxied
    assert RunParams(network="5ms").network_layout().client.rtt_ms == 5


def test_a_node_behind_proxies_advertises_only_the_proxies() -> None:
    node = NodeState(node_id=2, pid=0, port=9000, controller_port=9001, data_dir="d", log_file="l")
    routes = {"client": Route(2, "client", 7000, 9000), "replication": Route(2, "replication", 7001, 9002),
              "controller": Route(2, "controller", 7002, 9001)}
    voters = "1@127.0.0.1:6002,2@127.0.0.1:7002"
    props = {**server_properties(node, voters, 3), **proxied_listeners(node, routes, voters)}
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9000,REPLICATION://127.0.0.1:9002,"
                                  "CONTROLLER://127.0.0.1:9001")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:7000,REPLICATION://127.0.0.1:7001"
    assert props["inter.broker.listener.name"] == "REPLICATION"
    assert props["controller.quorum.voters"] == voters
    assert "REPLICATION:PLAINTEXT" in props["listener.security.protocol.map"]


def test_the_state_file_is_unchanged_without_a_proxy_and_keeps_one_when_there_is() -> None:
    node = NodeState(node_id=1, pid=10, port=9000, controller_port=9001, data_dir="d", log_file="l")
    plain = BrokerState("127.0.0.1:9000", "id", "4.1.2", "now", "1g", (node,))
    assert "network" not in plain.as_dict()
    assert BrokerState.from_dict(plain.as_dict()) == plain
    proxy = ProxyState(layout=resolve("5ms"), pid=11, api_port=8474, version="2.5.0", log_file="t.log",
                       routes=(Route(1, "client", 7000, 9000),), excess_us={"node1-client": 420})
    proxied = BrokerState("127.0.0.1:7000", "id", "4.1.2", "now", "1g", (node,), network=proxy)
    assert BrokerState.from_dict(proxied.as_dict()) == proxied
    assert proxied.layout == resolve("5ms") and plain.layout == LOOPBACK_LAYOUT


@pytest.mark.parametrize(("asked", "measured", "off"), [
    (20, 21.9, False), (20, 22.1, True), (20, 17.9, True), (5, 5.45, False), (5, 5.6, True),
    (1, 1.19, False), (1, 1.21, True), (0, 0.15, False), (0, 0.25, True),
])
def test_the_miss_rule_is_ten_percent_or_two_tenths_of_a_ms(asked: int, measured: float, off: bool) -> None:
    assert off_target(asked, measured) is off


@pytest.fixture
def kafka_like_server() -> Iterator[tuple[int, list[bytes]]]:
    """A socket that answers each size-prefixed request with its correlation id (and records it)."""
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while True:
                head = conn.recv(4, socket.MSG_WAITALL)
                if len(head) < 4:
                    return
                body = conn.recv(struct.unpack(">i", head)[0], socket.MSG_WAITALL)
                received.append(body)
                answer = body[4:8] + b"\x00\x00" + b"\x00" * 10  # correlation id, error 0, filler
                conn.sendall(struct.pack(">i", len(answer)) + answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    server.close()


def test_the_calibration_request_is_an_api_versions_and_its_answer_is_matched(
        kafka_like_server: tuple[int, list[bytes]]) -> None:
    port, received = kafka_like_server
    prober = Prober(port)
    try:
        assert all(prober.round_trip_ms() > 0 for _ in range(3))
    finally:
        prober.close()
    assert [struct.unpack(">hhi", body[:8]) for body in received] == [(API_VERSIONS, 0, i) for i in (1, 2, 3)]
    assert api_versions_request(7)[4:] == received[0][:4] + struct.pack(">i", 7) + received[0][8:]


def test_a_loopback_section_says_nothing_was_proxied_and_nothing_missed() -> None:
    section = network_section(LOOPBACK_LAYOUT, None)
    assert section["proxied"] is False and section["links"] == [] and section["missed"] is False
    nothing = {"rtt_ms": 0, "jitter_ms": 0}
    assert section["asked"] == {"client": nothing, "broker": nothing}
    assert section["measured_rtt_ms"] is None and section["proxy"] is None


def test_the_proxys_cpu_is_the_samplers_mean_and_its_cost_per_event() -> None:
    # The proxy is a component of the run's CPU like the service (rundir.COMPONENTS): the
    # sampler's mean over the measured window is `results.cpu_percent.proxy`.
    assert PROXY in COMPONENTS and PROXY in CPU_KEYS and PROXY in OPTIONAL_COMPONENTS
    results = {"cpu_percent": {PROXY: 5.0, "service": 99.0}, "events_accepted": 1000}
    section: dict[str, Any] = {"proxied": True}
    add_proxy_cpu(section, results, duration_s=2.0)  # type: ignore[arg-type]
    assert section["proxy_cpu_percent"] == 5.0
    assert section["proxy_cpu_us_per_event"] == 100.0  # 5% of a core for 2 s over 1,000 events
    loopback: dict[str, Any] = {"proxied": False}
    add_proxy_cpu(loopback, results, duration_s=2.0)  # type: ignore[arg-type]
    assert loopback == {"proxied": False}
    unsampled: dict[str, Any] = {"proxied": True}
    add_proxy_cpu(unsampled, {"cpu_percent": {PROXY: None}, "events_accepted": 0}, duration_s=2.0)  # type: ignore[arg-type]
    assert unsampled == {"proxied": True}


def test_the_network_plan_crosses_modes_round_trips_and_acks_and_kills_under_three(tmp_path: Path) -> None:
    plan = load_plan("network")
    cells = [RunParams.from_dict(c.params) for c in plan.cells(tmp_path) if c.params["trial"] == 1]
    matrix = [c for c in cells if c.fault == "none"]
    assert len(matrix) == 2 * 4 * 2 * 2
    assert {(c.mode, c.network, c.producer_config["acks"], c.load_model) for c in matrix} == {
        (m, n, a, lm) for m in ("durable", "fire-and-forget") for n in ("loopback", "1ms", "5ms", "20ms")
        for a in ("all", "1") for lm in ("closed", "open")}
    assert all(c.cluster_size == 3 and c.effective_replication_factor() == 3 and c.connections == 50
               for c in cells)
    kills = [c for c in cells if c.fault != "none"]
    assert {(c.mode, c.network, c.fault) for c in kills} == {
        (m, n, "broker-kill") for m in ("durable", "fire-and-forget") for n in ("loopback", "5ms", "20ms")}
    # One network after another: the cluster moves behind new proxies once per round trip.
    order = [c.network for c in matrix]
    assert order == sorted(order, key=["loopback", "1ms", "5ms", "20ms"].index)


def test_without_go_the_proxy_is_skipped_with_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv(proxy_build.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(proxy_build, "find_go", lambda: None)
    assert not proxy_build.is_built()
    reason = proxy_build.skip_reason()
    assert reason is not None and "missing: go" in reason and "make proxy" in reason
    with pytest.raises(proxy_build.ProxyUnavailable, match="missing: go"):
        proxy_build.build()
    # The binary's name carries the pinned release and the digest of the proxy's sources.
    assert proxy_build.binary_path().name == (
        f"toxiproxy-server-{proxy_build.VERSION}-{proxy_build.sources_digest()}")
    assert proxy_build.VERSION == "2.5.0"  # as experiments/network/proxy/go.mod requires it
    # A cluster asked behind the proxy fails before it touches anything (a running one stays).
    with pytest.raises(proxy_build.ProxyUnavailable, match="make proxy"):
        LocalKafka(run_dir=tmp_path / "run", network=resolve("5ms")).start()
    assert not (tmp_path / "run").exists()


def test_layouts_survive_the_state_files_json() -> None:
    layout = NetworkLayout(profile="x", client=Link(3, 1), broker=Link(7, 0), proxied=True)
    assert NetworkLayout.from_dict(layout.as_dict()) == layout


def test_correct_takes_what_the_proxy_adds_off_each_delayed_link(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Pure logic: a fake proxy whose links come out long by a fixed amount per route, less
    # whatever was taken off; `correct` must converge on that amount and leave 0 ms links be.
    from experiments.network import calibrate as calibration
    from experiments.network.calibrate import RouteMeasurement

    routes = (Route(1, "client", 7000, 9000), Route(1, "replication", 7001, 9001),
              Route(2, "client", 7002, 9002))
    state = ProxyState(layout=resolve("same-zone", client_rtt_ms=5), pid=1, api_port=1,
                       version="2.5.0", log_file="l", routes=routes)
    adds_us = {"node1-client": 640, "node2-client": 310, "node1-replication": 180}
    rounds: list[dict[str, int]] = []

    def fake_calibrate(current: ProxyState, samples: int | None = None) -> list[RouteMeasurement]:
        out = []
        for route in current.routes:
            asked_us = current.layout.link(route.link).rtt_ms * 1000
            toxic_us = max(0, asked_us - current.excess_us.get(route.name, 0)) if asked_us else 0
            got_ms = (toxic_us + adds_us[route.name]) / 1000
            out.append(RouteMeasurement(route, got_ms + 0.05, 0.05, got_ms, got_ms, 1))
        return out

    def fake_take_off(current: ProxyState, excess: dict[str, int]) -> ProxyState:
        rounds.append(excess)
        return ProxyState(**{**current.__dict__, "excess_us": {**current.excess_us, **excess}})

    monkeypatch.setattr(calibration, "calibrate", fake_calibrate)
    monkeypatch.setattr(calibration, "take_off", fake_take_off)
    corrected = calibration.correct(state)
    assert corrected.excess_us == {"node1-client": 640, "node2-client": 310}
    assert "node1-replication" not in corrected.excess_us  # asks 0 ms: no toxic to shorten
    assert len(rounds) == 1  # the second round found every link within the tolerance
    assert all(not off_target(5, m.measured_ms) for m in fake_calibrate(corrected)
               if m.route.link == "client")
