"""A generator agent: runs its share of a load spread over several hosts, when a run asks.

    LAB_AGENT_TOKEN=<shared secret> python -m experiments.load agent [--bind 127.0.0.1] [--port 7070]

Its worker processes are today's (`worker.drive_workers`: same engines, load models and
recorder); the agent only receives the whole load, the indices of the workers it hosts
and a start time on its own wall clock, and returns each worker's plain-data result
(exact histograms, per-second counts), its acknowledged ids and its host's CPU.

Safe to leave running: it listens on loopback unless told otherwise, answers nothing
without the shared token, refuses a controller of another version, validates every load
as the generator does (a target outside loopback only when the run says `allow_remote`),
and holds one run at a time. A run it was never told to start, or whose result nobody
collected, is dropped on its own (`READY_TIMEOUT_S`, `RESULT_KEEP_S`), so a controller
that died cannot keep it busy.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from time import monotonic, perf_counter_ns, time_ns
from typing import Any

from aiohttp import web

from experiments.cpu import CpuSampler
from experiments.load.agentclient import (
    AGENT_VERSION,
    DEFAULT_PORT,
    DEFAULT_TOKEN_ENV,
    MIN_TOKEN_CHARS,
    TOKEN_HEADER,
    VERSION_HEADER,
)
from experiments.load.recorder import NS_PER_S
from experiments.load.spec import LoadSpec, LoadSpecError
from experiments.load.worker import READY_TIMEOUT_S, LoadRunError, drive_workers
from experiments.provenance import usable_cores
from experiments.rundir import RunDir

RESULT_KEEP_S = 300.0  # a finished run's result waits this long for its controller
SWEEP_S = 5.0
RELEASE_WAIT_S = 10.0


@dataclass
class AgentRun:
    """One run on this agent, from `prepare` until its result is collected or dropped."""

    run_id: str
    spec: LoadSpec
    indices: list[int]
    work_dir: Path
    record_acks: bool
    state: str = "preparing"  # preparing -> ready -> running -> done | failed
    error: str | None = None
    worker_pids: list[int] = field(default_factory=list)
    start_wall_ns: int | None = None
    start_margin_ns: int | None = None
    result: dict[str, Any] | None = None
    ended_at: float | None = None  # monotonic
    released: bool = False
    go: threading.Event = field(default_factory=threading.Event)

    def public(self) -> dict[str, Any]:
        status: dict[str, Any] = {"run_id": self.run_id, "state": self.state,
                                  "indices": self.indices, "worker_pids": self.worker_pids}
        if self.error:
            status["error"] = self.error
        if self.state == "done":
            status["result"] = self.result
        return status


class Agent:
    def __init__(self, token: str) -> None:
        self._token = f"Bearer {token}".encode()
        self.run: AgentRun | None = None

    # -- the application ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.add_routes([
            web.get("/v1/hello", self.hello),
            web.get("/v1/clock", self.clock),
            web.post("/v1/runs", self.prepare),
            web.post("/v1/runs/{run_id}/start", self.start),
            web.get("/v1/runs/{run_id}", self.status),
            web.get("/v1/runs/{run_id}/acks/{worker}", self.acks),
            web.delete("/v1/runs/{run_id}", self.release),
        ])
        app.on_startup.append(self._start_sweeper)
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        # The token first: nobody without it learns even the version.
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, self._token):
            return _refuse(401, "token", "wrong or missing token")
        theirs = request.headers.get(VERSION_HEADER, "")
        if theirs != AGENT_VERSION:
            return _refuse(409, "version", f"agent runs {AGENT_VERSION}, controller {theirs or '?'}",
                           agent_version=AGENT_VERSION, controller_version=theirs)
        return await handler(request)

    async def hello(self, request: web.Request) -> web.Response:
        return web.json_response({
            "version": AGENT_VERSION, "pid": os.getpid(), "hostname": socket.gethostname(),
            "cores": usable_cores(), "busy": self.run.run_id if self.run else None,
            "wall_ns": time_ns(),
        })

    async def clock(self, request: web.Request) -> web.Response:
        return web.json_response({"wall_ns": time_ns()})

    async def prepare(self, request: web.Request) -> web.Response:
        if self.run is not None:
            return _refuse(409, "busy", "one run at a time", run_id=self.run.run_id)
        body = await request.json()
        try:
            spec = LoadSpec(**body["spec"]).validate()
            indices = [int(i) for i in body["indices"]]
            if not indices or any(not 0 <= i < spec.workers for i in indices):
                raise LoadSpecError("indices", f"{indices} are not workers of a {spec.workers}-worker load")
            if spec.body_file is not None:
                raise LoadSpecError("body_file", "a file on the run's host is not sent to agents")
        except (LoadSpecError, KeyError, TypeError, ValueError) as exc:
            return _refuse(400, "refused", f"load refused: {exc}")
        work_dir = Path(tempfile.mkdtemp(prefix="lab-agent-"))
        run = AgentRun(str(body["run_id"]), spec, indices, work_dir, bool(body.get("record_acks")))
        self.run = run
        threading.Thread(target=self._execute, args=(run,), name=f"run-{run.run_id}", daemon=True).start()
        return web.json_response(run.public(), status=202)

    async def start(self, request: web.Request) -> web.Response:
        run = self._current(request)
        if run.state != "ready":
            return _refuse(409, "refused", f"run {run.run_id} is {run.state}, not ready to start")
        start_wall_ns = int((await request.json())["start_wall_ns"])
        margin = start_wall_ns - time_ns()
        if margin <= 0:
            # Starting late would send the missed part of the schedule in a burst.
            return _refuse(409, "refused", f"the start time passed {-margin / 1e6:.1f} ms ago")
        run.start_wall_ns, run.start_margin_ns = start_wall_ns, margin
        run.go.set()
        return web.json_response({"start_margin_ns": margin})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self._current(request).public())

    async def acks(self, request: web.Request) -> web.StreamResponse:
        run = self._current(request)
        worker = int(request.match_info["worker"])
        path = RunDir(run.work_dir).ack_part(worker)
        if run.state != "done" or worker not in run.indices or not path.exists():
            return _refuse(404, "refused", f"no acknowledged ids of worker {worker}")
        return web.FileResponse(path)

    async def release(self, request: web.Request) -> web.Response:
        run = self._current(request)
        self._drop(run)
        # A run that never started ends at once; answering after it did means the agent is
        # free when the controller hears back. A running load ends with its window.
        for _ in range(round(RELEASE_WAIT_S / 0.05)):
            if run.ended_at is not None or run.state == "running":
                break
            await asyncio.sleep(0.05)
        return web.json_response({"released": run.run_id, "state": run.state})

    def _current(self, request: web.Request) -> AgentRun:
        run_id = request.match_info["run_id"]
        if self.run is None or self.run.run_id != run_id:
            raise web.HTTPNotFound(text=f'{{"error": "refused", "message": "no run {run_id}"}}',
                                   content_type="application/json")
        return self.run

    def _drop(self, run: AgentRun) -> None:
        """Forget `run` now if it has ended, else when its thread ends: its workers may
        still be sending, and one run at a time means that one."""
        run.released = True
        run.go.set()  # a run still waiting for its start gives up (no start time: it fails)
        if run.ended_at is not None:
            self._forget(run)

    def _forget(self, run: AgentRun) -> None:
        if self.run is run:
            self.run = None
        shutil.rmtree(run.work_dir, ignore_errors=True)

    async def _start_sweeper(self, app: web.Application) -> None:
        async def sweep() -> None:
            while True:
                await asyncio.sleep(SWEEP_S)
                run = self.run
                # A result waits for its controller; a run that never started has none.
                keep = RESULT_KEEP_S if run is not None and run.start_wall_ns is not None else 0.0
                if run is not None and run.ended_at is not None and monotonic() - run.ended_at > keep:
                    self._forget(run)

        app["sweeper"] = asyncio.get_running_loop().create_task(sweep())

    # -- the run, in its own thread: drive_workers blocks -------------------------------

    def _execute(self, run: AgentRun) -> None:
        samplers: list[CpuSampler] = []

        def start_at(worker_pids: list[int]) -> int:
            run.worker_pids = worker_pids
            run.state = "ready"
            if not run.go.wait(READY_TIMEOUT_S) or run.start_wall_ns is None:
                raise LoadRunError("no start time came (the run was dropped or its controller is gone)")
            # The wall-clock start, on this host's monotonic clock the workers schedule by.
            return perf_counter_ns() + (run.start_wall_ns - time_ns())

        def on_start(t_start_ns: int, worker_pids: list[int]) -> None:
            origin = t_start_ns + round(run.spec.warmup_s * NS_PER_S)
            # The agent alone is the control plane's cost; its workers are the generator.
            samplers.append(CpuSampler({"agent": [os.getpid()], "generator": worker_pids},
                                       with_children=("generator",), origin_ns=origin).start())
            run.state = "running"

        try:
            results = drive_workers(run.spec, run.work_dir if run.record_acks else None, on_start,
                                    indices=run.indices, start_at=start_at)
            for sampler in samplers:
                sampler.stop()
            run.result = {
                "workers": results,
                "cpu": [asdict(row) for sampler in samplers for row in sampler.rows],
                "cores": usable_cores(),
                "start_margin_ns": run.start_margin_ns,
            }
            run.state = "done"
        except BaseException:
            run.error = traceback.format_exc()
            run.state = "failed"
        finally:
            for sampler in samplers:
                sampler.stop()
            run.ended_at = monotonic()
            if run.released:
                self._forget(run)


def _refuse(status: int, kind: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": kind, "message": message, **extra}, status=status)


def agent_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.load agent",
                                     description="Serve as a generator host for runs with load_hosts.")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (loopback unless told otherwise)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0: any free port")
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV,
                        help="environment variable holding the shared token")
    return parser


def serve(argv: list[str]) -> int:
    args = agent_parser().parse_args(argv)
    token = os.environ.get(args.token_env, "")
    if len(token) < MIN_TOKEN_CHARS:
        sys.stderr.write(f"error: set {args.token_env} to a shared token of at least "
                         f"{MIN_TOKEN_CHARS} characters (the same in the run's environment)\n")
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in args.bind else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    # Listening before the address is announced: a request that comes at once waits in the
    # backlog until the app serves, rather than being refused.
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    # The first line of stdout is the address, for whoever started it with --port 0.
    sys.stdout.write(f"listening {host}:{port} version {AGENT_VERSION}\n")
    sys.stdout.flush()
    web.run_app(Agent(token).app(), sock=sock, print=None, access_log=None,
                handle_signals=True)
    return 0
