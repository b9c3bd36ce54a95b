"""The latency proxy of a local cluster: one Toxiproxy server, one proxy per listener of
every node, each with the latency toxics of its link, all set before any client connects.

The server runs detached from the Python process that started it, like the nodes, so a
cluster started in one command (or one plan cell's kernel) keeps its proxies for the
next; its pid, API port and routes live in the cluster's state file (BrokerState.network).

Which listener goes through which link (a node's advertised addresses are its proxies,
so no client or follower can reach it around them):
- `client` (PLAINTEXT): the service, the admin and audit clients -> the `client` link;
- `replication` (REPLICATION, the inter-broker listener): followers fetching from the
  leader -> the `broker` link;
- `controller` (CONTROLLER, the addresses in controller.quorum.voters): the quorum and
  each broker's registration and heartbeats -> the `broker` link.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from experiments.network.build import VERSION, build
from experiments.network.layout import NetworkError, NetworkLayout

LISTENERS = {"client": "PLAINTEXT", "replication": "REPLICATION", "controller": "CONTROLLER"}
LINK_OF_LISTENER = {"client": "client", "replication": "broker", "controller": "broker"}
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Route:
    """One proxy: clients connect to `listen_port`, the proxy to the node's `upstream_port`."""

    node_id: int
    listener: str  # a key of LISTENERS
    listen_port: int
    upstream_port: int

    @property
    def name(self) -> str:
        return f"node{self.node_id}-{self.listener}"

    @property
    def link(self) -> str:
        return LINK_OF_LISTENER[self.listener]


