"""Generator worker processes: each with its own event loop and share of the load.

The parent spawns the workers, waits until each has built its payloads and session, then
publishes one common start time (perf_counter nanoseconds, which is CLOCK_MONOTONIC and
so the same clock in every process on Linux) and collects one plain-data result per
worker. "spawn" rather than "fork": the caller may be a notebook kernel or a process with
Kafka client threads, which must not be forked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import selectors
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import monotonic, perf_counter_ns
from typing import Any

import aiohttp
import httptools
import uvloop

from experiments.errors import LabError
from experiments.load.client import PARSERS, Sender, open_session
from experiments.load.closedloop import run_closed
from experiments.load.openloop import Schedule, run_open
from experiments.load.payloads import body_pool
from experiments.load.rawengine import RawEngine, build_requests
from experiments.load.recorder import NS_PER_S, Recorder
from experiments.load.spec import LoadSpec, request_headers
from experiments.rundir import RunDir

READY_TIMEOUT_S = 60.0
START_DELAY_NS = 200_000_000  # lets every worker see the start time before it passes
# After the last answer a worker still builds its histograms and writes its acks.
FINISH_ALLOWANCE_S = 60.0
SELECT_MAX_CONNECTIONS = 500  # select() handles descriptors below 1024 only
PR_SET_TIMERSLACK = 29


class LoadRunError(LabError):
    """A worker failed or did not finish; `detail` holds its traceback or the reason."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(f"{message}\n{detail}" if detail else message)
        self.detail = detail


@dataclass(frozen=True)
class WorkerJob:
    spec: LoadSpec  # the whole load; the worker takes its own share
    index: int
    acks_dir: str | None  # None: do not record acknowledged ids (ceiling runs)


def event_loop_name(spec: LoadSpec) -> str:
    """Which event loop a worker of `spec` runs (recorded in the summary)."""
    return _loop_choice(spec)[0]


def client_name(spec: LoadSpec) -> str:
    """The HTTP client library behind `spec.engine`, with its version (for the summary)."""
    if spec.engine == "aiohttp":
        return f"aiohttp {aiohttp.__version__}"
    return f"raw asyncio Protocol + httptools {httptools.__version__}"


def _loop_choice(spec: LoadSpec) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    if spec.engine == "raw":
        # Its open loop wakes by timerfd (rawengine.WakeUp), not by the loop's coarse
        # timers, so it takes the fastest loop for both models.
        return "uvloop", uvloop.new_event_loop
    # The open loop's accuracy is bounded by its timers: epoll (and libuv) wait in whole
    # milliseconds, rounded up, which alone makes sends ~0.5 ms late on average and adds
    # that to every latency. select() waits in microseconds; it scans all its descriptors
    # per call, which is cheap for the few hundred connections a worker holds.
    if spec.model == "open" and spec.share(0).connections <= SELECT_MAX_CONNECTIONS:
        return "asyncio/select", lambda: asyncio.SelectorEventLoop(selectors.SelectSelector())
    return "uvloop", uvloop.new_event_loop


