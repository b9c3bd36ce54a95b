"""A local KRaft cluster on 127.0.0.1: one node (the default) or several, each a
combined broker and controller.

Nodes run detached from the Python process that started them, so `up` in one command
and `down` in another work; every node's pid, ports and data directory live in one
state file under the run directory. That is how a second `start()` finds the running
cluster instead of starting another one, and how a fault injector in another process
finds the node to kill, pause or restart (each node keeps its ports across restarts).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import psutil

from experiments.errors import KafkaStartError
from experiments.kafka.jars import ensure_jars, find_java, kafka_version
from experiments.kafka.topics import broker_ready, live_brokers
from experiments.network.build import build as build_proxy
from experiments.network.calibrate import correct
from experiments.network.layout import LOOPBACK_LAYOUT, NetworkLayout
from experiments.network.proxy import LISTENERS, ProxyState, Route, proxy_alive, start_proxies, stop_proxies

REPO_ROOT = Path(__file__).resolve().parents[2]
_LOG4J2 = """\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.err.ref = STDERR
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

GC_LOG = "gc.log"  # per node, in its directory of the run


def default_home() -> Path:
    """Where jars are cached and the broker keeps its state (`LAB_KAFKA_HOME` overrides)."""
    return Path(os.environ.get("LAB_KAFKA_HOME", REPO_ROOT / ".kafka"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not a running broker.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _die_with_parent() -> None:
    """preexec hook: the kernel kills the broker if the process that started it dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


# Heap per node. One node keeps the stock 1 GiB; three combined nodes at 384 MiB each
# came up in 10-12 s beside a 50-connection load on 2 cores (docs/kafka-local.md).
HEAP_ONE_NODE = "1g"
HEAP_PER_NODE_IN_CLUSTER = "384m"


@dataclass(frozen=True)
class NodeState:
    """One node of the cluster: its process and the addresses it keeps across restarts."""

    node_id: int
    pid: int
    port: int
    controller_port: int
    data_dir: str
    log_file: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class BrokerState:
    """The local cluster as its state file records it."""

    bootstrap: str
    cluster_id: str
    kafka_version: str
    started_at: str
    heap: str
    nodes: tuple[NodeState, ...]
    # The latency proxy every listener goes through (experiments/network); None: none.
    network: ProxyState | None = None

    @property
    def layout(self) -> NetworkLayout:
        return self.network.layout if self.network is not None else LOOPBACK_LAYOUT

    @property
    def pid(self) -> int:
        """The first node's pid (the broker's, on a one-node cluster)."""
        return self.nodes[0].pid

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def node(self, node_id: int) -> NodeState:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = [n.node_id for n in self.nodes]
        raise KafkaStartError(f"no node {node_id} in the local cluster (nodes {known})")

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        # Without a proxy the state file stays as it was before networks existed.
        if self.network is None:
            del data["network"]
        else:
            data["network"] = self.network.as_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BrokerState:
        if "nodes" not in data:  # the one-broker state file of earlier versions
            data = {
                "bootstrap": data["bootstrap"], "cluster_id": "", "kafka_version": data["kafka_version"],
                "started_at": data["started_at"], "heap": "",
                "nodes": [{"node_id": 1, **{k: data[k] for k in
                                            ("pid", "port", "controller_port", "data_dir", "log_file")}}],
            }
        nodes = tuple(NodeState(**n) for n in data["nodes"])  # type: ignore[attr-defined]
        network = ProxyState.from_dict(data["network"]) if data.get("network") else None  # type: ignore[arg-type]
        return cls(**{**data, "nodes": nodes, "network": network})  # type: ignore[arg-type]


def new_cluster_id() -> str:
    """What `kafka.tools.StorageTool random-uuid` prints (a base64url UUID), without a JVM start."""
    while True:
        text = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that read as a command-line flag
            return text


def server_properties(node: NodeState, voters: str, cluster_size: int) -> dict[str, str]:
    replicas = str(min(3, cluster_size))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": node.data_dir,
        "num.partitions": "1",
        "default.replication.factor": replicas,
        # One node: 1, as before; three: a write survives one node's loss (run topics set their own).
        "min.insync.replicas": str(max(1, int(replicas) - 1)),
        "offsets.topic.replication.factor": replicas,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": str(max(1, int(replicas) - 1)),
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": str(max(1, int(replicas) - 1)),
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created on purpose (by the runner, the tests or the service), so a
        # typo in a topic name fails loudly instead of silently creating a new topic.
        "auto.create.topics.enable": "false",
    }


def proxied_listeners(node: NodeState, routes: dict[str, Route], voters: str) -> dict[str, str]:
    """A node's listener settings behind its proxies (experiments/network/proxy.py): it
    listens on its own ports and advertises the proxies' only, so a client or a follower
    that learns an address from the metadata reaches the node through its link. Replication
    gets a listener of its own (REPLICATION), so it can be delayed apart from clients."""
    client, replication = routes["client"], routes["replication"]
    return {
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},REPLICATION://127.0.0.1:{replication.upstream_port},"
                     f"CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{client.listen_port},"
                                f"REPLICATION://127.0.0.1:{replication.listen_port}",
        "inter.broker.listener.name": "REPLICATION",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,REPLICATION:PLAINTEXT",
    }


def process_state(pid: int) -> str:
    """'running', 'paused' (SIGSTOPped) or 'dead' (gone or a zombie)."""
    if not pid_alive(pid):
        return "dead"
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t"):
            return "paused"
    return "running"


class LocalKafka:
    """Fetch, configure, start, find and stop the project's own cluster, and act on one node."""

    def __init__(
        self,
        run_dir: Path | None = None,
        cache_dir: Path | None = None,
        heap: str | None = None,
        die_with_parent: bool = False,
        port: int | None = None,
        controller_port: int | None = None,
        nodes: int = 1,
        network: NetworkLayout | None = None,
    ) -> None:
        if nodes < 1:
            raise KafkaStartError(f"a cluster needs at least one node, not {nodes}")
        home = default_home()
        self.cache_dir = cache_dir or home
        self.run_dir = run_dir or home / "run"
        self.nodes = nodes
        default_heap = HEAP_ONE_NODE if nodes == 1 else HEAP_PER_NODE_IN_CLUSTER
        self.heap = heap or os.environ.get("LAB_KAFKA_HEAP", default_heap)
        self.die_with_parent = die_with_parent
        # Fixed ports (one-node clusters only) survive a stop/start, so a running client can
        # reconnect to the same address; None: fresh free ports whenever the cluster is created.
        self.port = port
        self.controller_port = controller_port
        # The network a start must give the cluster (a running one with another is replaced);
        # None: whatever runs is kept (the plan runner heals a cluster without knowing it).
        self.network = network
        # Nodes are started from several threads (a fault injector restarts one): the state
        # file is rewritten under this lock.
        self._lock = threading.Lock()

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    def status(self) -> BrokerState | None:
        """The cluster this run directory owns while any of its nodes runs, or None."""
        state = self._read_state()
        if state is None or all(process_state(n.pid) == "dead" for n in state.nodes):
            return None
        return state

    def node_status(self) -> dict[int, str]:
        """node id -> 'running' | 'paused' | 'dead' (empty when no state file)."""
        state = self._read_state()
        return {n.node_id: process_state(n.pid) for n in state.nodes} if state else {}

    def _read_state(self) -> BrokerState | None:
        """What the state file says, whether or not that cluster still runs."""
        try:
            return BrokerState.from_dict(json.loads(self.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return None

    def _write_state(self, state: BrokerState) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.as_dict(), indent=2))
        tmp.replace(self.state_file)

    def start(self, timeout: float = 90.0) -> BrokerState:
        """Start the cluster and wait until every node is in the metadata; idempotent.

        A running cluster of this size is healed instead (paused nodes continued, dead
        nodes started again on their own ports and data); one of another size is stopped
        and replaced.
        """
        if self.network is not None and self.network.proxied:
            # Before a running cluster is stopped to be moved: without the proxy (and no Go to
            # build it) the start must fail while that cluster still runs, saying what to do.
            build_proxy()
        running = self.status()
        stale = self._read_state() if running is None else None
        if stale is not None and stale.network is not None:
            stop_proxies(stale.network)  # every node died, its proxy did not (a killed test session)
        if running is not None and (len(running.nodes) != self.nodes or not self._network_matches(running)):
            self.stop()
            running = None
        if running is not None and running.network is not None and not proxy_alive(running.network):
            # Nodes cannot be healed behind a proxy that is gone: the cluster is made again.
            self.stop()
            return self._create(timeout, running.layout)
        if running is not None:
            for node in running.nodes:
                if process_state(node.pid) == "paused":
                    os.kill(node.pid, signal.SIGCONT)
                elif process_state(node.pid) == "dead":
                    running = self.start_node(node.node_id, timeout=timeout, wait=False)
            self._wait_ready(running, timeout, procs={})
            return running
        return self._create(timeout, self.network or LOOPBACK_LAYOUT)

    def _network_matches(self, running: BrokerState) -> bool:
        return self.network is None or running.layout.same_network(self.network)

    def _create(self, timeout: float, layout: NetworkLayout) -> BrokerState:
        java = find_java()
        jars = ensure_jars(self.cache_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "log4j2.properties").write_text(_LOG4J2)
        ports = self._ports()
        nodes = tuple(
            NodeState(
                node_id=i,
                pid=0,
                port=ports[2 * (i - 1)],
                controller_port=ports[2 * (i - 1) + 1],
                data_dir=str(self._node_dir(i) / "data"),
                log_file=str(self._node_dir(i) / "broker.log"),
            )
            for i in range(1, self.nodes + 1)
        )
        routes = self._routes(nodes, ports) if layout.proxied else []
        controller_ports = {r.node_id: r.listen_port for r in routes if r.listener == "controller"}
        voters = ",".join(f"{n.node_id}@127.0.0.1:{controller_ports.get(n.node_id, n.controller_port)}"
                          for n in nodes)
        for node in nodes:
            self._node_dir(node.node_id).mkdir(parents=True, exist_ok=True)
            (self._node_dir(node.node_id) / "logs").mkdir(exist_ok=True)
            props = server_properties(node, voters, self.nodes)
            own = {r.listener: r for r in routes if r.node_id == node.node_id}
            if own:
                props.update(proxied_listeners(node, own, voters))
            self._props(node.node_id).write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        # Every proxy and toxic is in place before a node or client connects through it.
        network = start_proxies(layout, routes, self.run_dir, api_port=self._free_port(ports),
                                preexec_fn=self._preexec()) if routes else None
        try:
            return self._format_and_spawn(timeout, java, jars, nodes, network)
        except BaseException:
            if network is not None:
                stop_proxies(network)  # a start that failed leaves no proxy behind (a no-op if stopped)
            raise

    def _format_and_spawn(self, timeout: float, java: str, jars: Path, nodes: tuple[NodeState, ...],
                          network: ProxyState | None) -> BrokerState:
        cluster_id = self._existing_cluster_id(nodes) or new_cluster_id()
        # Every node is formatted with the one cluster id, in parallel (a JVM start each).
        formats = [
            (node, subprocess.Popen(
                [*self._jvm(java, jars, node.node_id), "kafka.tools.StorageTool", "format",
                 "-t", cluster_id, "-c", str(self._props(node.node_id)), "-g"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            for node in nodes if not (Path(node.data_dir) / "meta.properties").exists()
        ]
        for node, fmt in formats:
            out = fmt.communicate()[0]
            if fmt.returncode != 0:
                raise KafkaStartError(f"formatting the KRaft storage of node {node.node_id} failed", out)
        clients = [f"127.0.0.1:{network.route(n.node_id, 'client').listen_port}" for n in nodes] \
            if network is not None else [n.bootstrap for n in nodes]
        state = BrokerState(
            bootstrap=",".join(clients),
            cluster_id=cluster_id,
            kafka_version=kafka_version(),
            started_at=datetime.now(UTC).isoformat(),
            heap=self.heap,
            nodes=nodes,
            network=network,
        )
        procs = {}
        with self._lock:
            for node in nodes:
                procs[node.node_id] = self._spawn(java, jars, node)
            state = replace(state, nodes=tuple(replace(n, pid=procs[n.node_id].pid) for n in nodes))
            self._write_state(state)
        self._wait_ready(state, timeout, procs)
        if network is not None:
            # What the proxy itself adds can only be measured through running nodes.
            state = replace(state, network=correct(network))
            with self._lock:
                self._write_state(state)
        return state

    def _routes(self, nodes: tuple[NodeState, ...], taken: list[int]) -> list[Route]:
        """Per node: a REPLICATION listener of its own, and a proxy before each listener."""
        routes = []
        for node in nodes:
            upstream = {"client": node.port, "replication": self._free_port(taken),
                        "controller": node.controller_port}
            routes += [Route(node.node_id, listener, self._free_port(taken), upstream[listener])
                       for listener in LISTENERS]
        return routes

    @staticmethod
    def _free_port(taken: list[int]) -> int:
        """A free port not in `taken` (which it joins: ports asked together stay distinct)."""
        while True:
            port = free_port()
            if port not in taken:
                taken.append(port)
                return port

    def _preexec(self) -> Callable[[], None] | None:
        # Armed from the main thread only: see _spawn.
        die = self.die_with_parent and threading.current_thread() is threading.main_thread()
        return _die_with_parent if die else None

    def _ports(self) -> list[int]:
        """Two distinct ports per node: the given ones for a one-node cluster, else free ones."""
        ports: list[int] = []
        if self.nodes == 1:
            ports = [p for p in (self.port, self.controller_port) if p]
        while len(ports) < 2 * self.nodes:
            port = free_port()
            if port not in ports:
                ports.append(port)
        return ports

    def _existing_cluster_id(self, nodes: tuple[NodeState, ...]) -> str | None:
        """The id a kept data directory was formatted with (a restart after `stop(keep_data=True)`)."""
        for node in nodes:
            meta = Path(node.data_dir) / "meta.properties"
            with contextlib.suppress(FileNotFoundError):
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.split("=", 1)[1].strip()
        return None

    def _node_dir(self, node_id: int) -> Path:
        return self.run_dir / f"node-{node_id}"

    def _props(self, node_id: int) -> Path:
        return self._node_dir(node_id) / "server.properties"

    def _jvm(self, java: str, jars: Path, node_id: int) -> list[str]:
        return [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self._node_dir(node_id) / 'logs'}",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.properties'}",
            "-cp",
            f"{jars}/*",
        ]

    def _spawn(self, java: str, jars: Path, node: NodeState) -> subprocess.Popen[bytes]:
        # The kernel's parent-death signal fires when the *thread* that forked exits, so it
        # is only armed from the main thread: a node restarted by a fault injector's thread
        # must outlive that thread.
        die = self.die_with_parent and threading.current_thread() is threading.main_thread()
        # Each node's GC log beside its broker.log: a trial whose broker worked 4x harder per
        # event (README, "How far the trials agree") can then be read against its pauses.
        gc_log = f"-Xlog:gc:file={self._node_dir(node.node_id) / GC_LOG}:uptime,time:filecount=2,filesize=20m"
        with Path(node.log_file).open("ab") as log:
            return subprocess.Popen(
                [*self._jvm(java, jars, node.node_id), gc_log, "kafka.Kafka", str(self._props(node.node_id))],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if die else None,
            )

    def _wait_ready(self, state: BrokerState, timeout: float,
                    procs: dict[int, subprocess.Popen[bytes]]) -> None:
        """Until every node is listed in the cluster's metadata; a node that exits fails the start."""
        deadline = time.monotonic() + timeout
        wanted = {n.node_id for n in state.nodes}
        while time.monotonic() < deadline:
            for node_id, proc in procs.items():
                if proc.poll() is not None:
                    tail = self.log_tail(node_id=node_id)
                    self.stop()
                    raise KafkaStartError(f"node {node_id} exited with code {proc.returncode}", tail)
            # Listed in the metadata and answering on its own port: a node killed a moment
            # ago stays listed until its session times out, so the listing alone is not enough.
            if wanted <= live_brokers(state.bootstrap, timeout=2.0) and all(
                broker_ready(n.bootstrap, timeout=2.0) for n in state.nodes
            ):
                return
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise KafkaStartError(f"cluster not ready after {timeout:.0f}s (nodes {sorted(wanted)})", tail)

    # --- one node at a time (fault injection) -------------------------------------------

    def node_pid(self, node_id: int) -> int:
        """The pid of one node of the running cluster (an error when it is not ours or not running)."""
        node = self._require_state().node(node_id)
        if process_state(node.pid) == "dead":
            raise KafkaStartError(f"node {node_id} (pid {node.pid}) is not running")
        return node.pid

    def signal_node(self, node_id: int, sig: signal.Signals) -> int:
        """Send `sig` to one node's process; returns its pid."""
        state = self._require_state()
        node = state.node(node_id)
        if process_state(node.pid) == "dead":
            raise KafkaStartError(f"node {node_id} (pid {node.pid}) is not running")
        os.kill(node.pid, sig)
        if sig == signal.SIGKILL:
            _wait_dead(node.pid, timeout=10.0)
        return node.pid

    def start_node(self, node_id: int, timeout: float = 90.0, wait: bool = True) -> BrokerState:
        """Start one stopped node again, on its own ports and data; wait until it is in the metadata."""
        java = find_java()
        jars = ensure_jars(self.cache_dir)
        with self._lock:
            state = self._require_state()
            node = state.node(node_id)
            if process_state(node.pid) != "dead":
                raise KafkaStartError(f"node {node_id} (pid {node.pid}) still runs")
            for port in (node.port, node.controller_port):
                _wait_closed(port, timeout=10.0)
            proc = self._spawn(java, jars, node)
            state = self._read_state() or state
            state = replace(state, nodes=tuple(replace(n, pid=proc.pid) if n.node_id == node_id else n
                                               for n in state.nodes))
            self._write_state(state)
        if wait:
            self._wait_ready(state, timeout, procs={node_id: proc})
        return state

    def _require_state(self) -> BrokerState:
        state = self._read_state()
        if state is None:
            raise KafkaStartError(f"no local cluster recorded under {self.run_dir}")
        return state

    def stop(self, timeout: float = 20.0, keep_data: bool = False) -> bool:
        """Stop every node (SIGTERM together, SIGKILL after `timeout`) and wait for all ports to close."""
        state = self._read_state()
        if state is None:
            return False
        alive = [n for n in state.nodes if process_state(n.pid) != "dead"]
        for node in alive:
            with contextlib.suppress(ProcessLookupError):
                # A stopped process keeps SIGTERM pending: continue it first.
                os.kill(node.pid, signal.SIGCONT)
                os.killpg(node.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(pid_alive(n.pid) for n in alive) and time.monotonic() < deadline:
            for node in alive:
                _reap(node.pid)
            time.sleep(0.1)
        for node in alive:
            if pid_alive(node.pid):
                # A controller left without a quorum does not finish a clean shutdown.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.pid, signal.SIGKILL)
            _wait_dead(node.pid, timeout=30.0)
        for node in state.nodes:
            for port in (node.port, node.controller_port):
                _wait_closed(port, timeout=10.0)
        if state.network is not None:
            stop_proxies(state.network)
            for route in state.network.routes:
                _wait_closed(route.listen_port, timeout=10.0)
        self.state_file.unlink(missing_ok=True)
        if not keep_data:
            for node in state.nodes:
                shutil.rmtree(node.data_dir, ignore_errors=True)
        return bool(alive)

    def log_tail(self, lines: int = 40, node_id: int | None = None) -> str:
        ids = [node_id] if node_id is not None else list(range(1, self.nodes + 1))
        parts = []
        for i in ids:
            with contextlib.suppress(FileNotFoundError):
                text = (self._node_dir(i) / "broker.log").read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"[node {i}]\n" + "\n".join(text))
        return "\n".join(parts)


def _wait_dead(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.02)


def _wait_closed(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)

def _reap(pid: int) -> None:
    """Collect the broker's exit status when this process is its parent (no zombie left)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def listening_pid(bootstrap: str) -> int | None:
    """PID of the process listening on a loopback bootstrap address, to sample its CPU.

    Works for any broker on this machine (ours, a test fixture's or one the user runs),
    and gives None for a remote cluster, whose CPU this machine cannot see.
    """
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
        return None
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == int(port):
                return conn.pid
    except psutil.Error:
        return None
    return None
