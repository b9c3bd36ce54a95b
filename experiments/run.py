"""One run, end to end: Kafka, a fresh topic, the service in one mode, load, audit, files.

The run notebook calls `run_experiment` and nothing else; the runner calls the notebook.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from experiments.audit import audit_delivery
from experiments.errors import LabError
from experiments.kafka import LocalKafka, create_topic, ensure_kafka, unique_topic
from experiments.kafka.broker import listening_pid
from experiments.load import LoadSpec, run_load
from experiments.params import RunParams
from experiments.results import write_summary
from experiments.service_proc import ServiceProcess


def load_spec(params: RunParams, url: str) -> LoadSpec:
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
    )


def run_experiment(params: RunParams) -> dict[str, Any]:
    """Execute one run into `params.output_dir` and return its summary."""
    out_dir = Path(params.output_dir)
    if (out_dir / "summary.json").exists():
        raise LabError(f"{out_dir} already holds a finished run; results are never overwritten")
    out_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC).isoformat()
    local = LocalKafka()
    kafka = ensure_kafka(params.kafka_bootstrap or None, local=local)
    # The runner hands every cell the address of the broker it started: that is still ours.
    broker_state = local.status()
    if broker_state is not None and broker_state.bootstrap != kafka.bootstrap:
        broker_state = None
    broker_pid = broker_state.pid if broker_state else listening_pid(kafka.bootstrap)
    kafka_version = broker_state.kafka_version if broker_state else kafka.kafka_version
    producer_config = params.effective_producer_config()
    topic = params.topic or unique_topic(f"lab.{params.plan}")
    create_topic(kafka.bootstrap, topic, partitions=params.partitions)
    service = ServiceProcess(
        mode=params.mode,
        bootstrap=kafka.bootstrap,
        topic=topic,
        log_file=out_dir / "service.log",
        producer_config=producer_config,
        workers=params.service_workers,
        partitions=params.partitions,
        delivery_bridge=params.delivery_bridge,
    )
    try:
        ready = service.start()
        pids = {"service": service.pid}
        if broker_pid is not None:
            pids["broker"] = broker_pid
        metadata = {
            "run": {
                "plan": params.plan,
                "cell": params.cell,
                "trial": params.trial,
                "started_at": started_at,
            },
            "params": params.as_dict(),
            "kafka_version": kafka_version,
            "service": {
                "mode": params.mode,
                "workers": params.service_workers,
                "delivery_bridge": params.delivery_bridge,
                "topic": topic,
                "partitions": params.partitions,
                "producer_config": ready.get("producer_config", producer_config),
                "url": service.url,
            },
        }
        summary = run_load(
            load_spec(params, service.url),
            out_dir,
            pids=pids,
            metadata=metadata,
            ceiling_rps=params.generator_ceiling_rps or None,
            write=False,
        )
        (out_dir / "metrics.prom").write_text(service.metrics())
    finally:
        exit_code = service.stop()
    # The audit runs after the service flushed on SIGTERM: fire-and-forget acknowledged
    # events that were still in the producer's buffer are then either in the topic or lost.
    audit = audit_delivery(kafka.bootstrap, topic, out_dir / "acks.csv", out_dir=out_dir)
    summary["audit"] = audit
    summary["service"]["exit_code"] = exit_code
    summary["run"]["ended_at"] = datetime.now(UTC).isoformat()
    write_summary(out_dir / "summary.json", summary)
    return summary
