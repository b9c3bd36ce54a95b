"""The latency proxy against a real 3-node cluster: each link measures the round trip it
was asked, no client or follower reaches a node around its proxy, acks=all pays the
replication round trip and acks=1 does not, and a run writes its `network` section.

Opt-in like tests/native: they run where the proxy is already built (`make proxy`), or
where LAB_PROXY=1 asks for the build (Go, about a minute cold); skipped with the reason
otherwise. The module's cluster has client links at 10 ms and broker links at 30 ms, so
the two are told apart in every measurement.

Tolerances. The cluster's start took what the proxy itself adds off each link's toxics
(`calibrate.correct`), so a measured round trip is near the asked one; subtracting the
loopback median (0.3-1.5 ms on this shared box) can take more off: the lower bounds
allow 1.5 ms. Scheduling only
adds: the upper bounds allow 5 ms, which a median of 20 samples exceeds only when most
samples were held that long (then nothing on the box measures anything).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from experiments.kafka import BOOTSTRAP_ENV, BrokerState, LocalKafka, create_topic, default_home, unique_topic
from experiments.kafka.broker import port_open
from experiments.network import build as proxy_build
from experiments.network.layout import MISS_RULE, off_target, resolve
from experiments.network.proxy import is_proxy_process, toxics_set
from experiments.network.record import measured_links
from experiments.params import RunParams
from experiments.rundir import PROXY

OPT_IN_ENV = "LAB_PROXY"
CLIENT_RTT_MS, BROKER_RTT_MS = 10, 30
BELOW_MS, ABOVE_MS = 1.5, 5.0


def _skip_reason() -> str | None:
    if os.environ.get(BOOTSTRAP_ENV):
        return f"the proxy fronts the suite's own cluster; {BOOTSTRAP_ENV} names another"
    if proxy_build.is_built():
        return None
    if os.environ.get(OPT_IN_ENV) != "1":
        return (f"the latency proxy is not built: run `make proxy` (needs Go), or set {OPT_IN_ENV}=1 "
                f"to build it here")
    return proxy_build.skip_reason()


SKIP_REASON = _skip_reason()
pytestmark = [pytest.mark.kafka, pytest.mark.slow,
              pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A LAB_KAFKA_HOME of its own (jars linked in), so a run finds this module's cluster."""
    path = tmp_path_factory.mktemp("kafka-home")
    (path / "jars").symlink_to(default_home().resolve() / "jars")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAB_KAFKA_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def cluster(home: Path) -> Iterator[BrokerState]:
    proxy_build.build()  # a no-op when built; under LAB_PROXY=1 the cold build happens here
    layout = resolve("same-zone", client_rtt_ms=CLIENT_RTT_MS, broker_rtt_ms=BROKER_RTT_MS)
    local = LocalKafka(nodes=3, network=layout, die_with_parent=True)
    state = local.start()
    try:
        yield state
    finally:
        local.stop()
    assert state.network is not None and not is_proxy_process(state.network.pid)
    assert not any(port_open(route.listen_port) for route in state.network.routes)


def test_every_proxied_link_measures_the_round_trip_asked(cluster: BrokerState) -> None:
    assert cluster.network is not None
    links = measured_links(cluster.network)
    assert {(link["node_id"], link["listener"]) for link in links} == {
        (n, listener) for n in (1, 2, 3) for listener in ("client", "replication", "controller")}
    for link in links:
        asked = CLIENT_RTT_MS if link["listener"] == "client" else BROKER_RTT_MS
        assert link["asked_rtt_ms"] == asked
        assert asked - BELOW_MS <= link["measured_rtt_ms"] <= asked + ABOVE_MS, link
        assert link["off_target"] is off_target(asked, link["measured_rtt_ms"])


def test_the_proxy_holds_each_link_less_what_it_was_measured_to_add(cluster: BrokerState) -> None:
    # The start measured every delayed route through the running nodes and shortened its
    # toxics by the excess; the server holds exactly that, and the state file says so.
    assert cluster.network is not None
    held = toxics_set(cluster.network)
    assert {route.name for route in cluster.network.routes} <= set(held)
    assert set(cluster.network.excess_us) <= {route.name for route in cluster.network.routes}
    for route in cluster.network.routes:
        asked_us = (CLIENT_RTT_MS if route.listener == "client" else BROKER_RTT_MS) * 1000
        wanted = cluster.network.toxics(route)
        assert {s: {k: a[k] for k in ("latency_us", "jitter_us")} for s, a in held[route.name].items()} \
            == wanted
        total = sum(a["latency_us"] for a in wanted.values())
        assert total == asked_us - cluster.network.excess_us.get(route.name, 0) and total > 0


