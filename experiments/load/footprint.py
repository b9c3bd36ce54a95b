"""What a control plane for remote generators costs on this box: CPU and memory of its own
processes, idle and while each host is busy with a (stand-in) load.

Two candidates, measured the same way (process trees sampled with psutil over a fixed
interval; 100 = one core busy):

    python -m experiments.load.footprint agents --hosts 2     # ours: one HTTP agent per host
    python experiments/load/footprint.py dask --hosts 2        # a Dask scheduler, N nanny+worker

The Dask probe imports `distributed`, which the project does not depend on: run it with
an interpreter that has it (`python -m venv /tmp/dask && /tmp/dask/bin/pip install
distributed`). This file imports nothing from the project for that reason. "Busy" is the
control plane while every host runs a task that only sleeps: the cost of keeping a run
under control, without the load itself (whose CPU is the generator's, measured by every run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psutil

SETTLE_S = 5.0  # after start-up: imports and first connections are not the steady cost


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pids: list[int], children: bool = True) -> list[psutil.Process]:
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs.extend([root, *(root.children(recursive=True) if children else [])])
        except psutil.NoSuchProcess:
            continue
    return procs


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def rss_mb(procs: list[psutil.Process]) -> float:
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def measure(pids: list[int], seconds: float, children: bool = True) -> dict[str, float]:
    """Mean CPU (% of one core) of the process trees over `seconds`, and their RSS after."""
    procs = tree(pids, children)
    machine0, cpu0, t0 = _machine_busy(), cpu_seconds(procs), time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    procs = tree(pids, children)
    return {
        "cpu_percent": round(100 * (cpu_seconds(procs) - cpu0) / elapsed, 2),
        "rss_mb": round(rss_mb(procs), 1),
        "processes": len(procs),
        "machine_cpu_percent": round(100 * (_machine_busy() - machine0) / elapsed, 1),
    }


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str] | None = None) -> Iterator[list[int]]:
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for cmd in commands]
    try:
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def dask_footprint(hosts: int, seconds: float) -> dict[str, Any]:
    from distributed import Client  # the probe's own interpreter has it; the project does not

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [sys.executable, "-c", "from distributed.cli.dask_scheduler import main; main()",
                 "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    workers = [[sys.executable, "-c", "from distributed.cli.dask_worker import main; main()",
                address, "--nthreads", "1", "--no-dashboard", "--name", f"host-{i}"]
               for i in range(hosts)]
    with processes([scheduler, *workers]) as pids, Client(address, timeout=60) as client:
        client.wait_for_workers(hosts, timeout=60)
        time.sleep(SETTLE_S)
        idle = measure(pids, seconds)
        names = list(client.scheduler_info()["workers"])
        futures = [client.submit(time.sleep, seconds + 2, workers=[name], pure=False) for name in names]
        time.sleep(1.0)
        busy = measure(pids, seconds)
        client.gather(futures)
    return {"control_plane": "dask distributed", "hosts": hosts,
            "processes": "scheduler + per host a nanny and a worker", "idle": idle, "busy": busy}


def agents_footprint(hosts: int, seconds: float) -> dict[str, Any]:
    """Our agents idle, then while they run a light real load (against the no-op server):
    the agent processes alone, not the workers they spawn (those are the generator)."""
    import threading

    from experiments.load.agentclient import new_token, start_local_agents
    from experiments.load.ceiling import noop_server
    from experiments.load.driver import execute_load
    from experiments.load.remote import LoadHosts
    from experiments.load.spec import LoadSpec

    token = new_token()
    with start_local_agents(hosts, token) as agents, noop_server() as (url, _):
        pids = [agent.pid for agent in agents]
        time.sleep(SETTLE_S)
        idle = measure(pids, seconds, children=False)
        spec = LoadSpec(url=url, endpoint="noop", model="open", rate=100.0 * hosts, connections=4 * hosts,
                        workers=1, duration_s=seconds + 4, warmup_s=1.0)
        load = threading.Thread(target=execute_load, args=(spec,),
                                kwargs={"hosts": LoadHosts(tuple(a.address for a in agents), token)})
        load.start()
        time.sleep(4.0)  # past the prepare, the start and the warm-up
        busy = measure(pids, seconds, children=False)
        load.join()
    return {"control_plane": "experiments.load agent (HTTP)", "hosts": hosts,
            "processes": "per host one agent (its load workers not counted)", "idle": idle,
            "busy": busy, "busy_load": "open loop, 100 req/s per host, no-op server"}


PROBES: dict[str, Callable[[int, float], dict[str, Any]]] = {
    "agents": agents_footprint,
    "dask": dask_footprint,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.load.footprint",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=sorted(PROBES))
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="each of idle and busy")
    args = parser.parse_args(argv)
    result = PROBES[args.probe](args.hosts, args.seconds)
    result["cores"] = psutil.cpu_count()
    result["seconds"] = args.seconds
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
