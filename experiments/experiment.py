"""One run, end to end: Kafka, a fresh topic, the service in one mode, load (with a fault
when asked), audit, files.

The run notebook calls `run_experiment` and nothing else; the runner calls the notebook.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.audit import audit_delivery
from experiments.cpu import Roots
from experiments.errors import LabError
from experiments.faults import BROKER_FAULTS, SERVICE_FAULTS, FaultError, FaultInjector
from experiments.kafka import (
    BOOTSTRAP_ENV,
    BrokerState,
    KafkaTarget,
    LocalKafka,
    create_topic,
    end_offsets,
    ensure_kafka,
    topic_replication,
    unique_topic,
)
from experiments.kafka.broker import listening_pid
from experiments.load import LoadSpec, apply_load
from experiments.load.remote import LoadHosts
from experiments.network import NetworkError
from experiments.network.record import add_proxy_cpu, network_section
from experiments.params import RunParams
from experiments.rundir import ACKS, METRICS, PROXY, SERVICE_LOG, RunDir, Summary
from experiments.service_proc import ServiceProcess
from experiments.target import ExternalTarget, LaunchedService, Target

LOADGEN_KEY_ID = "loadgen"  # the id the service records on each event (the key itself never is)


def load_spec(params: RunParams, url: str, api_key: str | None = None) -> LoadSpec:
    return LoadSpec(
        url=url,
        endpoint=params.endpoint,
        model=params.load_model,
        connections=params.connections,
        rate=params.rate,
        duration_s=params.duration_s,
        warmup_s=params.warmup_s,
        data_fields=params.data_fields,
        field_size=params.field_size,
        batch_size=params.batch_size,
        seed=params.seed + params.trial,
        workers=params.load_workers,
        engine=params.load_engine,  # type: ignore[arg-type]  # RunParams checked it against ENGINES
        allow_remote=params.allow_remote,
        api_key=api_key,
    )


def open_target(params: RunParams, bootstrap: str, topic: str, run_dir: RunDir,
                producer_config: dict[str, Any], api_key: str | None = None) -> Target:
    """The service this run drives: launched in the run's mode, or the one at target_url."""
    if params.target_url:
        return ExternalTarget(params.target_url, allow_remote=params.allow_remote)
    if params.service_impl == "rust":
        from experiments.native.service import RustService  # builds with cargo on first use

        rust = RustService(params.mode, bootstrap, topic, run_dir / SERVICE_LOG,
                           producer_config=producer_config, workers=params.service_workers,
                           topic_partitions=params.partitions)
        return LaunchedService(rust, impl="rust")
    keys = {"require_api_key": True, "api_keys": {LOADGEN_KEY_ID: api_key}} if api_key else {}
    service = ServiceProcess(params.mode, bootstrap, topic, run_dir / SERVICE_LOG,
                             producer_config=producer_config, topic_partitions=params.partitions,
                             **params.service_settings(), **keys)
    return LaunchedService(service)


def connect(params: RunParams) -> tuple[KafkaTarget, LocalKafka | None, BrokerState | None]:
    """The run's cluster, and the local cluster object and state when it is the suite's own.

    Without an address the local cluster of `cluster_size` nodes is started (or healed, or
    resized); an address the runner hands over may still be that local cluster.
    """
    explicit = params.bootstrap or os.environ.get(BOOTSTRAP_ENV, "")
    layout = params.network_layout()
    local = LocalKafka(nodes=params.cluster_size, network=layout)
    running = local.status() if explicit and layout.proxied else None
    if explicit and layout.proxied and (running is None or running.bootstrap != explicit):
        raise NetworkError(
            f"network={params.network!r} puts a latency proxy before every listener of the suite's own "
            f"cluster; {explicit} is an existing cluster ({BOOTSTRAP_ENV} or bootstrap), whose network "
            f"the suite cannot delay: unset it, or use network: loopback. Nothing was started."
        )
    kafka = ensure_kafka(explicit or None, local=local)
    state = local.status()
    if state is None or state.bootstrap != kafka.bootstrap:
        return kafka, None, None
    if len(state.nodes) != params.cluster_size:
        raise LabError(
            f"the local cluster at {kafka.bootstrap} has {len(state.nodes)} node(s); this run asks for "
            f"cluster_size {params.cluster_size} (the runner starts the right size per cell)"
        )
    if not state.layout.same_network(layout):
        # The runner handed over its cluster as it found it: it is started again with this
        # run's network (the next cell asking the same keeps it).
        state = local.start()
        kafka = replace(kafka, bootstrap=state.bootstrap)
    return kafka, local, state


