"""The bench's pure parts: its request bodies, the median of rounds, and CPU split by
thread kind (wrk's script and output are tested with experiments/load/wrk.py, in
tests/experiments/load/test_runs.py)."""

from __future__ import annotations

import asyncio
import ctypes
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import psutil

from experiments.bench.inprocess import _server_us_per_request
from experiments.bench.profile import (
    Case,
    Measured,
    _threads_cpu_s,
    default_cases,
    median_round,
    request_body,
    table,
    with_baseline,
)
from experiments.bench.raw_asgi import GuardedProtocol, guarded_app
from experiments.bench.raw_asgi import app as raw_app
from experiments.cpu import cpu_seconds_by_mode
from service.guard import NoDelayProtocol

PR_SET_NAME = 15


def test_a_batch_body_is_the_event_repeated() -> None:
    assert orjson.loads(request_body(3)) == [orjson.loads(request_body(1))] * 3


def test_threads_named_like_librdkafkas_are_counted_apart() -> None:
    """librdkafka names its threads `rdk:*`; a thread so named that burns 0.3 s of CPU
    must show in the librdkafka share, not in the Python one."""
    spun, release = threading.Event(), threading.Event()

    def spin() -> None:
        ctypes.CDLL("libc.so.6").prctl(PR_SET_NAME, b"rdk:spin", 0, 0, 0)
        started = time.thread_time()
        while time.thread_time() - started < 0.3:
            pass
        spun.set()
        release.wait(10)  # alive while sampled: an ended thread leaves /proc/PID/task

    process = [psutil.Process()]
    before = _threads_cpu_s(process)
    thread = threading.Thread(target=spin)
    thread.start()
    try:
        assert spun.wait(30)
        after = _threads_cpu_s(process)
    finally:
        release.set()
        thread.join()
    assert after["librdkafka"] - before["librdkafka"] >= 0.25
    assert set(after) == {"librdkafka", "python"}


def test_cpu_in_system_calls_is_counted_as_the_kernels_and_a_spin_as_user_space() -> None:
    """Reading /dev/zero in big chunks spends its time copying in the kernel; a Python spin
    loop spends its time in user space. Each must land on its own side."""
    process = [psutil.Process()]

    def spent(work: Callable[[], None]) -> dict[str, float]:
        before = cpu_seconds_by_mode(process)
        started = time.process_time()
        while time.process_time() - started < 0.3:
            work()
        after = cpu_seconds_by_mode(process)
        return {mode: after[mode] - before[mode] for mode in after}

    buffer = bytearray(1 << 20)  # allocated once: filling it is the kernel's copy alone
    with open("/dev/zero", "rb", buffering=0) as zero:
        in_kernel = spent(lambda: zero.readinto(buffer) and None)
    in_user = spent(lambda: sum(range(1000)) and None)
    assert set(in_kernel) == set(in_user) == {"user", "kernel"}
    assert in_kernel["kernel"] > in_kernel["user"]
    assert in_user["user"] > in_user["kernel"]


def _round(rps: float, service_cores: float) -> Measured:
    return Measured(Case("fire-and-forget, single", "service", "/"), requests=int(rps * 10),
                    seconds=10.0, rps=rps, p99_ms=5.0,
                    cores={"service": service_cores, "broker": 0.1, "wrk": 0.2, "other": 0.0})


def test_the_quoted_round_is_the_median_by_cpu_per_request_with_every_round_kept() -> None:
    # CPU per request 100, 50 and 70 us: the round quoted is the 70 us one, though its rate
    # is neither the highest nor the lowest, and all three rounds stay in the document.
    rounds = [_round(5_000, 0.5), _round(18_000, 0.9), _round(10_000, 0.7)]
    chosen = median_round(rounds).as_dict()
    assert chosen["service_us_per_request"] == 70.0 and chosen["rps"] == 10_000
    assert sorted(r["service_us_per_request"] for r in chosen["rounds"]) == [50.0, 70.0, 100.0]
    document = {"cases": [chosen], "ratios": {}, "in_process_us_per_request": {}}
    assert "| 10,000 (5,000-18,000) |" in table(document)
    assert "| 70.0 (50.0-100.0) |" in table(document)


def test_a_baseline_doubles_the_service_cases_on_servers_of_their_own(tmp_path: Path) -> None:
    cases = default_cases()
    doubled = with_baseline(cases, tmp_path)
    service = [c for c in cases if c.target == "service" and c.reports == "all"]
    assert len(service) < len([c for c in cases if c.target == "service"])  # errors-only: not doubled
    baseline = [c for c in doubled if c.source is not None]
    assert len(doubled) == len(cases) + len(service)
    assert [c.name for c in baseline] == [f"{c.name}, baseline" for c in service]
    assert {c.source for c in baseline} == {str(tmp_path.resolve())}
    assert not {c.server_key for c in baseline} & {c.server_key for c in cases}


def test_the_in_process_server_path_serves_every_request_on_both_protocols() -> None:
    """Each call waits for the raw app's answer: a protocol that refused the request (the
    guard answering 4xx) would never write it, and the measurement would time out."""

    async def both() -> list[float]:
        return [await asyncio.wait_for(
            _server_us_per_request(protocol, app, request_body(1), 200), 30)
            for protocol, app in ((NoDelayProtocol, raw_app), (GuardedProtocol, guarded_app))]

    costs = asyncio.run(both())
    assert all(math.isfinite(c) and c > 0 for c in costs)
