"""The generator's ceiling (per engine) beside wrk's, against one no-op server, in one run.

wrk (C, epoll, one thread per `-t`) is the reference for what a client on this machine
can push; the gap between the two numbers is the price of a Python generator, and says
how much headroom a "generator-bound" verdict leaves.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from experiments.cpu import CpuSampler
from experiments.errors import MissingToolError
from experiments.load.ceiling import (
    ceiling_spec,
    cpu_us_per_request,
    measure_against,
    noop_server,
    with_other,
)
from experiments.load.payloads import body_pool
from experiments.load.spec import Engine, LoadSpec

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")
# A shared machine: CPU used by anything but the two measured processes spoils a trial.
QUIET_OTHER_CPU = 10.0


def wrk_script(body: bytes) -> str:
    """A wrk Lua script sending `body` as a JSON POST (the body is a Lua long string)."""
    text = body.decode("utf-8")
    level = 0
    # The closing bracket must not start inside the body: a body ending in "]" (a JSON
    # array) would otherwise close the string one character early.
    while f"]{'=' * level}]" in text + "]":
        level += 1
    eq = "=" * level
    return (f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [{eq}[{text}]{eq}]\n")


# -- wrk as the reference client, for every benchmark that uses it ------------------------
_REQUESTS = re.compile(r"(\d+) requests in")
_PERCENTILE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: its command, its output, and the figures read from it (None: absent)."""

    command: list[str]
    output: str
    rps: float | None
    requests: int | None
    non_2xx: int
    p50_ms: float | None
    p99_ms: float | None


def find_wrk(how_to_install: str = "install it (Debian: `apt-get install -y wrk`)") -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise MissingToolError("wrk", how_to_install)
    return wrk


def parse_wrk(command: list[str], output: str) -> WrkRun:
    rps, requests, non_2xx = _RPS.search(output), _REQUESTS.search(output), _NON_2XX.search(output)
    latency = {p: float(v) * _UNIT_MS[unit] for p, v, unit in _PERCENTILE.findall(output)}
    return WrkRun(command, output, float(rps[1]) if rps else None,
                  int(requests[1]) if requests else None, int(non_2xx[1]) if non_2xx else 0,
                  latency.get("50"), latency.get("99"))


def wrk_command(wrk: str, url: str, script: Path, seconds: int, connections: int,
                threads: int = 1) -> list[str]:
    """wrk with `--latency` and the POST script against `url` for `seconds`."""
    return [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
            str(script), url]


def wrk_once(wrk: str, url: str, script: Path, seconds: int, connections: int, threads: int = 1,
             check: bool = False) -> WrkRun:
    """Run `wrk_command` to its end and read its figures."""
    cmd = wrk_command(wrk, url, script, seconds, connections, threads)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         check=check).stdout
    return parse_wrk(cmd, out)


def run_wrk(url: str, spec: LoadSpec, threads: int, server_pid: int) -> dict[str, Any]:
    wrk = find_wrk()
    duration = max(1, math.ceil(spec.duration_s))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(wrk_script(body_pool(spec, 0)[0]))
        cmd = wrk_command(wrk, url.rstrip("/") + spec.path, script, duration, spec.connections,
                          threads)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # wrk has no warm-up; sample CPU from its second second on, as the generator's window does.
        sampler = CpuSampler({"wrk": proc.pid, "noop_server": server_pid},
                             origin_ns=perf_counter_ns() + 1_000_000_000).start()
        try:
            out, _ = proc.communicate(timeout=duration + 60)
        finally:
            sampler.stop()
    run = parse_wrk(cmd, out)
    rps = run.rps
    cpu = with_other({name: sampler.mean(name, 0, duration - 1)
                      for name in ("wrk", "noop_server", "machine")})
    errors = _ERRORS.search(out)
    return {
        "ceiling_rps": rps,
        "non_2xx": run.non_2xx,
        "socket_errors": errors.group(0) if errors else None,
        "cpu_percent": cpu,
        "cpu_us_per_request": cpu_us_per_request(cpu["wrk"], rps),
        "command": " ".join([*cmd[:-3], "-s", "post.lua", cmd[-1]]),
        "output": out,
    }


def compare_with_wrk(duration_s: float = 5.0, connections: int = 50, workers: int = 1,
                     threads: int = 1, spec: LoadSpec | None = None,
                     repeat: int = 1, engines: Sequence[Engine] | None = None) -> dict[str, Any]:
    """Each engine's ceiling and wrk's, alternating `repeat` times against one no-op server.

    Alternating spreads any background load over all tools; the figures are medians over
    the quiet trials (see QUIET_OTHER_CPU), or over all trials when none was quiet. The
    first engine's figures are also given under the `generator_*` keys.
    """
    base = ceiling_spec(duration_s, 1.0, connections, workers, spec=spec)
    engines = list(engines or [base.engine])
    loads = {engine: replace(base, engine=engine) for engine in engines}
    ours: dict[str, list[dict[str, Any]]] = {engine: [] for engine in engines}
    theirs: list[dict[str, Any]] = []
    with noop_server(batch_size=base.batch_size) as (url, pid):
        for _ in range(repeat):
            for engine in engines:
                ours[engine].append(measure_against(loads[engine], url, pid))
            theirs.append(run_wrk(url, base, threads, pid))
    for trial in (*[t for trials in ours.values() for t in trials], *theirs):
        other = trial["cpu_percent"].get("other")
        trial["quiet"] = other is not None and other <= QUIET_OTHER_CPU
    wrk_median = _median_rps(theirs)
    per_engine = {}
    for engine, trials in ours.items():
        rps = _median_rps(trials)
        per_engine[engine] = {
            "rps": rps,
            "over_wrk": round(rps / wrk_median, 3) if rps and wrk_median else None,
            "cpu_us_per_request": _median([t["cpu_us_per_request"] for t in trials]),
        }
    first = engines[0]
    return {
        "engines": per_engine,
        "generator_engine": first,
        "generator_rps": per_engine[first]["rps"],
        "wrk_rps": wrk_median,
        "generator_over_wrk": per_engine[first]["over_wrk"],
        "wrk_cpu_us_per_request": _median([t["cpu_us_per_request"] for t in theirs]),
        "workers": workers,
        "wrk_threads": threads,
        "medians_over": "quiet trials" if all(
            any(t["quiet"] for t in trials) for trials in (*ours.values(), theirs))
        else "all trials",
        "quiet_rule": f"a trial is quiet when processes other than the tool and the no-op "
                      f"server used <= {QUIET_OTHER_CPU:g}% CPU",
        "generator_trials": ours[first],
        **{f"{engine}_trials": ours[engine] for engine in engines[1:]},
        "wrk_trials": theirs,
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def _median_rps(trials: list[dict[str, Any]]) -> float | None:
    """Median over the quiet trials, or over all when none was quiet."""
    quiet = [t["ceiling_rps"] for t in trials if t["quiet"] and t["ceiling_rps"] is not None]
    values = quiet or [t["ceiling_rps"] for t in trials if t["ceiling_rps"] is not None]
    return statistics.median(values) if values else None
