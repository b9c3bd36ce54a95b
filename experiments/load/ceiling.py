"""The generator's own ceiling: closed loop against a no-op server in another process.

A run that comes close to this number measured the generator, not the service (see
`run.GENERATOR_BOUND_RULE`). The no-op server gets its own process so the two never share
an event loop; on a small machine they still share cores, which is what a real run does too.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from experiments.errors import LabError
from experiments.load.driver import execute_load, other_cpu
from experiments.load.spec import Endpoint, Engine, LoadSpec

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def noop_server(batch_size: int = 10, max_seconds: float = 900.0) -> Iterator[tuple[str, int]]:
    """Start the server in its own process; yield (base URL, pid); always stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.load.noop_server", "--port", "0",
         "--batch-size", str(batch_size), "--max-seconds", str(max_seconds),
         "--exit-on-stdin-close"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise LabError(f"no-op server did not start (exit code {proc.poll()})")
        yield f"http://127.0.0.1:{line}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ceiling_spec(duration_s: float = 3.0, warmup_s: float = 1.0, connections: int = 50,
                 workers: int = 1, endpoint: Endpoint = "seed",
                 spec: LoadSpec | None = None, engine: Engine | None = None) -> LoadSpec:
    """The closed-loop load a ceiling measurement applies (URL filled in later).

    With `spec`, its payload shape, endpoint, connections, workers and engine are kept
    (its URL, model and durations are not), so the ceiling matches the run it guards: a
    run with the raw engine is judged against the raw engine's ceiling. `engine`, when
    given, overrides the spec's.
    """
    base = spec or LoadSpec(endpoint=endpoint, connections=connections, workers=workers)
    return replace(base, model="closed", duration_s=duration_s, warmup_s=warmup_s,
                   allow_remote=False, engine=engine or base.engine)


def measure_against(spec: LoadSpec, url: str, server_pid: int) -> dict[str, Any]:
    """Closed-loop `spec` against the no-op server at `url`; the ceiling and who was busy."""
    run_spec = replace(spec, url=url)
    execution = execute_load(run_spec, acks_dir=None, pids={"noop_server": server_pid})
    totals = execution.merged.totals
    end = math.ceil(spec.duration_s)
    rps = totals["ok"] / spec.duration_s
    generator_cpu = execution.cpu.mean("generator", 0, end)
    return {
        "engine": spec.engine,
        "ceiling_rps": round(rps, 1),
        "requests": totals["sent"],
        "errors": sum(totals[k] for k in ("client_errors", "server_errors", "transport_errors")),
        "p50_ms": execution.merged.window.get_value_at_percentile(50) / 1000.0,
        "cpu_percent": with_other({
            "generator": generator_cpu,
            "noop_server": execution.cpu.mean("noop_server", 0, end),
            "machine": execution.cpu.mean("machine", 0, end),
        }),
        "cpu_us_per_request": cpu_us_per_request(generator_cpu, rps),
        "spec": run_spec.as_dict(),
    }


def cpu_us_per_request(cpu_percent: float | None, rps: float | None) -> float | None:
    """CPU microseconds a tool spent per answered request (100% of a core = 1e6 us/s)."""
    if not cpu_percent or not rps:
        return None
    return round(cpu_percent / 100 * 1e6 / rps, 2)


def with_other(cpu: dict[str, float | None]) -> dict[str, float | None]:
    """Add `other`: machine CPU that none of the sampled processes used (a busy box)."""
    return {**cpu, "other": other_cpu(cpu)}


def measure_ceiling_detail(duration_s: float = 3.0, warmup_s: float = 1.0,
                           connections: int = 50, workers: int = 1,
                           endpoint: Endpoint = "seed",
                           spec: LoadSpec | None = None,
                           engine: Engine | None = None) -> dict[str, Any]:
    """Ceiling plus the CPU of generator and no-op server, to show which side was the limit."""
    load = ceiling_spec(duration_s, warmup_s, connections, workers, endpoint, spec, engine)
    with noop_server(batch_size=load.batch_size) as (url, pid):
        return measure_against(load, url, pid)


def measure_ceiling(duration_s: float = 3.0, warmup_s: float = 1.0, connections: int = 50,
                    workers: int = 1, endpoint: Endpoint = "seed",
                    spec: LoadSpec | None = None, engine: Engine | None = None) -> float:
    """Requests per second the generator completes against a server that does nothing,
    with `spec`'s engine (or `engine`): the runner passes the run's spec, so each run is
    judged against the ceiling of the engine it used."""
    return float(measure_ceiling_detail(duration_s, warmup_s, connections, workers, endpoint,
                                        spec, engine)["ceiling_rps"])
