"""The service's cost per request, beside the raw-ASGI ceiling, in one run.

Each case puts wrk (the reference client, C) against one target for a warm-up and then a
measured window, and charges the CPU each component used in that window (exact deltas of
the processes' CPU times, not sampled means) to the requests wrk completed:

- `raw`: `experiments.bench.raw_asgi` (reads the body, answers a fixed id) under uvicorn
  with the service's own server options: the least a Python app on this stack can cost;
- `service`: `python -m service` (via `ServiceProcess`) on a broker from `ensure_kafka`,
  per mode, with the ingest hot path on and off, one worker and two.

Everything runs back to back in one process so the ratios (service over raw, hot path
over FastAPI routing, two workers over one) compare like with like; what other processes
used in the same window is recorded as `other`, so a busy box shows in the file. The
service's CPU is also split by thread (`service_us_per_request_by_thread`): librdkafka's
own threads (`rdk:*`) against the rest, so the Kafka client's share is read, not guessed,
and by where it ran (`service_us_per_request_by_mode`: user space against the kernel). The
apps' own CPU per request without the server (`experiments.bench.inprocess`) is
measured first and written beside them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from experiments.bench.inprocess import app_cost
from experiments.cpu import cpu_seconds, cpu_seconds_by_mode, machine_busy_seconds, process_tree
from experiments.errors import LabError
from experiments.kafka import LocalKafka, ensure_kafka, unique_topic
from experiments.kafka.broker import free_port
from experiments.load.wrk import find_wrk, wrk_once, wrk_script
from experiments.provenance import collect_provenance, git_info
from experiments.service_proc import ServiceProcess

EVENT: dict[str, Any] = {"client_id": "test", "name": "hello_event", "data": {"test": "value"}}
log = logging.getLogger("experiments.bench")


@dataclass(frozen=True)
class Case:
    """One measured load: a target (raw app or service configuration) and a route."""

    name: str
    target: str  # "raw" or "service"
    path: str
    batch: int = 1  # events per request
    mode: str | None = None  # service only
    workers: int = 1
    hot_path: bool = True  # service only
    reports: str = "all"  # service only: delivery reports for every event, or on errors only
    stack: str = "uvloop+httptools"  # raw only: or "asyncio+h11", "uvloop+httptools+guard"
    # service only: another checkout of this project whose service runs instead (its
    # directory goes first on PYTHONPATH), to measure a change against a baseline.
    source: str | None = None

    @property
    def server_key(self) -> tuple[Any, ...]:
        """Cases with the same key share one server process."""
        return (self.target, self.mode, self.workers, self.hot_path, self.reports, self.stack,
                self.source)


def with_baseline(cases: list[Case], source: Path) -> list[Case]:
    """Every service case twice (but those with errors-only delivery reports, a setting an
    older checkout may lack): as it is, and run from the checkout at `source` (its name
    ending in ", baseline"); with rounds, each pair is measured under the same conditions."""
    out: list[Case] = []
    for case in cases:
        out.append(case)
        # A setting the baseline may not know is measured on this checkout only.
        if case.target == "service" and case.reports == "all":
            out.append(dataclasses.replace(case, name=f"{case.name}, baseline",
                                           source=str(source.resolve())))
    return out


def default_cases(batch: int = 100) -> list[Case]:
    """The profile: the ceiling, every ingest route in both modes, each step, two workers."""
    ff, durable = "fire-and-forget", "durable"
    return [
        Case("raw ASGI ceiling", "raw", "/"),
        Case("raw ASGI ceiling, asyncio+h11", "raw", "/", stack="asyncio+h11"),
        Case("raw ASGI ceiling, behind the guard", "raw", "/", stack="uvloop+httptools+guard"),
        Case("no-op, single", "service", "/_bench/noop", mode=ff),
        Case("fire-and-forget, single", "service", "/", mode=ff),
        Case("no-op, batch", "service", "/_bench/noop/batch", batch=batch, mode=ff),
        Case("fire-and-forget, batch", "service", "/v1/events/batch", batch=batch, mode=ff),
        Case("fire-and-forget, single, reports on errors only", "service", "/", mode=ff,
             reports="errors"),
        Case("fire-and-forget, batch, reports on errors only", "service", "/v1/events/batch",
             batch=batch, mode=ff, reports="errors"),
        Case("durable, single", "service", "/", mode=durable),
        Case("durable, batch", "service", "/v1/events/batch", batch=batch, mode=durable),
        Case("no-op, single, FastAPI routing", "service", "/_bench/noop", mode=ff, hot_path=False),
        Case("fire-and-forget, single, FastAPI routing", "service", "/", mode=ff, hot_path=False),
        Case("durable, single, FastAPI routing", "service", "/", mode=durable, hot_path=False),
        Case("fire-and-forget, batch, FastAPI routing", "service", "/v1/events/batch",
             batch=batch, mode=ff, hot_path=False),
        Case("raw ASGI ceiling, 2 workers", "raw", "/", workers=2),
        Case("fire-and-forget, single, 2 workers", "service", "/", mode=ff, workers=2),
    ]


@dataclass
class Measured:
    case: Case
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    non_2xx: int = 0
    p99_ms: float | None = None
    cores: dict[str, float] = field(default_factory=dict)
    rss_mb: float | None = None
    command: str = ""
    # Every round's figures when the case ran more than once (this one is their median).
    rounds: list[dict[str, float | None]] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.rps * self.case.batch

    @property
    def service_us_per_request(self) -> float | None:
        return self.us_per_request("service")

    def us_per_request(self, component: str) -> float | None:
        cores = self.cores.get(component)
        return round(cores * 1e6 / self.rps, 1) if cores is not None and self.rps else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self.case), "requests": self.requests, "seconds": self.seconds,
                "rps": round(self.rps, 1), "events_per_s": round(self.events_per_s, 1),
                "non_2xx": self.non_2xx, "p99_ms": self.p99_ms, "cores": self.cores,
                "service_us_per_request": self.service_us_per_request,
                # The service's CPU per request split: librdkafka's threads vs the rest.
                "service_us_per_request_by_thread": {
                    kind: self.us_per_request(f"service_{kind}") for kind in ("python", "librdkafka")},
                # ... and split by where it ran: user space against the kernel.
                "service_us_per_request_by_mode": {
                    mode: self.us_per_request(f"service_{mode}") for mode in ("user", "kernel")},
                "service_us_per_event": round(self.service_us_per_request / self.case.batch, 2)
                if self.service_us_per_request is not None else None,
                "rss_mb": self.rss_mb, "wrk_command": self.command,
                "rounds": self.rounds or [self.round_figures()]}

    def round_figures(self) -> dict[str, float | None]:
        return {"rps": round(self.rps, 1), "service_us_per_request": self.service_us_per_request,
                "p99_ms": self.p99_ms}


def median_round(rounds: list[Measured]) -> Measured:
    """The round whose CPU per request is the median (the lower one of an even count), with
    every round's figures attached: one consistent measurement to quote, and the spread
    this machine gave it. CPU per request, not req/s, picks it: other load on a shared box
    moves the rate far more than the cost."""
    ordered = sorted(rounds, key=lambda m: m.service_us_per_request or 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.rounds = [m.round_figures() for m in rounds]
    return chosen


# -- processes -------------------------------------------------------------------------
def _threads_cpu_s(procs: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds by thread kind: librdkafka's own threads (named `rdk:*`) and the rest
    (the event loop and any Python thread), so the Kafka client's share is not guessed."""
    totals = {"librdkafka": 0.0, "python": 0.0}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for thread in proc.threads():
                try:
                    name = Path(f"/proc/{proc.pid}/task/{thread.id}/comm").read_text().strip()
                except OSError:
                    continue
                kind = "librdkafka" if name.startswith("rdk:") else "python"
                totals[kind] += thread.user_time + thread.system_time
    return totals


