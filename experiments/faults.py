"""Fault injection during a run's load: kill, stop or pause the service or a broker node.

A `FaultInjector` is the load runner's `during` hook (experiments.load.driver.DuringLoad):
`start(window_start_ns)` schedules
the fault `at_s` seconds into the measured window on a thread of its own, `stop()` undoes
whatever is still active once the load is over and returns the run's `faults` section
(experiments/RESULTS.md, contract lab.run/2): every action with its time, the actual fault
windows and when the target was back. Times are seconds from the window start, on the
load runner's own clock (`time.perf_counter_ns`).

Kinds (the one list: `FAULTS`):
- service-kill / service-term: SIGKILL / SIGTERM the service (and its worker processes);
  with `service_restart` it is started again on the same port `duration_s` later.
- broker-kill: SIGKILL the node leading the run topic's partition (from the metadata);
  it stays down for the rest of the load and is started again after it, so the audit
  reads every replica.
- broker-pause: SIGSTOP that node, SIGCONT `duration_s` later.
- broker-restart: SIGKILL that node, start it again `duration_s` later.
- broker-pause+service-kill: SIGSTOP that node; `duration_s` later SIGKILL the service,
  then SIGCONT the node. What fire-and-forget acknowledged while the broker stalled dies
  with the service: the loss case, made deterministic.

Broker faults need the suite's own local cluster (a process to signal); `prepare()` says
so before anything starts. An injection that fails is recorded (`injected: false`,
`error`) and the caller fails the run: a fault that did not happen must never read as
"0 lost".
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import psutil

from experiments.errors import LabError
from experiments.kafka import partition_leader

FAULTS = (
    "none",
    "service-kill",
    "service-term",
    "broker-kill",
    "broker-pause",
    "broker-restart",
    "broker-pause+service-kill",
)
SERVICE_FAULTS = ("service-kill", "service-term", "broker-pause+service-kill")
BROKER_FAULTS = ("broker-kill", "broker-pause", "broker-restart", "broker-pause+service-kill")
# A recovery action happens `duration_s` after the fault, so the fault must fit in the window.
TIMED_FAULTS = ("broker-pause", "broker-restart", "broker-pause+service-kill")
NS_PER_S = 1_000_000_000
POLL_S = 0.2


class FaultError(LabError):
    """A fault cannot be injected as asked (no local process to signal, injection failed)."""


class Service(Protocol):
    """What the injector needs of the service (experiments.service_proc.ServiceProcess)."""

    @property
    def pid(self) -> int: ...

    port: int

    def start(self, timeout: float = 60.0) -> dict[str, Any]: ...


class Cluster(Protocol):
    """What the injector needs of the local cluster (experiments.kafka.LocalKafka)."""

    def node_pid(self, node_id: int) -> int: ...

    def signal_node(self, node_id: int, sig: signal.Signals) -> int: ...

    def start_node(self, node_id: int, timeout: float = 90.0, wait: bool = True) -> Any: ...


class Clock:
    """The load runner's clock, and a sleep that a stop interrupts."""

    def now_ns(self) -> int:
        return time.perf_counter_ns()

    def sleep_until(self, deadline_ns: int, stop: threading.Event) -> bool:
        """False when `stop` was set before the deadline."""
        remaining = (deadline_ns - self.now_ns()) / NS_PER_S
        return remaining <= 0 or not stop.wait(remaining)


