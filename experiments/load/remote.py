"""Load from several hosts: the run's side of the generator agents (experiments/load/agent.py).

The agents host the worker processes of one load: with H hosts and `workers` per host,
the load is today's load of H x workers workers, and host h runs workers h*workers ..
(h+1)*workers - 1. `LoadSpec.share` therefore splits connections (closed loop) and rate
(open loop) across hosts exactly as across workers, each worker takes its slots of the
one global open-loop schedule, and the results come back in the shape `merge.py`,
`files.py` and the audit already take: nothing after the workers knows there were hosts.

One schedule: every agent gets the same start time, on its own wall clock (the run's
start plus that agent's measured clock offset, recorded with its uncertainty). A host
that stops answering, or whose run fails, during the load is a recorded fault: the run
ends with the hosts it still has, and says which host was lost and when.
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from ipaddress import ip_address
from pathlib import Path
from time import perf_counter_ns, time_ns
from typing import Any

from experiments.errors import LabError
from experiments.histograms import summarize_ms
from experiments.load.agentclient import DEFAULT_TOKEN_ENV, AgentClient, AgentError, ClockOffset
from experiments.load.merge import merge_results
from experiments.load.recorder import NS_PER_S
from experiments.load.spec import LoadSpec
from experiments.load.worker import FINISH_ALLOWANCE_S, READY_TIMEOUT_S, LoadRunError
from experiments.rundir import RunDir, generator_bound

START_LEAD_NS = 1_000_000_000  # from the decision to the common start: every agent hears of it
POLL_S = 0.5
LOST_AFTER_S = 3.0  # a host silent this long while its load runs is lost
STATUS_TIMEOUT_S = 2.0
AGENT_COMPONENTS = ("agent", "generator", "machine")


class LoadHostsError(LabError):
    """`load_hosts` or its token cannot be used."""


@dataclass(frozen=True)
class LoadHosts:
    """The agents of a run and the token they share (never written to a result file)."""

    addresses: tuple[str, ...]
    token: str = field(repr=False)
    token_env: str = DEFAULT_TOKEN_ENV

    @classmethod
    def from_setting(cls, hosts: str, token_env: str = DEFAULT_TOKEN_ENV) -> LoadHosts | None:
        """`load_hosts` ("host:port,host:port") with the token from `token_env`; None when empty."""
        addresses = parse_addresses(hosts)
        if not addresses:
            return None
        token = os.environ.get(token_env, "")
        if not token:
            raise LoadHostsError(f"load_hosts needs the agents' shared token in ${token_env}")
        return cls(addresses, token, token_env)


def parse_addresses(hosts: str) -> tuple[str, ...]:
    addresses = tuple(a.strip() for a in hosts.split(",") if a.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise LoadHostsError(f"load_hosts: {address!r} is not host:port")
    if len(set(addresses)) != len(addresses):
        raise LoadHostsError(f"load_hosts names an agent twice: {hosts!r}")
    return addresses


def is_local(address: str) -> bool:
    """Whether an agent runs on this machine (its CPU is then sampled here too)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def spread(spec: LoadSpec, hosts: int) -> LoadSpec:
    """The whole load of `hosts` agents, each running `spec.workers` of its workers."""
    return replace(spec, workers=spec.workers * hosts).validate()


def host_workers(host: int, per_host: int) -> list[int]:
    return list(range(host * per_host, (host + 1) * per_host))


@dataclass
class HostRecord:
    """What the run knows of one agent: its place in the load, its clock, its fate."""

    address: str
    workers: list[int]
    hello: dict[str, Any] = field(default_factory=dict)
    clock: ClockOffset | None = None
    state: str = "new"  # new -> prepared -> started -> done | lost
    start_margin_ns: int | None = None
    last_contact_ns: int = 0  # perf_counter of the last answer
    fault: dict[str, Any] | None = None
    cpu: list[dict[str, Any]] = field(default_factory=list)
    cores: int | None = None
    results: list[dict[str, Any]] = field(default_factory=list)