class Stopwatch:
    """Wall seconds per phase of a run: what a cell costs beyond its load is measured."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(self.phases.get(name, 0.0) + time.perf_counter() - started, 3)

    def section(self) -> dict[str, float]:
        """`timings_s`: each phase, the total, and `fixed` = the total beyond the load."""
        total = time.perf_counter() - self.started
        return {**self.phases, "total": round(total, 3),
                "fixed": round(total - self.phases.get("load", 0.0), 3)}


def run_experiment(params: RunParams) -> Summary:
    """Execute one run into `params.output_dir` and return its summary."""
    clock = Stopwatch()
    run_dir = RunDir(Path(params.output_dir))
    run_dir.refuse_overwrite()
    out_dir = run_dir.path
    started_at = datetime.now(UTC).isoformat()
    with clock.phase("connect"):
        kafka, local, cluster = connect(params)
    if params.fault in BROKER_FAULTS and local is None:
        raise FaultError(
            f"fault {params.fault} signals a broker process, so it needs the suite's own local cluster; "
            f"{kafka.bootstrap} is an existing cluster ({BOOTSTRAP_ENV} or bootstrap): use a "
            f"service fault there, or unset it"
        )
    run_dir.claim()
    broker_pids: Roots | None = listening_pid(kafka.bootstrap)
    if local is not None and cluster is not None:
        started = cluster

        def broker_pids_now() -> list[int]:
            # Asked at every tick: a restarted node has a new pid in the cluster's state.
            return (local.status() or started).pids

        broker_pids = broker_pids_now
    kafka_version = cluster.kafka_version if cluster else kafka.kafka_version
    producer_config = params.effective_producer_config()
    topic = params.topic or unique_topic(f"lab.{params.plan}")
    # On the suite's cluster the run's values (or the documented defaults); on an existing
    # one, unset values are left to that cluster.
    with clock.phase("topic"):
        create_topic(
            kafka.bootstrap,
            topic,
            partitions=params.partitions,
            replication_factor=params.effective_replication_factor()
            if local or params.replication_factor else None,
            min_insync_replicas=params.effective_min_insync_replicas()
            if local or params.min_insync_replicas else None,
        )
        replication = topic_replication(kafka.bootstrap, topic)
    # A topic that held records before the run (a target's own) is audited from here on.
    start_offsets = end_offsets(kafka.bootstrap, topic) if params.target_url else None
    # A fresh key per run: the cost of access control is measured without a key to keep.
    api_key = secrets.token_urlsafe(24) if params.access_control else None
    target = open_target(params, kafka.bootstrap, topic, run_dir, producer_config, api_key)
    injector: FaultInjector | None = None
    try:
        with clock.phase("service_start"):
            target_section = target.start()
        if params.fault != "none":
            assert isinstance(target, LaunchedService) or params.fault not in SERVICE_FAULTS
            injector = FaultInjector(
                params.fault, params.fault_at_s, params.fault_duration_s,
                target.process if isinstance(target, LaunchedService) else None,
                service_restart=params.service_restart, cluster=local, bootstrap=kafka.bootstrap,
                topic=topic,
            )
            injector.prepare()
        pids: dict[str, Any] = target.pids()
        if broker_pids is not None:
            pids["broker"] = broker_pids
        ready = target_section["identity"].get("readyz") or {}
        metadata = {
            "run": {
                "plan": params.plan,
                "cell": params.cell,
                "trial": params.trial,
                "started_at": started_at,
            },
            # As run: replication values as the cluster applied them to the topic.
            "params": {**params.as_dict(), **replication},
            "kafka_version": kafka_version,
            "kafka": {
                "bootstrap": kafka.bootstrap,
                "local": cluster is not None,
                "nodes": [{"node_id": n.node_id, "pid": n.pid, "port": n.port} for n in cluster.nodes]
                if cluster else None,
                "heap_per_node": cluster.heap if cluster else None,
                "topic": topic,
                **replication,
            },
            "target": target_section,
            "service": {
                "mode": ready.get("mode", params.mode if not params.target_url else None),
                "impl": target_section["impl"],
                **params.service_settings(),
                "topic": topic,
                "partitions": params.partitions,
                "producer_config": ready.get("producer_config",
                                             None if params.target_url else producer_config),
                "url": target.url,
            },
        }
        # The network asked, and measured on every proxied link before the load; the proxy's
        # CPU is sampled beside the service's and the brokers' (experiments/network).
        if cluster is not None:
            with clock.phase("network"):
                metadata["network"] = network_section(params.network_layout(), cluster.network)
            if cluster.network is not None:
                pids[PROXY] = cluster.network.pid
        with clock.phase("load"):
            summary = apply_load(
                load_spec(params, target.url, api_key),
                out_dir,
                pids=pids,
                metadata=metadata,
                ceiling_rps=params.generator_ceiling_rps or None,
                during=injector,
                write=False,
                hosts=LoadHosts.from_setting(params.load_hosts, params.load_token_env),
            )
        metrics = "# the service was not running at the end of the load (fault)\n"
        with contextlib.suppress(OSError):
            metrics = target.metrics()
        (run_dir / METRICS).write_text(metrics)
    finally:
        with clock.phase("service_stop"):
            exit_code = target.stop()
    # The audit runs after the service flushed on SIGTERM: fire-and-forget acknowledged
    # events that were still in the producer's buffer are then either in the topic or lost.
    with clock.phase("audit"):
        audit = audit_delivery(kafka.bootstrap, topic, run_dir / ACKS, out_dir=out_dir,
                               start_offsets=start_offsets)
    faults = summary.get("faults")
    if injector is not None and not (faults and faults.get("injected")):
        # No summary.json: a fault that did not happen must not read as "0 lost" (audit.json stays).
        why = (faults or {}).get("error") or "no fault section"
        raise FaultError(f"fault {params.fault} was not injected ({why}); see {out_dir}")
    summary["audit"] = audit
    if "network" in summary:
        add_proxy_cpu(summary["network"], summary["results"], params.duration_s)
    summary["service"]["exit_code"] = exit_code
    summary["run"]["ended_at"] = datetime.now(UTC).isoformat()
    summary["timings_s"] = clock.section()
    run_dir.write_summary(summary)
    return summary