def test_no_client_or_follower_reaches_a_node_around_its_proxy(cluster: BrokerState) -> None:
    assert cluster.network is not None
    routes = cluster.network.routes
    # The metadata every client learns the brokers from lists the proxies only.
    brokers = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=10).brokers
    assert {f"{b.host}:{b.port}" for b in brokers.values()} == {
        f"127.0.0.1:{r.listen_port}" for r in routes if r.listener == "client"}
    # Replicated traffic and a client on every node, then every TCP connection to a node's own
    # listener port is the proxy's: followers and controllers went through it too.
    topic = create_topic(cluster.bootstrap, unique_topic("bypass"), partitions=3, replication_factor=3)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(30):
        producer.produce(topic, value=b"x", partition=i % 3)
    assert producer.flush(30) == 0
    own_ports = {r.upstream_port for r in routes}
    inbound = [c for c in psutil.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in own_ports]
    assert inbound, "no connection reached any node's own port: the check would see nothing"
    assert {c.pid for c in inbound} == {cluster.network.pid}


def produce_latencies_ms(bootstrap: str, topic: str, acks: str, count: int = 20) -> list[float]:
    """Each record produced and flushed alone: one produce request's round trip each."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 0,
                         "enable.idempotence": acks == "all"})
    producer.produce(topic, value=b"warm-up")  # connections and metadata outside the timing
    assert producer.flush(30) == 0
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        producer.produce(topic, value=b"x")
        assert producer.flush(30) == 0
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def test_acks_all_pays_the_replication_round_trip_and_acks_1_does_not(cluster: BrokerState) -> None:
    topic = create_topic(cluster.bootstrap, unique_topic("acks"), partitions=1, replication_factor=3,
                         min_insync_replicas=3)
    leader_only = statistics.median(produce_latencies_ms(cluster.bootstrap, topic, "1"))
    replicated = statistics.median(produce_latencies_ms(cluster.bootstrap, topic, "all"))
    # acks=1: the client's round trip and nothing of the followers' (which would make it >= 40).
    assert CLIENT_RTT_MS - BELOW_MS <= leader_only < CLIENT_RTT_MS + BROKER_RTT_MS / 2
    # acks=all: the high watermark moves only when each follower's next fetch arrives, after the
    # records crossed the replication link both ways: one more replication round trip at least.
    assert replicated - leader_only >= BROKER_RTT_MS - BELOW_MS


def test_a_run_behind_the_proxy_writes_asked_measured_and_the_proxys_cpu(
        cluster: BrokerState, tmp_path: Path) -> None:
    from experiments.experiment import run_experiment

    params = RunParams(network="same-zone", network_client_rtt_ms=CLIENT_RTT_MS,
                       network_broker_rtt_ms=BROKER_RTT_MS, cluster_size=3, connections=8,
                       duration_s=3, warmup_s=1, output_dir=str(tmp_path / "run"))
    summary = run_experiment(params)
    network = summary["network"]
    assert network["proxied"] and network["proxy"]["pid"] == cluster.network.pid  # the cluster was kept
    assert network["asked"]["client"]["rtt_ms"] == CLIENT_RTT_MS
    assert network["asked"]["broker"]["rtt_ms"] == BROKER_RTT_MS
    assert len(network["links"]) == 9 and network["miss_rule"] == MISS_RULE
    assert network["missed"] is any(link["off_target"] for link in network["links"])
    assert len(network["miss_reasons"]) == sum(link["off_target"] for link in network["links"])
    measured = network["measured_rtt_ms"]
    assert CLIENT_RTT_MS - BELOW_MS <= measured["client"] <= CLIENT_RTT_MS + ABOVE_MS
    assert BROKER_RTT_MS - BELOW_MS <= measured["replication"] <= BROKER_RTT_MS + ABOVE_MS
    # Durable with acks=all: every answer waited for the client's and the replication round trip.
    assert summary["results"]["latency_ms"]["p50"] >= CLIENT_RTT_MS + BROKER_RTT_MS - BELOW_MS
    assert summary["audit"]["lost"] == 0
    cpu_rows = (tmp_path / "run" / "cpu.csv").read_text().splitlines()
    assert any(f",{PROXY}," in row for row in cpu_rows)
    assert network["proxy_cpu_percent"] is not None and network["proxy_cpu_percent"] > 0
    assert network["proxy_cpu_percent"] == summary["results"]["cpu_percent"][PROXY]
    assert "network" in summary["timings_s"]


def test_a_cluster_started_without_a_network_is_moved_behind_the_asked_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the plan runner does: it hands over the cluster as it found it, and the run gives
    it its network (one node, in a home of its own: the module's cluster stays as it is)."""
    from experiments.experiment import connect

    (tmp_path / "jars").symlink_to(default_home().resolve() / "jars")
    monkeypatch.setenv("LAB_KAFKA_HOME", str(tmp_path))
    monkeypatch.setenv("LAB_KAFKA_HEAP", "384m")
    plain = LocalKafka(die_with_parent=True)
    before = plain.start()
    try:
        assert before.network is None
        kafka, local, state = connect(RunParams(network="1ms", bootstrap=before.bootstrap))
        assert local is not None and state is not None and state.network is not None
        assert kafka.bootstrap == state.bootstrap != before.bootstrap
        assert state.layout.same_network(resolve("1ms"))
        assert before.pid not in state.pids
    finally:
        plain.stop()
    assert state.network is not None and not is_proxy_process(state.network.pid)