def drive_agents(spec: LoadSpec, hosts: LoadHosts, acks_dir: Path | None,
                 on_start: Callable[[int, list[int]], None] | None = None,
                 client_factory: Callable[[str, str], AgentClient] = AgentClient,
                 ) -> tuple[list[dict[str, Any]], list[HostRecord]]:
    """Run `spec` (`spec.workers` per host) on the agents and return every worker result
    that came back, in worker order, with what happened on each host.

    `on_start(t_start_ns, local_agent_pids)` is called with the common start on this
    host's perf_counter clock, as `drive_workers` does. A failure before the start (an
    agent busy, unreachable, of another version, refusing the token or the load) raises
    `AgentError` and releases the agents already prepared; after the start, a lost host
    is recorded in its `HostRecord.fault` and only losing every host raises.
    """
    whole = spread(spec, len(hosts.addresses))
    records = [HostRecord(address, host_workers(h, spec.workers))
               for h, address in enumerate(hosts.addresses)]
    clients = [client_factory(r.address, hosts.token) for r in records]
    run_id = secrets.token_hex(8)
    try:
        for record, client in zip(records, clients, strict=True):
            record.hello = client.hello()
            if record.hello.get("busy"):
                raise AgentError(record.address, "busy",
                                 f"busy with run {record.hello['busy']} (one run at a time)")
        for record, client in zip(records, clients, strict=True):
            record.clock = client.clock_offset()
        wire = asdict(whole)  # the api key travels to the agents, which send it to the target
        for record, client in zip(records, clients, strict=True):
            client.prepare(run_id, wire, record.workers, record_acks=acks_dir is not None)
            record.state = "prepared"
        _wait_ready(records, clients, run_id)
        return _run_started(spec, records, clients, run_id, acks_dir, on_start)
    except BaseException:
        _release(records, clients, run_id)
        raise


def _run_started(spec: LoadSpec, records: list[HostRecord], clients: list[AgentClient], run_id: str,
                 acks_dir: Path | None, on_start: Callable[[int, list[int]], None] | None,
                 ) -> tuple[list[dict[str, Any]], list[HostRecord]]:
    """From the common start to the last result, with every agent ready."""
    start_wall = time_ns() + START_LEAD_NS
    t_start = perf_counter_ns() + (start_wall - time_ns())
    window_origin = t_start + round(spec.warmup_s * NS_PER_S)
    if on_start is not None:
        on_start(t_start, [int(r.hello["pid"]) for r in records if is_local(r.address)])
    for record, client in zip(records, clients, strict=True):
        assert record.clock is not None
        try:
            answer = client.start(run_id, start_wall + record.clock.offset_ns)
        except AgentError as exc:
            _lose(record, window_origin, f"could not be started: {exc}")
            continue
        record.start_margin_ns = int(answer["start_margin_ns"])
        record.state = "started"
        record.last_contact_ns = perf_counter_ns()
    budget_s = START_LEAD_NS / NS_PER_S + spec.warmup_s + spec.duration_s + spec.drain_limit_s
    deadline = perf_counter_ns() + round((budget_s + FINISH_ALLOWANCE_S) * NS_PER_S)
    _follow(records, clients, run_id, acks_dir, window_origin, deadline)
    _release(records, clients, run_id)
    results = sorted((r for record in records for r in record.results), key=lambda r: r["worker"])
    if not results:
        lost = "; ".join(f"{r.address}: {(r.fault or {}).get('reason')}" for r in records)
        raise LoadRunError(f"every load host was lost ({lost})")
    return results, records