def _tighten_timer_slack() -> None:
    """Ask Linux to wake this process within 1 us of a timer instead of the default 50 us."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)


def worker_main(job: WorkerJob, messages: Any, start: Any, start_ns: Any) -> None:
    """Process entry point: report ready, wait for the common start, run, report the result."""
    try:
        _tighten_timer_slack()
        with asyncio.Runner(loop_factory=_loop_choice(job.spec)[1]) as runner:
            result = runner.run(_run_worker(job, messages, start, start_ns))
        messages.put(("result", job.index, result))
    except BaseException:
        messages.put(("error", job.index, traceback.format_exc()))


async def _run_worker(job: WorkerJob, messages: Any, start: Any, start_ns: Any) -> dict[str, Any]:
    spec = job.spec
    share = spec.share(job.index)
    bodies = body_pool(spec, job.index)
    parse = PARSERS[spec.endpoint]
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as stack:
        if spec.engine == "aiohttp":
            session = await stack.enter_async_context(
                open_session(share.connections, spec.timeout_s, request_headers(spec)))
        else:
            requests = build_requests(spec, bodies)
        messages.put(("ready", job.index, os.getpid()))
        if not await loop.run_in_executor(None, start.wait, READY_TIMEOUT_S):
            raise LoadRunError("the parent never gave the start signal")
        t_start = int(start_ns.value)
        t_window = t_start + round(spec.warmup_s * NS_PER_S)
        t_end = t_window + round(spec.duration_s * NS_PER_S)
        recorder = Recorder(t_window, spec.warmup_s, spec.duration_s, spec.drain_limit_s,
                            record_acks=job.acks_dir is not None)
        drain_deadline = t_end + round(spec.drain_limit_s * NS_PER_S)
        schedule = None
        if spec.model == "open":
            assert spec.rate is not None  # validate() refuses an open loop without a rate
            schedule = Schedule(t_start, t_end, spec.rate, job.index, spec.workers)
        if spec.engine == "aiohttp":
            sender = Sender(session, spec.target, bodies, parse, recorder)
            if schedule is None:
                await run_closed(sender, recorder, share.connections, t_start, t_end,
                                 drain_deadline)
            else:
                await run_open(sender, recorder, share.connections, schedule, drain_deadline)
        else:
            engine = RawEngine(spec, requests, parse, recorder)
            if schedule is None:
                await engine.run_closed(share.connections, t_start, t_end, drain_deadline)
            else:
                await engine.run_open(share.connections, schedule, drain_deadline)
    acks_file = RunDir(Path(job.acks_dir)).ack_part(job.index) if job.acks_dir else None
    return recorder.finish(job.index, os.getpid(), acks_file)


def start_soon(worker_pids: list[int]) -> int:
    """The start time of a run on one host: as soon as every worker can see it."""
    return perf_counter_ns() + START_DELAY_NS


def drive_workers(spec: LoadSpec, acks_dir: Path | None,
                on_start: Callable[[int, list[int]], None] | None = None,
                indices: Sequence[int] | None = None,
                start_at: Callable[[list[int]], int] = start_soon) -> list[dict[str, Any]]:
    """Run `spec` in `spec.workers` processes and return their results, in worker order.

    `indices` runs only those workers of `spec` (a generator agent hosts part of a load
    spread over several hosts); `start_at(worker_pids)` is asked, once every worker is
    ready, for the common start time in perf_counter nanoseconds and may wait for it to
    be decided elsewhere. `on_start(t_start_ns, worker_pids)` is called just before the
    start signal, so the caller can begin sampling CPU aligned to the run's clock.
    """
    chosen = list(range(spec.workers) if indices is None else indices)
    ctx = mp.get_context("spawn")
    messages = ctx.Queue()
    start = ctx.Event()
    start_ns = ctx.Value("q", 0)
    jobs = [WorkerJob(spec, i, str(acks_dir) if acks_dir else None) for i in chosen]
    procs = [ctx.Process(target=worker_main, args=(job, messages, start, start_ns),
                         name=f"load-worker-{job.index}", daemon=True) for job in jobs]
    try:
        for proc in procs:
            proc.start()
        ready = _collect(messages, "ready", len(jobs), monotonic() + READY_TIMEOUT_S, procs)
        worker_pids = [ready[i] for i in chosen]
        t_start = start_at(worker_pids)
        start_ns.value = t_start
        if on_start is not None:
            on_start(t_start, worker_pids)
        start.set()
        left_s = max(t_start - perf_counter_ns(), 0) / NS_PER_S
        budget = left_s + spec.warmup_s + spec.duration_s + spec.drain_limit_s + FINISH_ALLOWANCE_S
        results = _collect(messages, "result", len(jobs), monotonic() + budget, procs)
        for proc in procs:
            proc.join(timeout=10)
        return [results[i] for i in chosen]
    finally:
        start.set()  # releases workers still waiting, so none lingers
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        messages.close()
        with contextlib.suppress(Exception):
            messages.join_thread()


def _collect(messages: Any, kind: str, count: int, deadline: float,
             procs: list[Any]) -> dict[int, Any]:
    got: dict[int, Any] = {}
    while len(got) < count:
        left = deadline - monotonic()
        if left <= 0:
            raise LoadRunError(f"only {len(got)} of {count} workers reported {kind!r} in time")
        try:
            what, index, payload = messages.get(timeout=min(left, 1.0))
        except queue.Empty:
            dead = [p.name for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if dead:
                raise LoadRunError(f"worker process(es) died: {', '.join(dead)}") from None
            continue
        if what == "error":
            raise LoadRunError(f"load worker {index} failed", payload)
        if what == kind:
            got[index] = payload
    return got
