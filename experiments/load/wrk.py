"""The generator's ceiling beside wrk's, against one no-op server, in one run.

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
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from experiments.cpu import CpuSampler
from experiments.errors import MissingToolError
from experiments.load.ceiling import ceiling_spec, measure_against, noop_server, with_other
from experiments.load.payloads import body_pool
from experiments.load.spec import LoadSpec

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*")
# A shared machine: CPU used by anything but the two measured processes spoils a trial.
QUIET_OTHER_CPU = 10.0


def wrk_script(body: bytes) -> str:
    """A wrk Lua script sending `body` as a JSON POST (the body is a Lua long string)."""
    text = body.decode("utf-8")
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return (f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [{eq}[{text}]{eq}]\n")


def run_wrk(url: str, spec: LoadSpec, threads: int, server_pid: int) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise MissingToolError("wrk", "install it (Debian: `apt-get install -y wrk`)")
    duration = max(1, math.ceil(spec.duration_s))
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(wrk_script(body_pool(spec, 0)[0]))
        cmd = [wrk, f"-t{threads}", f"-c{spec.connections}", f"-d{duration}s", "--latency",
               "-s", str(script), url.rstrip("/") + spec.path]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # wrk has no warm-up; sample CPU from its second second on, as the generator's window does.
        sampler = CpuSampler({"wrk": proc.pid, "noop_server": server_pid},
                             origin_ns=perf_counter_ns() + 1_000_000_000).start()
        try:
            out, _ = proc.communicate(timeout=duration + 60)
        finally:
            sampler.stop()
    match = _RPS.search(out)
    non_2xx = _NON_2XX.search(out)
    errors = _ERRORS.search(out)
    return {
        "ceiling_rps": float(match.group(1)) if match else None,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else None,
        "cpu_percent": with_other({name: sampler.mean(name, 0, duration - 1)
                                   for name in ("wrk", "noop_server", "machine")}),
        "command": " ".join([*cmd[:-3], "-s", "post.lua", cmd[-1]]),
        "output": out,
    }


def compare_with_wrk(duration_s: float = 5.0, connections: int = 50, workers: int = 1,
                     threads: int = 1, spec: LoadSpec | None = None,
                     repeat: int = 1) -> dict[str, Any]:
    """Our ceiling and wrk's, alternating `repeat` times against one no-op server process.

    Alternating spreads any background load over both tools; the figures are medians over
    the quiet trials (see QUIET_OTHER_CPU), or over all trials when none was quiet.
    """
    load = ceiling_spec(duration_s, 1.0, connections, workers, spec=spec)
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    with noop_server(batch_size=load.batch_size) as (url, pid):
        for _ in range(repeat):
            ours.append(measure_against(load, url, pid))
            theirs.append(run_wrk(url, load, threads, pid))
    for trial in (*ours, *theirs):
        other = trial["cpu_percent"].get("other")
        trial["quiet"] = other is not None and other <= QUIET_OTHER_CPU
    our_median = _median_rps(ours)
    wrk_median = _median_rps(theirs)
    return {
        "generator_rps": our_median,
        "wrk_rps": wrk_median,
        "generator_over_wrk": round(our_median / wrk_median, 3)
        if our_median and wrk_median else None,
        "medians_over": "quiet trials" if all(
            any(t["quiet"] for t in trials) for trials in (ours, theirs)) else "all trials",
        "quiet_rule": f"a trial is quiet when processes other than the tool and the no-op "
                      f"server used <= {QUIET_OTHER_CPU:g}% CPU",
        "generator_trials": ours,
        "wrk_trials": theirs,
    }


def _median_rps(trials: list[dict[str, Any]]) -> float | None:
    """Median over the quiet trials, or over all when none was quiet."""
    quiet = [t["ceiling_rps"] for t in trials if t["quiet"] and t["ceiling_rps"] is not None]
    values = quiet or [t["ceiling_rps"] for t in trials if t["ceiling_rps"] is not None]
    return statistics.median(values) if values else None