def _wait_ready(records: list[HostRecord], clients: list[AgentClient], run_id: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    waiting = list(zip(records, clients, strict=True))
    while waiting:
        record, client = waiting[0]
        status = client.status(run_id)
        if status["state"] == "ready":
            waiting.pop(0)
            continue
        if status["state"] == "failed":
            raise AgentError(record.address, "refused",
                             f"its workers failed to start:\n{status.get('error')}")
        if time.monotonic() > deadline:
            raise AgentError(record.address, "unreachable", f"workers not ready in {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def _follow(records: list[HostRecord], clients: list[AgentClient], run_id: str,
            acks_dir: Path | None, window_origin: int, deadline: int) -> None:
    pending = [(r, c) for r, c in zip(records, clients, strict=True) if r.state == "started"]
    while pending:
        time.sleep(POLL_S)
        now = perf_counter_ns()
        still: list[tuple[HostRecord, AgentClient]] = []
        for record, client in pending:
            try:
                status = client.status(run_id)
            except AgentError as exc:
                if now - record.last_contact_ns > LOST_AFTER_S * NS_PER_S:
                    _lose(record, window_origin, f"no answer for {LOST_AFTER_S:g} s ({exc})")
                elif now > deadline:
                    _lose(record, window_origin, "did not finish in time")
                else:
                    still.append((record, client))
                continue
            record.last_contact_ns = perf_counter_ns()
            if status["state"] == "done":
                _collect(record, client, run_id, status["result"], acks_dir, window_origin)
            elif status["state"] == "failed":
                _lose(record, window_origin, f"its run failed: {_last_line(status.get('error'))}")
            elif now > deadline:
                _lose(record, window_origin, f"did not finish in time (still {status['state']})")
            else:
                still.append((record, client))
        pending = still


def _collect(record: HostRecord, client: AgentClient, run_id: str, result: dict[str, Any],
             acks_dir: Path | None, window_origin: int) -> None:
    workers = [_from_wire(w, record.address) for w in result["workers"]]
    try:
        for worker in workers:
            if acks_dir is not None and worker.get("acks_file"):
                part = RunDir(acks_dir).ack_part(worker["worker"])
                client.fetch_acks(run_id, worker["worker"], part)
                worker["acks_file"] = str(part)
    except AgentError as exc:
        # Counts without their acknowledged ids would make the audit count losses that
        # are not: the host's part is dropped whole.
        _lose(record, window_origin, f"its results could not be fetched ({exc})")
        return
    record.results = workers
    record.cpu = list(result.get("cpu") or [])
    record.cores = result.get("cores")
    record.state = "done"


def _from_wire(worker: dict[str, Any], address: str) -> dict[str, Any]:
    """A worker result as JSON carried it, back in the types `merge_results` takes."""
    worker = dict(worker)
    worker["slot_hists"] = {int(second): blob for second, blob in worker["slot_hists"].items()}
    worker["statuses"] = [tuple(row) for row in worker["statuses"]]
    worker["host"] = address
    return worker


def _lose(record: HostRecord, window_origin: int, reason: str) -> None:
    seen = record.last_contact_ns or perf_counter_ns()
    record.state = "lost"
    record.fault = {"reason": reason, "last_seen_s": round((seen - window_origin) / NS_PER_S, 3)}


def _release(records: list[HostRecord], clients: list[AgentClient], run_id: str) -> None:
    for record, client in zip(records, clients, strict=True):
        if record.state == "new":
            continue
        try:
            client.release(run_id)
        except AgentError:
            continue  # a lost agent; it drops the run on its own (agent.RESULT_KEEP_S)


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no detail"


def hosts_section(records: list[HostRecord], spec: LoadSpec, token_env: str) -> dict[str, Any]:
    """summary.json `load_hosts` (RESULTS.md): per host its share, clock, outcome and CPU."""
    end_second = math.ceil(spec.duration_s)
    hosts = []
    for record in records:
        hosts.append(_host_row(record, spec, end_second))
    uncertainties = [r.clock.uncertainty_ns for r in records if r.clock is not None]
    offsets = [r.clock.offset_ns for r in records if r.clock is not None]
    margins = [r.start_margin_ns for r in records if r.start_margin_ns is not None]
    return {
        "hosts": hosts,
        "workers_per_host": spec.workers,
        "token_env": token_env,  # where the token came from; the token itself is never written
        # The common start is placed on each host to within its offset's uncertainty:
        # that bound is the schedule's error at start between hosts.
        "schedule_error_bound_ms": round(max(uncertainties) / 1e6, 3) if uncertainties else None,
        "clock_skew_ms": round((max(offsets) - min(offsets)) / 1e6, 3) if offsets else None,
        "min_start_margin_ms": round(min(margins) / 1e6, 3) if margins else None,
        "lost": [{"address": r.address, **(r.fault or {})} for r in records if r.state == "lost"],
    }


def _host_row(record: HostRecord, spec: LoadSpec, end_second: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "address": record.address,
        "hostname": record.hello.get("hostname"),
        "pid": record.hello.get("pid"),
        "workers": record.workers,
        "state": record.state,
        "clock_offset_ms": round(record.clock.offset_ns / 1e6, 3) if record.clock else None,
        "clock_uncertainty_ms": round(record.clock.uncertainty_ns / 1e6, 3) if record.clock else None,
        "start_margin_ms": None if record.start_margin_ns is None
        else round(record.start_margin_ns / 1e6, 3),
        "fault": record.fault,
        "cores": record.cores,
    }
    cpu = {c: _mean_cpu(record.cpu, c, end_second) for c in AGENT_COMPONENTS}
    row["cpu_percent"] = cpu
    if not record.results:
        return {**row, "sent": None, "ok": None, "offered": None, "latency_ms": None,
                "generator_bound": None, "generator_bound_reasons": []}
    merged = merge_results(record.results, spec.duration_s)
    sent, ok = merged.totals["sent"], merged.totals["ok"]
    usable = min(spec.workers, record.cores or spec.workers)
    generator_cpu = None if cpu["generator"] is None else cpu["generator"] + (cpu["agent"] or 0.0)
    bound, reasons = generator_bound(sent / spec.duration_s, None, generator_cpu, usable)
    return {
        **row,
        "sent": sent,
        "ok": ok,
        "offered": sent + merged.never_sent if spec.model == "open" else None,
        "completed_in_window": merged.cohort["completed_in_window"],
        "throughput_rps": round(ok / spec.duration_s, 3),
        "latency_ms": summarize_ms(merged.window),
        "generator_bound": bound,
        "generator_bound_reasons": reasons,
    }


def _mean_cpu(rows: list[dict[str, Any]], component: str, end_second: int) -> float | None:
    values = [r["cpu_percent"] for r in rows if r["component"] == component and 0 <= r["second"] < end_second]
    return round(sum(values) / len(values), 1) if values else None