def signal_tree(pid: int, sig: signal.Signals) -> list[int]:
    """Signal a process and its descendants (a multi-worker service dies as a whole)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess as exc:
        raise FaultError(f"process {pid} is gone, nothing to signal") from exc
    os.kill(pid, sig)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)
    return [pid, *(c.pid for c in children)]


class FaultInjector:
    """One fault, scheduled on a thread relative to the measured window's start."""

    def __init__(
        self,
        kind: str,
        at_s: float,
        duration_s: float,
        service: Service | None,
        service_restart: bool = False,
        cluster: Cluster | None = None,
        bootstrap: str = "",
        topic: str = "",
        partition: int = 0,
        clock: Clock | None = None,
        leader_of: Callable[[str, str, int], int] | None = None,
        restart_timeout_s: float = 90.0,
    ) -> None:
        if kind not in FAULTS or kind == "none":
            raise FaultError(f"fault={kind!r}: expected one of {FAULTS[1:]}")
        self.kind = kind
        self.at_s = at_s
        self.duration_s = duration_s
        self.service = service
        self.service_restart = service_restart
        self.cluster = cluster
        self.bootstrap = bootstrap
        self.topic = topic
        self.partition = partition
        self.clock = clock or Clock()
        self.leader_of = leader_of or (lambda b, t, p: partition_leader(b, t, p, timeout=2.0))
        self.restart_timeout_s = restart_timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._origin_ns = 0
        self._lock = threading.Lock()
        self.target = ""
        self.events: list[dict[str, Any]] = []
        self.windows: list[list[float | None]] = []
        self.recovered_at_s: float | None = None
        self.service_restarted = False
        self.injected = False
        self.error: str | None = None
        self._target_node: int | None = None
        self._paused_node: int | None = None
        self._killed_node: int | None = None

    # --- before the load ---------------------------------------------------------------

    def prepare(self) -> None:
        """Refuse, before anything starts, a fault this run cannot inject."""
        if self.kind in BROKER_FAULTS:
            if self.cluster is None:
                raise FaultError(
                    f"fault {self.kind} signals a broker process, so it needs the suite's own local "
                    f"cluster; {self.bootstrap or 'this cluster'} is not one (KAFKA_BOOTSTRAP_SERVERS "
                    f"or bootstrap names an existing cluster): use a service fault, or unset it"
                )
            # Found now, so the signal leaves on time (a metadata request takes ~0.1 s).
            self._target_node = self._leader()
            self.cluster.node_pid(self._target_node)  # the leader is one of our nodes
        if self.kind in SERVICE_FAULTS:
            if self.service is None:
                raise FaultError(f"fault {self.kind} signals the service process; this run drives a "
                                 "service the suite did not start")
            psutil.Process(self.service.pid)

    # --- the protocol ------------------------------------------------------------------

    def start(self, window_start_ns: int) -> None:
        self._origin_ns = window_start_ns
        self._thread = threading.Thread(target=self._run, name=f"fault-{self.kind}", daemon=True)
        self._thread.start()

    def wait_finished(self, timeout: float) -> bool:
        """Until the scheduled actions are done (tests; the runner calls stop())."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def stop(self) -> dict[str, Any]:
        """Undo what is still active, close open windows at this moment, return `faults`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.restart_timeout_s + 60)
            if self._thread.is_alive():
                self._fail("the fault thread did not finish")
        end = self._now_s()
        if self._paused_node is not None:
            self._act(lambda: self._cluster().signal_node(self._paused_node, signal.SIGCONT),
                      f"SIGCONT node {self._paused_node} after the load")
            self.recovered_at_s = self.recovered_at_s if self.recovered_at_s is not None else end
            self._paused_node = None
        with self._lock:
            for window in self.windows:
                if window[1] is None:
                    window[1] = end
        if self._killed_node is not None:
            # Back before the audit, so it reads every replica (and the next run finds 3 nodes).
            node = self._killed_node
            self._act(lambda: self._cluster().start_node(node, timeout=self.restart_timeout_s),
                      f"node {node} started again after the load (for the audit)")
            self._killed_node = None
        return self.section()

    def section(self) -> dict[str, Any]:
        with self._lock:
            section: dict[str, Any] = {
                "kind": self.kind,
                "target": self.target,
                "at_s": self.at_s,
                "duration_s": self.duration_s,
                "windows": [[_r(a), _r(b)] for a, b in self.windows],
                "events": list(self.events),
                "recovered_at_s": _r(self.recovered_at_s),
                "service_restarted": self.service_restarted,
                "injected": self.injected,
            }
        if self.error is not None:
            section["error"] = self.error
        return section

    # --- the schedule ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if not self._sleep_until(self.at_s):
                self._fail(f"the load ended before the fault time {self.at_s} s")
                return
            if self.kind in ("service-kill", "service-term"):
                sig = signal.SIGKILL if self.kind == "service-kill" else signal.SIGTERM
                self._signal_service(sig)
                if self.service_restart and self._sleep_until(self.at_s + self.duration_s):
                    self._restart_service()
            elif self.kind == "broker-kill":
                node = self._signal_leader(signal.SIGKILL)
                self._killed_node = node
                self._watch_failover(node)
            elif self.kind == "broker-pause":
                node = self._signal_leader(signal.SIGSTOP)
                self._paused_node = node
                if self._sleep_until(self.at_s + self.duration_s):
                    self._continue(node)
            elif self.kind == "broker-restart":
                node = self._signal_leader(signal.SIGKILL)
                self._killed_node = node
                if self._sleep_until(self.at_s + self.duration_s):
                    self._restart_node(node)
            elif self.kind == "broker-pause+service-kill":
                node = self._signal_leader(signal.SIGSTOP)
                self._paused_node = node
                if self._sleep_until(self.at_s + self.duration_s):
                    self._signal_service(signal.SIGKILL)
                    self._continue(node, recovered=False)
                    if self.service_restart:
                        self._restart_service()
        except Exception as exc:  # recorded, and the caller fails the run on it
            self._fail(f"{type(exc).__name__}: {exc}")

    def _signal_service(self, sig: signal.Signals) -> None:
        pid, port = self.service.pid, self.service.port
        if not self.target:
            self.target = f"service pid {pid} on port {port}"
        else:
            self.target += f"; then service pid {pid} on port {port}"
        pids = signal_tree(pid, sig)
        t = self._now_s()
        self.injected = True
        self._close_windows(t)
        self._open_window(t)
        extra = f" and its workers {pids[1:]}" if len(pids) > 1 else ""
        self._event(t, f"{sig.name} service (pid {pid}{extra}, port {port})")

    def _restart_service(self) -> None:
        t = self._now_s()
        self._event(t, f"starting the service again on port {self.service.port}")
        self.service.start()
        t = self._now_s()
        self.service_restarted = True
        self.recovered_at_s = t
        self._close_windows(t)
        self._event(t, f"service ready again (pid {self.service.pid})")

    def _leader(self) -> int:
        leader = self.leader_of(self.bootstrap, self.topic, self.partition)
        if leader < 0:
            raise FaultError(f"{self.topic} partition {self.partition} has no leader to act on")
        return leader

    def _signal_leader(self, sig: signal.Signals) -> int:
        node = self._target_node if self._target_node is not None else self._leader()
        cluster = self._cluster()
        pid = cluster.node_pid(node)
        self.target = f"node {node} (pid {pid}), leader of {self.topic} partition {self.partition}"
        cluster.signal_node(node, sig)
        t = self._now_s()
        self.injected = True
        self._open_window(t)
        self._event(t, f"{sig.name} broker node {node} (pid {pid}, leader of p{self.partition})")
        return node

    def _continue(self, node: int, recovered: bool = True) -> None:
        self._cluster().signal_node(node, signal.SIGCONT)
        self._paused_node = None
        t = self._now_s()
        if recovered:  # else the service was killed at this moment: its window stays open
            self.recovered_at_s = t
            self._close_windows(t)
        self._event(t, f"SIGCONT broker node {node}")

    def _restart_node(self, node: int) -> None:
        self._event(self._now_s(), f"starting broker node {node} again")
        self._cluster().start_node(node, timeout=self.restart_timeout_s)
        self._killed_node = None
        t = self._now_s()
        self.recovered_at_s = t
        self._close_windows(t)
        self._event(t, f"broker node {node} back in the cluster")

    def _watch_failover(self, killed: int) -> None:
        """Until another node leads the partition (Kafka notices a SIGKILL only when the
        broker's session times out): that moment is when the topic is writable again."""
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                leader = self.leader_of(self.bootstrap, self.topic, self.partition)
                if leader not in (killed, -1):
                    t = self._now_s()
                    self.recovered_at_s = t
                    self._event(t, f"node {leader} now leads {self.topic} partition {self.partition}")
                    return
            self._stop.wait(POLL_S)

    # --- bookkeeping -------------------------------------------------------------------

    def _cluster(self) -> Cluster:
        if self.cluster is None:
            raise FaultError(f"fault {self.kind} needs the local cluster")
        return self.cluster

    def _sleep_until(self, at_s: float) -> bool:
        return self.clock.sleep_until(self._origin_ns + round(at_s * NS_PER_S), self._stop)

    def _now_s(self) -> float:
        return (self.clock.now_ns() - self._origin_ns) / NS_PER_S

    def _event(self, t: float, what: str) -> None:
        with self._lock:
            self.events.append({"t_s": _r(t), "what": what})

    def _open_window(self, t: float) -> None:
        with self._lock:
            self.windows.append([t, None])

    def _close_windows(self, t: float) -> None:
        with self._lock:
            for window in self.windows:
                if window[1] is None:
                    window[1] = t

    def _act(self, action: Callable[[], object], what: str) -> None:
        try:
            action()
            self._event(self._now_s(), what)
        except Exception as exc:
            self._fail(f"{what} failed: {type(exc).__name__}: {exc}")

    def _fail(self, why: str) -> None:
        self.error = why if self.error is None else f"{self.error}; {why}"
        self._event(self._now_s(), f"error: {why}")


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 3)
