"""A single-node KRaft broker (combined broker and controller) on 127.0.0.1.

The broker runs detached from the Python process that started it, so `up` in one
command and `down` in another work; its pid, ports and data directory live in a state
file under the run directory, which is how a second `start()` finds the first broker
instead of starting another one.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from experiments.errors import KafkaStartError
from experiments.kafka.jars import ensure_jars, find_java, kafka_version
from experiments.kafka.topics import broker_ready

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


@dataclass(frozen=True)
class BrokerState:
    pid: int
    bootstrap: str
    port: int
    controller_port: int
    data_dir: str
    log_file: str
    kafka_version: str
    started_at: str


def server_properties(port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Topics are created on purpose (by the runner, the tests or the service), so a
        # typo in a topic name fails loudly instead of silently creating a new topic.
        "auto.create.topics.enable": "false",
    }


class LocalKafka:
    """Fetch, configure, start, find and stop the project's own broker."""

    def __init__(
        self,
        run_dir: Path | None = None,
        cache_dir: Path | None = None,
        heap: str | None = None,
        die_with_parent: bool = False,
        port: int | None = None,
        controller_port: int | None = None,
    ) -> None:
        home = default_home()
        self.cache_dir = cache_dir or home
        self.run_dir = run_dir or home / "run"
        self.heap = heap or os.environ.get("LAB_KAFKA_HEAP", "1g")
        self.die_with_parent = die_with_parent
        # Fixed ports survive a stop/start, so a running client can reconnect to the same
        # address; None keeps the old behaviour (fresh free ports on every start).
        self.port = port
        self.controller_port = controller_port

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    def status(self) -> BrokerState | None:
        """The running broker this run directory owns, or None."""
        state = self._read_state()
        return state if state is not None and pid_alive(state.pid) else None

    def _read_state(self) -> BrokerState | None:
        """What the state file says, whether or not that broker still runs."""
        try:
            return BrokerState(**json.loads(self.state_file.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def start(self, timeout: float = 90.0) -> BrokerState:
        """Start the broker and wait until it answers metadata requests; idempotent."""
        running = self.status()
        if running is not None:
            if not broker_ready(running.bootstrap, timeout=timeout):
                raise KafkaStartError(f"broker pid {running.pid} runs but does not answer")
            return running
        java = find_java()
        jars = ensure_jars(self.cache_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data_dir = self.run_dir / "data"
        logs_dir = self.run_dir / "logs"
        logs_dir.mkdir(exist_ok=True)
        port = self.port or free_port()
        controller_port = self.controller_port or free_port()
        while controller_port == port:
            controller_port = free_port()
        props = self.run_dir / "server.properties"
        props.write_text(
            "".join(f"{k}={v}\n" for k, v in server_properties(port, controller_port, data_dir).items())
        )
        log4j = self.run_dir / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        classpath = f"{jars}/*"
        jvm = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={logs_dir}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
        ]
        log_file = self.run_dir / "broker.log"
        if not (data_dir / "meta.properties").exists():
            cluster_id = (
                subprocess.run(
                    [*jvm, "kafka.tools.StorageTool", "random-uuid"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            fmt = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), "-g"],
                capture_output=True,
                text=True,
                check=False,
            )
            if fmt.returncode != 0:
                raise KafkaStartError("formatting the KRaft storage failed", fmt.stdout + fmt.stderr)
        with log_file.open("ab") as log:
            proc = subprocess.Popen(
                [*jvm, "kafka.Kafka", str(props)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
        state = BrokerState(
            pid=proc.pid,
            bootstrap=f"127.0.0.1:{port}",
            port=port,
            controller_port=controller_port,
            data_dir=str(data_dir),
            log_file=str(log_file),
            kafka_version=kafka_version(),
            started_at=datetime.now(UTC).isoformat(),
        )
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.state_file.unlink(missing_ok=True)
                raise KafkaStartError(f"broker exited with code {proc.returncode}", self.log_tail())
            if broker_ready(state.bootstrap, timeout=2.0):
                return state
        self.stop()
        raise KafkaStartError(f"broker not ready after {timeout:.0f}s", self.log_tail())

    def stop(self, timeout: float = 30.0, keep_data: bool = False) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL) and wait for its ports to close."""
        state = self._read_state()
        if state is None:
            return False
        stopped = False
        if pid_alive(state.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(state.pid) and time.monotonic() < deadline:
                _reap(state.pid)
                time.sleep(0.1)
            if pid_alive(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
                while pid_alive(state.pid):
                    _reap(state.pid)
                    time.sleep(0.05)
            stopped = True
        for port in (state.port, state.controller_port):
            deadline = time.monotonic() + 10
            while port_open(port) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.state_file.unlink(missing_ok=True)
        if not keep_data:
            shutil.rmtree(state.data_dir, ignore_errors=True)
        return stopped

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.run_dir / "broker.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


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