def rss_mb(pid: int) -> float:
    total = 0
    for proc in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return round(total / 2**20, 1)


def _wait_listening(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"raw ASGI server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise LabError("raw ASGI server did not start")


@contextlib.contextmanager
def raw_server(stack: str, workers: int, log_file: Path) -> Iterator[tuple[str, int]]:
    """The raw ASGI app under uvicorn, with the service's own server options."""
    port = free_port()
    app = "experiments.bench.raw_asgi:app"
    if stack == "uvloop+httptools":
        loop, http = "uvloop", "service.guard:NoDelayProtocol"
    elif stack == "uvloop+httptools+guard":
        loop, http = "uvloop", "experiments.bench.raw_asgi:GuardedProtocol"
        app = "experiments.bench.raw_asgi:guarded_app"
    else:
        loop, http = "asyncio", "h11"
    cmd = [sys.executable, "-m", "uvicorn", app, "--host",
           "127.0.0.1", "--port", str(port), "--loop", loop, "--http", http,
           "--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    with log_file.open("ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_listening(url + "/", proc)
        time.sleep(0.5 if workers == 1 else 2.0)  # let every worker come up
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def service_server(case: Case, bootstrap: str, log_file: Path) -> Iterator[tuple[str, int]]:
    assert case.mode is not None
    env = {"INGEST_HOT_PATH": "true" if case.hot_path else "false"}
    # From the baseline's own directory: with PYTHONPATH alone, `python -m service` run
    # from this checkout imported this checkout's service (the working directory comes first).
    service = ServiceProcess(case.mode, bootstrap, unique_topic("bench"), log_file,
                             workers=case.workers, delivery_reports=case.reports, env=env,
                             source=Path(case.source) if case.source else None)
    service.start()
    try:
        time.sleep(0.5 if case.workers == 1 else 2.0)
        yield service.url, service.pid
    finally:
        service.stop()


# -- wrk ---------------------------------------------------------------------------------
def request_body(batch: int) -> bytes:
    return orjson.dumps(EVENT if batch == 1 else [EVENT] * batch)


def measure(case: Case, url: str, server_pid: int, broker_pid: int | None, wrk: str,
            duration_s: int, warmup_s: int, connections: int, threads: int,
            tmp: Path) -> Measured:
    script = tmp / "post.lua"
    script.write_text(wrk_script(request_body(case.batch)))
    target = url + case.path
    if warmup_s:
        wrk_once(wrk, target, script, warmup_s, connections, threads)
    server, broker = process_tree(server_pid), process_tree(broker_pid)
    # The service's CPU is read once at each end, split by mode; its total is the sum.
    threads_before = _threads_cpu_s(server)
    before = (cpu_seconds_by_mode(server), cpu_seconds(broker), machine_busy_seconds(),
              resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic())
    run = wrk_once(wrk, target, script, duration_s, connections, threads)
    after = (cpu_seconds_by_mode(server), cpu_seconds(broker), machine_busy_seconds(),
             resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic())
    threads_after = _threads_cpu_s(server)
    wall = after[4] - before[4]
    wrk_s = (after[3].ru_utime + after[3].ru_stime) - (before[3].ru_utime + before[3].ru_stime)
    # The window is wrk's own run time (its start-up is milliseconds), so cores are per
    # second of load; `other` is what the rest of the machine did meanwhile.
    modes = {mode: (after[0][mode] - before[0][mode]) / wall for mode in after[0]}
    cores = {"service": sum(modes.values()), "broker": (after[1] - before[1]) / wall,
             "wrk": wrk_s / wall, "machine": (after[2] - before[2]) / wall}
    cores["other"] = max(0.0, cores["machine"] - cores["service"] - cores["broker"] - cores["wrk"])
    for kind, spent in threads_after.items():
        cores[f"service_{kind}"] = (spent - threads_before[kind]) / wall
    for mode, share in modes.items():
        cores[f"service_{mode}"] = share
    result = Measured(case, cores={k: round(v, 3) for k, v in cores.items()},
                      rss_mb=rss_mb(server_pid),
                      command=" ".join([*run.command[:-3], "-s", "post.lua", case.path]))
    if run.requests is None or run.rps is None:
        raise LabError(f"could not read wrk's output:\n{run.output}")
    result.requests, result.rps, result.non_2xx = run.requests, run.rps, run.non_2xx
    result.seconds = round(result.requests / result.rps, 2) if result.rps else 0.0
    if run.p99_ms is not None:
        result.p99_ms = round(run.p99_ms, 2)
    return result


# -- the run ---------------------------------------------------------------------------
def ratios(results: list[Measured]) -> dict[str, float | None]:
    """The figures the issue's targets are stated in, from this run's own cases."""
    by_name = {m.case.name: m for m in results}

    def over(a: str, b: str, attr: str = "rps") -> float | None:
        x, y = by_name.get(a), by_name.get(b)
        if x is None or y is None or not getattr(y, attr):
            return None
        return round(getattr(x, attr) / getattr(y, attr), 3)

    def per_core(a: str, b: str) -> float | None:
        """Requests per service core of `a` over `b`: CPU per request inverted, which a
        machine busy with other work disturbs far less than requests per second."""
        x, y = by_name.get(a), by_name.get(b)
        if x is None or y is None or not x.service_us_per_request or not y.service_us_per_request:
            return None
        return round(y.service_us_per_request / x.service_us_per_request, 3)

    def events_per_s(name: str) -> float | None:
        found = by_name.get(name)
        return round(found.events_per_s) if found is not None else None

    return {
        # Issue 17's targets: >= 0.6; batches >= 250,000 and >= 150,000 events/s.
        "ff_single_per_core_over_raw": per_core("fire-and-forget, single", "raw ASGI ceiling"),
        "ff_batch_events_per_s": events_per_s("fire-and-forget, batch"),
        "durable_batch_events_per_s": events_per_s("durable, batch"),
        "ff_batch_errors_only_events_per_s": events_per_s(
            "fire-and-forget, batch, reports on errors only"),
        "ff_single_errors_only_per_core_over_raw": per_core(
            "fire-and-forget, single, reports on errors only", "raw ASGI ceiling"),
        "ff_single_errors_only_per_core_over_all": per_core(
            "fire-and-forget, single, reports on errors only", "fire-and-forget, single"),
        "ff_batch_errors_only_per_core_over_all": per_core(
            "fire-and-forget, batch, reports on errors only", "fire-and-forget, batch"),
        "noop_single_per_core_over_raw": per_core("no-op, single", "raw ASGI ceiling"),
        "durable_single_per_core_over_raw": per_core("durable, single", "raw ASGI ceiling"),
        "ff_single_per_core_hot_over_fastapi": per_core(
            "fire-and-forget, single", "fire-and-forget, single, FastAPI routing"),
        "ff_batch_per_core_hot_over_fastapi": per_core(
            "fire-and-forget, batch", "fire-and-forget, batch, FastAPI routing"),
        "ff_single_over_raw": over("fire-and-forget, single", "raw ASGI ceiling"),
        "noop_single_over_raw": over("no-op, single", "raw ASGI ceiling"),
        "ff_single_hot_over_fastapi": over("fire-and-forget, single",
                                           "fire-and-forget, single, FastAPI routing"),
        "durable_single_hot_over_fastapi": over("durable, single",
                                                "durable, single, FastAPI routing"),
        "ff_batch_hot_over_fastapi": over("fire-and-forget, batch",
                                          "fire-and-forget, batch, FastAPI routing"),
        "raw_uvloop_over_h11": over("raw ASGI ceiling", "raw ASGI ceiling, asyncio+h11"),
        "ff_single_2_workers_over_1": over("fire-and-forget, single, 2 workers",
                                           "fire-and-forget, single"),
        "raw_2_workers_over_1": over("raw ASGI ceiling, 2 workers", "raw ASGI ceiling"),
    }


def run_profile(cases: list[Case], out: Path, duration_s: int = 10, warmup_s: int = 3,
                connections: int = 50, threads: int = 1, batch: int = 100,
                bootstrap: str | None = None, rounds: int = 1) -> dict[str, Any]:
    """Measure `cases` back to back, all of them `rounds` times over (so every case sees
    the machine's slow and fast spells alike); write and return the result document."""
    wrk = find_wrk("install it with `make bench-deps` (Debian: apt-get install -y wrk)")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_dir = out.parent / (out.stem + "-logs")
    log_dir.mkdir(exist_ok=True)
    target = ensure_kafka(bootstrap)
    broker_state = LocalKafka().status() if not target.external else None
    broker_pid = broker_state.pid if broker_state is not None else None
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = os.getloadavg()
    in_process = app_cost(batch=batch)
    for name, value in in_process.items():
        log.info("in-process %-40s %8.2f us CPU/request", name, value)
    measured_rounds: dict[str, list[Measured]] = {c.name: [] for c in cases}
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            # One server per configuration and round, its cases in the listed order.
            keys: list[tuple[Any, ...]] = []
            for case in cases:
                if case.server_key not in keys:
                    keys.append(case.server_key)
            for round_no in range(1, rounds + 1):
                for key in keys:
                    group = [c for c in cases if c.server_key == key]
                    first = group[0]
                    log_file = log_dir / f"{re.sub(r'[^a-z0-9]+', '-', first.name.lower())}.log"
                    server = (raw_server(first.stack, first.workers, log_file)
                              if first.target == "raw"
                              else service_server(first, target.bootstrap, log_file))
                    with server as (url, pid):
                        for case in group:
                            measured = measure(case, url, pid, broker_pid, wrk, duration_s,
                                               warmup_s, connections, threads, tmp)
                            log.info("round %d/%d %s", round_no, rounds, _line(measured))
                            measured_rounds[case.name].append(measured)
    finally:
        if target.started_here:
            LocalKafka().stop()
    results = [median_round(measured_rounds[c.name]) for c in cases]
    document = {
        "schema": "lab.bench.service/2",
        "started_at": started,
        "command": " ".join([Path(sys.executable).name, "-m", "experiments.bench", *sys.argv[1:]]),
        "load": {"client": "wrk", "threads": threads, "connections": connections,
                 "duration_s": duration_s, "warmup_s": warmup_s, "rounds": rounds,
                 "event": EVENT},
        "machine": {"cpus": psutil.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "provenance": collect_provenance(target.kafka_version),
        "baselines": {source: git_info(Path(source))
                      for source in sorted({c.source for c in cases if c.source})},
        "in_process_us_per_request": in_process,
        "cases": [m.as_dict() for m in results],
        "ratios": ratios(results),
    }
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return document


def _line(m: Measured) -> str:
    c = m.cores
    us = m.service_us_per_request
    rdk = m.us_per_request("service_librdkafka")
    kernel = m.us_per_request("service_kernel")
    return (f"{m.case.name:<42} {m.rps:>10,.0f} req/s {m.events_per_s:>10,.0f} ev/s "
            f"p99 {m.p99_ms if m.p99_ms is not None else float('nan'):>7.1f} ms  "
            f"{us if us is not None else float('nan'):>7.1f} us/req "
            f"(librdkafka {rdk if rdk is not None else float('nan'):.1f}, "
            f"kernel {kernel if kernel is not None else float('nan'):.1f})  cores: service "
            f"{c['service']:.2f} broker {c['broker']:.2f} wrk {c['wrk']:.2f} other "
            f"{c['other']:.2f}  non-2xx {m.non_2xx}")


def table(document: dict[str, Any]) -> str:
    """The result document as a Markdown table (what the closing note quotes)."""
    lines = ["| case | req/s | events/s | p99 ms | service us/req | of which librdkafka | "
             "of which kernel | service | broker | wrk | other | non-2xx |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in document["cases"]:
        cores = c["cores"]
        us = c["service_us_per_request"]
        rdk = (c.get("service_us_per_request_by_thread") or {}).get("librdkafka")
        kernel = (c.get("service_us_per_request_by_mode") or {}).get("kernel")
        lines.append(
            f"| {c['name']} | {c['rps']:,.0f}{_spread(c, 'rps', '{:,.0f}')} | "
            f"{c['events_per_s']:,.0f} | {c['p99_ms'] if c['p99_ms'] is not None else '-'} | "
            f"{us if us is not None else '-'}{_spread(c, 'service_us_per_request', '{}')} | "
            f"{rdk if rdk is not None else '-'} | {kernel if kernel is not None else '-'} | "
            f"{cores['service']:.2f} | {cores['broker']:.2f} | "
            f"{cores['wrk']:.2f} | {cores['other']:.2f} | {c['non_2xx']} |")
    lines.append("")
    for name, value in document["ratios"].items():
        lines.append(f"- {name}: {value if value is not None else '-'}")
    lines += ["", "| in-process (app only, no server) | CPU us/request |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in document["in_process_us_per_request"].items()]
    return "\n".join(lines)


def _spread(case: dict[str, Any], key: str, fmt: str) -> str:
    """' (min-max)' over the case's rounds, or nothing for a single round."""
    values = [r[key] for r in case.get("rounds", []) if r.get(key) is not None]
    if len(values) < 2:
        return ""
    return f" ({fmt.format(min(values))}-{fmt.format(max(values))})"


def select(cases: list[Case], names: list[str] | None) -> list[Case]:
    if not names:
        return cases
    chosen = [c for c in cases if any(n.lower() in c.name.lower() for n in names)]
    if not chosen:
        raise LabError(f"no case matches {names}; cases: {[c.name for c in cases]}")
    return chosen
