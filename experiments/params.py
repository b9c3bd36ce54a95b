"""The parameters of one run: the single source of truth behind the run notebook's
`parameters` cell, the plan files and the runner (a test keeps the notebook in step)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from experiments.errors import LabError
from experiments.faults import FAULTS, SERVICE_FAULTS, TIMED_FAULTS
from experiments.load.agentclient import DEFAULT_TOKEN_ENV
from experiments.load.remote import LoadHostsError, is_local, parse_addresses
from experiments.load.spec import DEFAULT_ENGINE, ENGINES
from experiments.network.layout import LOOPBACK, NetworkError, NetworkLayout, resolve
from experiments.target import ExternalTarget, TargetError
from service.kafka.delivery import DeliveryBridge, DeliveryReports
from service.modes import ProducerMode
from service.settings import Settings

PROFILES_DIR = Path(__file__).with_name("profiles")
ENDPOINTS = ("seed", "single", "batch")
LOAD_MODELS = ("closed", "open")
# The service's own enums are the source of the allowed values, and its settings of the
# delivery bridge's default: a run parameter that the service reads is declared there.
MODES = tuple(m.value for m in ProducerMode)
BRIDGES = tuple(b.value for b in DeliveryBridge)
REPORTS = tuple(r.value for r in DeliveryReports)
DEFAULT_BRIDGE = Settings.model_fields["delivery_bridge"].default.value
DEFAULT_REPORTS = Settings.model_fields["delivery_reports"].default.value
CLUSTER_SIZES = (1, 3)  # local cluster layouts measured on 2 cores (experiments/kafka/broker.py)
SERVICE_IMPLS = ("python", "rust")  # service/, or the article's design in experiments/native


# Fields that say where a run writes, which broker or topic it uses, or which trial it is:
# they differ between trials of one experiment and never define a configuration.
BOOKKEEPING = {"factor": False}


def setting(name: str) -> dict[str, str]:
    """Metadata of a field that is the launched service's setting `name` (service/settings.py):
    passed to it by `RunParams.service_settings`, with no further code per setting."""
    return {"setting": name}


class ParamsError(LabError):
    """A run or plan names a parameter or a value that does not exist."""


@dataclass(frozen=True)
class RunParams:
    mode: str = "durable"  # producer mode of the service: durable | fire-and-forget
    endpoint: str = "seed"  # seed (POST /) | single (POST /v1/events) | batch
    load_model: str = "closed"  # closed (N connections) | open (constant rate)
    connections: int = 50  # closed loop: concurrency; open loop: connection cap
    rate: float = 1000.0  # open loop: requests per second
    duration_s: float = 60.0  # measured window
    warmup_s: float = 5.0  # excluded from the measured window
    data_fields: int = 1  # keys in the event's `data` object
    field_size: int = 5  # bytes of each `data` value
    batch_size: int = 1  # events per request on the batch endpoint
    load_workers: int = 1  # load generator processes
    producer_profile: str = "default"  # a file in experiments/profiles/
    producer_config: dict[str, Any] = field(default_factory=dict)  # librdkafka overrides
    service_workers: int = field(default=1, metadata=setting("workers"))
    # loop (poll on the event loop) | thread (the classic poll thread)
    delivery_bridge: str = field(default=DEFAULT_BRIDGE, metadata=setting("delivery_bridge"))
    # all (a report per event: the delivery-latency histogram) | errors (fire-and-forget only)
    delivery_reports: str = field(default=DEFAULT_REPORTS, metadata=setting("delivery_reports"))
    bootstrap: str = field(default="", metadata=BOOKKEEPING)  # empty: KAFKA_BOOTSTRAP_SERVERS or local
    topic: str = field(default="", metadata=BOOKKEEPING)  # empty: a fresh topic per run (audits apart)
    partitions: int = 1
    cluster_size: int = 1  # nodes of the local cluster: 1 | 3 (an existing cluster: its broker count)
    replication_factor: int = 0  # of the run topic; 0: 1 on one broker, 3 on three
    min_insync_replicas: int = 0  # of the run topic; 0: 1 on one broker, 2 on three
    # The network between the parts (experiments/network; the suite's local cluster only):
    # every listener of every node behind a latency proxy. `network` is a profile (loopback:
    # no proxy, as before | same-zone | cross-zone | cross-region) or "<N>ms" on every link;
    # a link's own value overrides it (None: the profile's). Whole milliseconds (the proxy's
    # resolution); jitter is per direction: each direction's delay varies uniformly by +- it.
    network: str = LOOPBACK  # loopback | same-zone | cross-zone | cross-region | "<N>ms"
    network_client_rtt_ms: float | None = None  # round trip service (every client) <-> each broker
    network_client_jitter_ms: float | None = None  # +- per direction on the client links
    network_broker_rtt_ms: float | None = None  # broker <-> broker: replication and the controller quorum
    network_broker_jitter_ms: float | None = None  # +- per direction on the broker links
    fault: str = "none"  # none | a kind of experiments/faults.py FAULTS (service-kill, broker-pause, ...)
    fault_at_s: float = 5.0  # when the fault strikes, seconds into the measured window
    fault_duration_s: float = 5.0  # until the recovery action (SIGCONT, restart of the node or service)
    service_restart: bool = False  # start the service again on its port after a service fault
    load_engine: str = DEFAULT_ENGINE  # the generator's HTTP engine: aiohttp | raw (experiments/load)
    service_impl: str = "python"  # python (service/) | rust (experiments/native: the article's design)
    target_url: str = ""  # empty: the suite launches the service; else drive this one, launch nothing
    allow_remote: bool = False  # let target_url be a non-loopback address
    access_control: bool = False  # API keys on in the service; the generator sends a per-run key
    # Generator agents ("host:port,host:port", experiments/load/agent.py): the load runs on
    # them, load_workers on each, the rate (open loop) or connections (closed) split evenly.
    load_hosts: str = ""  # empty: the generator runs on this machine
    # The environment variable holding the agents' shared token (the token is never recorded).
    load_token_env: str = field(default=DEFAULT_TOKEN_ENV, metadata=BOOKKEEPING)
    trial: int = field(default=1, metadata=BOOKKEEPING)
    seed: int = field(default=1, metadata=BOOKKEEPING)  # payload seed (trial is added: trials differ)
    generator_ceiling_rps: float = field(default=0.0, metadata=BOOKKEEPING)  # 0: unknown (runner measures)
    plan: str = field(default="adhoc", metadata=BOOKKEEPING)
    cell: str = field(default="adhoc", metadata=BOOKKEEPING)
    output_dir: str = field(default="results/adhoc/run", metadata=BOOKKEEPING)

    def __post_init__(self) -> None:
        for name, allowed in (
            ("mode", MODES),
            ("endpoint", ENDPOINTS),
            ("load_model", LOAD_MODELS),
            ("delivery_bridge", BRIDGES),
            ("delivery_reports", REPORTS),
            ("load_engine", ENGINES),
            ("service_impl", SERVICE_IMPLS),
        ):
            if getattr(self, name) not in allowed:
                raise ParamsError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if self.delivery_reports != DEFAULT_REPORTS and (
                self.mode != "fire-and-forget" or self.target_url or self.service_impl != "python"):
            raise ParamsError("delivery_reports=errors is a setting of the Python service the suite "
                              "launches in fire-and-forget mode (durable waits for every report)")
        if self.endpoint != "batch" and self.batch_size != 1:
            raise ParamsError("batch_size applies to the batch endpoint only")
        self._check_cluster()
        self._check_fault()
        self._check_target()
        self._check_network()
        self._check_load_hosts()

    def _check_load_hosts(self) -> None:
        try:
            addresses = parse_addresses(self.load_hosts)
        except LoadHostsError as exc:
            raise ParamsError(str(exc)) from None
        if any(not is_local(a) for a in addresses) and not self.target_url:
            raise ParamsError(
                f"load_hosts {self.load_hosts!r} includes other machines, which cannot reach a service "
                f"the suite launches on this machine's loopback: deploy it and name it with target_url"
            )

    def _check_target(self) -> None:
        if self.access_control and (self.target_url or self.service_impl != "python"):
            raise ParamsError("access_control configures the API keys of the Python service the suite "
                              "launches; it cannot set them on a target_url or on service_impl=rust")
        if not self.target_url:
            return
        try:
            ExternalTarget(self.target_url, allow_remote=self.allow_remote)
        except TargetError as exc:
            raise ParamsError(str(exc)) from None
        if self.service_impl != "python":
            raise ParamsError("service_impl chooses what the suite launches; with target_url it launches "
                              "nothing")
        if not self.topic:
            raise ParamsError("target_url names a service the suite did not start, which writes to a topic "
                              "of its own: name that topic with `topic` so the audit can read it")
        if self.fault in SERVICE_FAULTS:
            raise ParamsError(f"fault {self.fault} signals the service process, which the suite did not "
                              "start (target_url): use a broker fault, or let the suite launch the service")

    def network_layout(self) -> NetworkLayout:
        """The network this run asks for (experiments/network/layout.py)."""
        return resolve(self.network, self.network_client_rtt_ms, self.network_client_jitter_ms,
                       self.network_broker_rtt_ms, self.network_broker_jitter_ms)

    def _check_network(self) -> None:
        """A proxied network needs the suite's own cluster and service; what can be told from
        the parameters alone is refused here (an address the runner hands over is checked by
        experiments.experiment.connect, against the local cluster's state)."""
        try:
            proxied = self.network_layout().proxied
        except NetworkError as exc:
            raise ParamsError(str(exc)) from None
        if not proxied:
            return
        hosts = {address.rpartition(":")[0] for address in self.bootstrap.split(",") if address}
        if hosts - {"127.0.0.1", "localhost"}:
            raise ParamsError(
                f"network={self.network!r} puts a latency proxy before every listener of the suite's own "
                f"cluster; bootstrap={self.bootstrap!r} is an existing cluster whose listeners "
                f"it cannot reach: unset bootstrap, or use network: loopback"
            )
        if self.target_url:
            raise ParamsError(
                f"network={self.network!r} delays the links of the cluster the suite starts; the service at "
                f"target_url reaches Kafka by a route of its own, around the proxies: use network: loopback"
            )

    def _check_cluster(self) -> None:
        if self.cluster_size not in CLUSTER_SIZES:
            raise ParamsError(f"cluster_size={self.cluster_size}: expected one of {CLUSTER_SIZES}")
        if not 0 <= self.replication_factor <= self.cluster_size:
            raise ParamsError(
                f"replication_factor={self.replication_factor} needs that many brokers; cluster_size is "
                f"{self.cluster_size} (0 picks {min(3, self.cluster_size)})"
            )
        if not 0 <= self.min_insync_replicas <= self.effective_replication_factor():
            raise ParamsError(
                f"min_insync_replicas={self.min_insync_replicas} is above the replication factor "
                f"{self.effective_replication_factor()}: no write could ever succeed"
            )

    def _check_fault(self) -> None:
        if self.fault not in FAULTS:
            raise ParamsError(f"fault={self.fault!r}: expected one of {FAULTS}")
        if self.fault == "none":
            return
        if not 0 <= self.fault_at_s < self.duration_s:
            raise ParamsError(
                f"fault_at_s={self.fault_at_s} is outside the measured window [0, {self.duration_s}) s"
            )
        recovers = self.fault in TIMED_FAULTS or (self.fault in SERVICE_FAULTS and self.service_restart)
        if recovers and not (
            self.fault_duration_s > 0 and self.fault_at_s + self.fault_duration_s <= self.duration_s
        ):
            raise ParamsError(
                f"fault {self.fault} at {self.fault_at_s} s for {self.fault_duration_s} s must recover "
                f"inside the measured window of {self.duration_s} s (0 < fault_duration_s, "
                f"fault_at_s + fault_duration_s <= duration_s)"
            )
        if self.fault == "broker-kill" and self.cluster_size == 1:
            raise ParamsError(
                "fault broker-kill on a one-node cluster takes the only broker away for the rest of the "
                "run (no replica to fail over to): use cluster_size 3, or broker-restart / broker-pause"
            )

    def service_settings(self) -> dict[str, Any]:
        """The launched service's settings this run sets, by the service's own names."""
        return {f.metadata["setting"]: getattr(self, f.name) for f in fields(self)
                if "setting" in f.metadata}

    @classmethod
    def bookkeeping(cls) -> frozenset[str]:
        """The parameters that are not experimental factors (BOOKKEEPING)."""
        return frozenset(f.name for f in fields(cls) if not f.metadata.get("factor", True))

    def effective_replication_factor(self) -> int:
        return self.replication_factor or min(3, self.cluster_size)

    def effective_min_insync_replicas(self) -> int:
        return self.min_insync_replicas or max(1, self.effective_replication_factor() - 1)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunParams:
        values = renamed(values)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParamsError(f"unknown run parameters {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_namespace(cls, namespace: dict[str, Any]) -> RunParams:
        """The run parameters found in a notebook's namespace (after papermill injected them)."""
        namespace = renamed(namespace)
        return cls(**{f.name: namespace[f.name] for f in fields(cls) if f.name in namespace})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def effective_producer_config(self) -> dict[str, Any]:
        """The profile's librdkafka settings with this run's overrides on top."""
        return {**load_profile(self.producer_profile), **self.producer_config}


# Old names of run parameters, still accepted from plans, papermill `-p` and scripts.
RENAMED = {"kafka_bootstrap": "bootstrap"}


def renamed(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with RENAMED parameters under their new names (a new name given wins)."""
    old = {k: v for k, v in values.items() if k in RENAMED}
    if not old:
        return values
    return {**{k: v for k, v in values.items() if k not in RENAMED},
            **{RENAMED[k]: v for k, v in old.items() if RENAMED[k] not in values or not values[RENAMED[k]]}}


def load_profile(name: str) -> dict[str, Any]:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        available = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise ParamsError(f"producer profile {name!r} not found; available: {available}")
    data = yaml.safe_load(path.read_text()) or {}
    config = data.get("producer", {})
    if not isinstance(config, dict):
        raise ParamsError(f"{path}: `producer` must be a mapping of librdkafka settings")
    return config
