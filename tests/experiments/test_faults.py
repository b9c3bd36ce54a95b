"""The fault injector's schedule and bookkeeping on a virtual clock, the run parameters that
refuse impossible faults, and the runner's cluster per cell, all without Kafka.

The "service" here is a real `sleep` process (signals are real); the cluster is a fake that
records what was asked of it, at which virtual time.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from experiments import runner
from experiments.faults import NS_PER_S, Clock, FaultError, FaultInjector
from experiments.kafka import BOOTSTRAP_ENV, KafkaTarget
from experiments.params import ParamsError, RunParams

ORIGIN_NS = 1_000 * NS_PER_S  # the window start, on the virtual clock


class FakeClock(Clock):
    """Sleeping jumps to the deadline at once; a stop still interrupts it."""

    def __init__(self) -> None:
        self.t_ns = ORIGIN_NS - 2 * NS_PER_S  # start() is called before the warm-up ends

    def now_ns(self) -> int:
        return self.t_ns

    def sleep_until(self, deadline_ns: int, stop: threading.Event) -> bool:
        if stop.is_set():
            return False
        self.t_ns = max(self.t_ns, deadline_ns)
        return True

    def advance(self, seconds: float) -> None:
        self.t_ns += round(seconds * NS_PER_S)

    def s(self) -> float:
        return (self.t_ns - ORIGIN_NS) / NS_PER_S


class SleepService:
    """A real process to signal, started again on the same port like ServiceProcess."""

    port = 4242

    def __init__(self, clock: FakeClock, start_s: float = 1.5) -> None:
        self.clock = clock
        self.start_s = start_s
        self.proc = subprocess.Popen(["sleep", "60"])
        self.starts = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self.proc = subprocess.Popen(["sleep", "60"])
        self.starts += 1
        self.clock.advance(self.start_s)  # readiness takes time
        return {}

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class FakeCluster:
    def __init__(self, clock: FakeClock, restart_s: float = 4.0) -> None:
        self.clock = clock
        self.restart_s = restart_s
        self.calls: list[tuple[float, str, int]] = []

    def node_pid(self, node_id: int) -> int:
        return 100 + node_id

    def signal_node(self, node_id: int, sig: signal.Signals) -> int:
        self.calls.append((self.clock.s(), sig.name, node_id))
        return 100 + node_id

    def start_node(self, node_id: int, timeout: float = 90.0, wait: bool = True) -> None:
        self.calls.append((self.clock.s(), "start", node_id))
        self.clock.advance(self.restart_s)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(clock: FakeClock) -> Any:
    svc = SleepService(clock)
    yield svc
    svc.close()


def run(injector: FaultInjector, clock: FakeClock, load_s: float = 10.0) -> dict[str, Any]:
    injector.prepare()
    injector.start(ORIGIN_NS)
    assert injector.wait_finished(timeout=30)
    clock.t_ns = max(clock.t_ns, ORIGIN_NS + round(load_s * NS_PER_S))  # the load ends
    return injector.stop()


def injector(kind: str, service: Any, clock: FakeClock, cluster: FakeCluster | None = None,
             leaders: list[int] | None = None, **kw: Any) -> FaultInjector:
    answers = iter(leaders or [2] * 100)

    def leader_of(_b: str, _t: str, _p: int) -> int:
        clock.advance(0.5)  # each metadata request takes virtual time
        return next(answers)

    return FaultInjector(kind, kw.pop("at_s", 2.0), kw.pop("duration_s", 3.0), service, cluster=cluster,
                         bootstrap="b", topic="t", clock=clock, leader_of=leader_of, **kw)


def test_service_kill_then_restart_records_kill_window_and_recovery(service: Any, clock: FakeClock) -> None:
    first_pid = service.pid
    faults = run(injector("service-kill", service, clock, service_restart=True), clock)
    assert service.proc.pid != first_pid and service.starts == 1
    assert subprocess.run(["kill", "-0", str(first_pid)], capture_output=True).returncode != 0
    assert faults["kind"] == "service-kill" and faults["injected"] is True
    assert faults["at_s"] == 2.0 and faults["duration_s"] == 3.0
    # Killed at 2 s, restarted at 5 s, ready 1.5 s later: unavailable until then.
    assert faults["windows"] == [[2.0, 6.5]]
    assert faults["recovered_at_s"] == 6.5 and faults["service_restarted"] is True
    assert [e["t_s"] for e in faults["events"]] == [2.0, 5.0, 6.5]
    assert faults["events"][0]["what"].startswith(f"SIGKILL service (pid {first_pid}")
    assert f"service pid {first_pid}" in faults["target"]


def test_service_term_without_restart_stays_down_until_the_end(service: Any, clock: FakeClock) -> None:
    faults = run(injector("service-term", service, clock), clock, load_s=10.0)
    assert faults["windows"] == [[2.0, 10.0]]
    assert faults["recovered_at_s"] is None and faults["service_restarted"] is False
    assert faults["events"][0]["what"].startswith("SIGTERM service")
    assert service.proc.wait(timeout=10) == -signal.SIGTERM


def test_broker_pause_is_continued_after_its_duration(service: Any, clock: FakeClock) -> None:
    cluster = FakeCluster(clock)
    faults = run(injector("broker-pause", service, clock, cluster), clock)
    assert cluster.calls == [(2.0, "SIGSTOP", 2), (5.0, "SIGCONT", 2)]
    assert faults["windows"] == [[2.0, 5.0]] and faults["recovered_at_s"] == 5.0
    assert faults["target"].startswith("node 2 (pid 102), leader of t partition 0")


def test_broker_restart_recovers_when_the_node_is_back(service: Any, clock: FakeClock) -> None:
    cluster = FakeCluster(clock, restart_s=4.0)
    faults = run(injector("broker-restart", service, clock, cluster), clock, load_s=20)
    assert cluster.calls == [(2.0, "SIGKILL", 2), (5.0, "start", 2)]
    assert faults["windows"] == [[2.0, 9.0]] and faults["recovered_at_s"] == 9.0


def test_broker_kill_records_failover_and_restarts_the_node_after_the_load(
        service: Any, clock: FakeClock) -> None:
    cluster = FakeCluster(clock)
    # prepare() finds leader 2; after the kill the metadata says 2, 2, then 3.
    inj = injector("broker-kill", service, clock, cluster, leaders=[2, 2, 2, 3])
    faults = run(inj, clock, load_s=20)
    assert cluster.calls[0] == (2.0, "SIGKILL", 2)
    assert cluster.calls[1][1:] == ("start", 2) and cluster.calls[1][0] >= 20
    assert faults["recovered_at_s"] == 3.5  # the third metadata answer after the kill
    assert faults["windows"] == [[2.0, 20.0]]  # down for the rest of the load
    assert "node 3 now leads t partition 0" in [e["what"] for e in faults["events"]]
    assert faults["events"][-1]["what"] == "node 2 started again after the load (for the audit)"


def test_pause_then_service_kill_has_two_windows(service: Any, clock: FakeClock) -> None:
    cluster = FakeCluster(clock)
    pid = service.pid
    faults = run(injector("broker-pause+service-kill", service, clock, cluster), clock)
    assert cluster.calls == [(2.0, "SIGSTOP", 2), (5.0, "SIGCONT", 2)]
    assert faults["windows"] == [[2.0, 5.0], [5.0, 10.0]]
    whats = [e["what"] for e in faults["events"]]
    assert whats[1].startswith(f"SIGKILL service (pid {pid}") and whats[2] == "SIGCONT broker node 2"
    assert faults["recovered_at_s"] is None


def test_a_pause_still_active_at_stop_is_undone(service: Any, clock: FakeClock) -> None:
    cluster = FakeCluster(clock)
    inj = injector("broker-pause", service, clock, cluster, at_s=2.0, duration_s=100.0)

    def slow_sleep(deadline_ns: int, stop: threading.Event) -> bool:
        if deadline_ns - ORIGIN_NS > 50 * NS_PER_S:
            stop.wait()  # the load ends first
            return False
        return FakeClock.sleep_until(clock, deadline_ns, stop)

    clock.sleep_until = slow_sleep  # type: ignore[method-assign]
    inj.prepare()
    inj.start(ORIGIN_NS)
    while not cluster.calls:
        threading.Event().wait(0.01)
    clock.t_ns = ORIGIN_NS + 10 * NS_PER_S
    faults = inj.stop()
    assert [c[1] for c in cluster.calls] == ["SIGSTOP", "SIGCONT"]
    assert faults["windows"] == [[2.0, 10.0]]
    assert faults["events"][-1]["what"] == "SIGCONT node 2 after the load"


def test_a_fault_the_load_never_reached_is_not_injected(service: Any, clock: FakeClock) -> None:
    inj = injector("service-kill", service, clock, at_s=2.0)
    clock.sleep_until = lambda deadline, stop: stop.wait() and False  # type: ignore[method-assign]
    inj.start(ORIGIN_NS)
    faults = inj.stop()
    assert faults["injected"] is False
    assert "ended before the fault time" in faults["error"]
    assert service.proc.poll() is None  # nothing was killed


def test_broker_faults_need_the_local_cluster(service: Any, clock: FakeClock) -> None:
    with pytest.raises(FaultError, match="needs the suite's own local cluster"):
        injector("broker-pause", service, clock, cluster=None).prepare()
    with pytest.raises(FaultError, match="expected one of"):
        injector("broker-nap", service, clock)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"fault": "broker-nap"}, "fault='broker-nap': expected one of"),
        ({"fault": "service-kill", "fault_at_s": 60.0}, "outside the measured window"),
        ({"fault": "service-kill", "fault_at_s": -1.0}, "outside the measured window"),
        ({"fault": "broker-pause", "fault_at_s": 58.0}, "must recover inside the measured window"),
        ({"fault": "service-kill", "service_restart": True, "fault_at_s": 50, "fault_duration_s": 20},
         "must recover inside"),
        ({"fault": "broker-kill"}, "one-node cluster"),
        ({"replication_factor": 3}, "replication_factor=3 needs that many brokers"),
        ({"cluster_size": 3, "replication_factor": 4}, "replication_factor=4"),
        ({"cluster_size": 3, "min_insync_replicas": 4}, "min_insync_replicas=4 is above"),
        ({"cluster_size": 3, "replication_factor": 1, "min_insync_replicas": 2}, "above the replication"),
        ({"cluster_size": 2}, "cluster_size=2"),
    ],
)
def test_impossible_faults_and_replication_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ParamsError, match=message):
        RunParams(**values)


def test_replication_defaults_follow_the_cluster_size() -> None:
    one, three = RunParams(), RunParams(cluster_size=3)
    assert (one.effective_replication_factor(), one.effective_min_insync_replicas()) == (1, 1)
    assert (three.effective_replication_factor(), three.effective_min_insync_replicas()) == (3, 2)
    assert RunParams(cluster_size=3, fault="broker-kill", fault_at_s=1, duration_s=5).fault == "broker-kill"


def test_a_broker_fault_on_an_existing_cluster_fails_before_anything_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from experiments.experiment import run_experiment

    monkeypatch.setenv(BOOTSTRAP_ENV, "127.0.0.1:1")
    monkeypatch.setenv("LAB_KAFKA_HOME", str(tmp_path / "home"))
    out = tmp_path / "run"
    params = RunParams(fault="broker-pause", fault_at_s=1, fault_duration_s=1, duration_s=5,
                       output_dir=str(out))
    with pytest.raises(FaultError, match="needs the suite's own local cluster"):
        run_experiment(params)
    assert not out.exists()


def test_the_runner_gives_each_cell_its_cluster_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / "sizes.yaml"
    plan.write_text("name: sizes\nceiling: false\ntrials: 1\nmatrix: {cluster_size: [1, 3, 3]}\n")
    asked: list[int] = []

    def ensure(local: Any) -> KafkaTarget:
        asked.append(local.nodes)
        return KafkaTarget(bootstrap=f"127.0.0.1:{local.nodes}", started_here=True, external=False,
                           kafka_version=None)

    stopped: list[int] = []
    monkeypatch.setattr(runner, "ensure_kafka", ensure)
    monkeypatch.setattr(runner.LocalKafka, "stop", lambda self: stopped.append(self.nodes))
    seen: list[str] = []

    def execute(cell: Any, cell_dir: Path, extra: dict[str, Any], **_: Any) -> None:
        seen.append(extra["bootstrap"])

    monkeypatch.setattr(runner, "execute_cell", execute)
    warmed: list[tuple[str, float]] = []
    monkeypatch.setattr(runner, "warm_up",
                        lambda bootstrap, seconds: warmed.append((bootstrap, seconds)) or 1)
    runner.run_plan(plan, tmp_path / "results", tmp_path / "reports", report=False)
    # Asked before every cell (so a node a fault left down is healed), stopped once at the end.
    assert asked == [1, 3, 3]
    assert seen == ["127.0.0.1:1", "127.0.0.1:3", "127.0.0.1:3"]
    assert stopped == [3]
    # Each cluster the plan uses is warmed once, before its first cell (the default 10 s).
    assert warmed == [("127.0.0.1:1", 10.0), ("127.0.0.1:3", 10.0)]


def test_a_plan_with_an_impossible_fault_is_refused_before_any_cluster_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = tmp_path / "bad.yaml"
    plan.write_text("name: bad\nceiling: false\nbase: {duration_s: 5, fault_at_s: 1}\n"
                    "matrix: {fault: [service-kill, broker-kill]}\n")
    started: list[Any] = []
    monkeypatch.setattr(runner, "ensure_kafka", lambda **kw: started.append(kw))
    with pytest.raises(ParamsError, match="broker-kill on a one-node cluster"):
        runner.run_plan(plan, tmp_path / "results", tmp_path / "reports", report=False)
    assert started == []