@dataclass(frozen=True)
class ProxyState:
    """The running proxy server as the cluster's state file records it."""

    layout: NetworkLayout
    pid: int
    api_port: int
    version: str
    log_file: str
    routes: tuple[Route, ...]
    # Per route name: what calibration measured the proxy itself to add, taken off its toxics.
    excess_us: dict[str, int] = field(default_factory=dict)

    def toxics(self, route: Route) -> dict[str, dict[str, int]]:
        """The toxics `route` should hold: its link's, less its measured excess."""
        return self.layout.link(route.link).toxics(self.excess_us.get(route.name, 0))

    def route(self, node_id: int, listener: str) -> Route:
        for route in self.routes:
            if route.node_id == node_id and route.listener == listener:
                return route
        raise NetworkError(f"no {listener} proxy for node {node_id}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "layout": self.layout.as_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProxyState:
        return cls(layout=NetworkLayout.from_dict(data["layout"]), pid=data["pid"], api_port=data["api_port"],
                   version=data["version"], log_file=data["log_file"],
                   routes=tuple(Route(**r) for r in data["routes"]),
                   excess_us=dict(data.get("excess_us", {})))


def _request(api_port: int, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float = 5.0, parse: bool = True) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{HOST}:{api_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        raise NetworkError(f"toxiproxy {method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None
    if not parse:
        return text.decode(errors="replace").strip()
    return json.loads(text) if text.strip() else None


def is_proxy_process(pid: int) -> bool:
    """True when `pid` is a live Toxiproxy server (a recycled pid is never signalled)."""
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and any("toxiproxy-server" in part
                                                             for part in proc.cmdline()[:1])
    except psutil.Error:
        return False


def start_proxies(layout: NetworkLayout, routes: list[Route], run_dir: Path, api_port: int,
                  preexec_fn: Callable[[], None] | None = None, timeout: float = 15.0) -> ProxyState:
    """Start the server, create every route's proxy with its toxics, and check them."""
    binary = build().binary  # builds on first use where Go is installed; else says what to do
    log_file = run_dir / "toxiproxy.log"
    with log_file.open("ab") as log:
        # warn: Toxiproxy logs every connection at info, which would cost CPU under load.
        proc = subprocess.Popen([str(binary), "-host", HOST, "-port", str(api_port)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                env={**os.environ, "LOG_LEVEL": "warn"}, preexec_fn=preexec_fn)
    state = ProxyState(layout=layout, pid=proc.pid, api_port=api_port, version=VERSION,
                       log_file=str(log_file), routes=tuple(routes))
    try:
        _wait_api(proc, api_port, log_file, timeout)
        for route in routes:
            _create(api_port, route, layout)
        _check(state)
    except Exception:
        stop_proxies(state)
        raise
    return state


def _wait_api(proc: subprocess.Popen[bytes], api_port: int, log_file: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_file.read_text(errors="replace")[-2000:]
            raise NetworkError(f"toxiproxy exited with code {proc.returncode}\n{tail}")
        with contextlib.suppress(OSError, NetworkError):
            version = _request(api_port, "GET", "/version", timeout=1.0, parse=False)
            if version != VERSION:
                raise RuntimeError(f"the proxy on port {api_port} says version {version!r}, not {VERSION}")
            return
        time.sleep(0.05)
    raise NetworkError(f"toxiproxy's API did not answer on port {api_port} within {timeout:.0f} s")


# main.go's toxic: Toxiproxy's latency at microsecond resolution.
TOXIC_TYPE = "latency_us"
TOXIC_ATTRIBUTES = ("latency_us", "jitter_us")


def _delayed(layout: NetworkLayout, route: Route) -> bool:
    """Whether `route`'s link asks for any delay; a link asking none has no toxic, since a
    zero toxic would only add a goroutine hand-off to every chunk."""
    link = layout.link(route.link)
    return bool(link.rtt_ms or link.jitter_ms)


def _create(api_port: int, route: Route, layout: NetworkLayout) -> None:
    _request(api_port, "POST", "/proxies", {"name": route.name, "listen": f"{HOST}:{route.listen_port}",
                                            "upstream": f"{HOST}:{route.upstream_port}", "enabled": True})
    if not _delayed(layout, route):
        return
    for stream, attributes in layout.link(route.link).toxics().items():
        _request(api_port, "POST", f"/proxies/{route.name}/toxics",
                 {"name": f"latency_{stream}", "type": TOXIC_TYPE, "stream": stream, "toxicity": 1.0,
                  "attributes": attributes})


def take_off(state: ProxyState, excess_us: dict[str, int]) -> ProxyState:
    """Set every delayed route's toxics to its link's round trip less `excess_us[route]`
    (calibration's measure of what the proxy itself adds there); the state that says so."""
    corrected = replace(state, excess_us={**state.excess_us, **excess_us})
    for route in state.routes:
        if route.name in excess_us and _delayed(state.layout, route):
            for stream, attributes in corrected.toxics(route).items():
                _request(state.api_port, "POST", f"/proxies/{route.name}/toxics/latency_{stream}",
                         {"attributes": attributes})
    _check(corrected)
    return corrected


def toxics_set(state: ProxyState) -> dict[str, dict[str, dict[str, int]]]:
    """What the server holds: proxy name -> stream -> latency attributes (for the run's files)."""
    proxies = _request(state.api_port, "GET", "/proxies")
    return {name: {t["stream"]: t["attributes"] for t in proxy.get("toxics", []) if t["type"] == TOXIC_TYPE}
            for name, proxy in proxies.items()}


def _check(state: ProxyState) -> None:
    """The server holds exactly the proxies and toxics asked (a toxic that did not take
    would make a run measure loopback while it reports a round trip)."""
    held = toxics_set(state)
    for route in state.routes:
        wanted = state.toxics(route) if _delayed(state.layout, route) else {}
        got = {s: {k: a.get(k) for k in TOXIC_ATTRIBUTES} for s, a in held.get(route.name, {}).items()}
        if route.name not in held or got != wanted:
            raise NetworkError(f"toxiproxy holds {got if route.name in held else 'no proxy'} for "
                               f"{route.name}; asked {wanted}")


def proxy_alive(state: ProxyState) -> bool:
    return is_proxy_process(state.pid)


def stop_proxies(state: ProxyState, timeout: float = 10.0) -> bool:
    """SIGTERM the server (SIGKILL after `timeout`); True when it was running."""
    if not is_proxy_process(state.pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.pid, signal.SIGTERM)
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(state.pid)
        try:
            proc.wait(timeout)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    # The parent reaps its own child (psutil's wait does for a child); no zombie is left.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(state.pid, os.WNOHANG)
    return True
