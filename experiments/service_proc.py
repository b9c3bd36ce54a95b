"""Launch the ingestion service as its own process, wait until it is ready, stop it cleanly."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from experiments.errors import LabError
from experiments.kafka.broker import free_port
from service.settings import environment


class ServiceStartError(LabError):
    """The service exited or never became ready; `log_tail` holds the end of its log."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(f"{message}\n--- service log (tail) ---\n{log_tail}")
        self.log_tail = log_tail


def _get(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(headers or {})),
                                    timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class ServiceProcess:
    """`python -m service` in one producer mode on a free 127.0.0.1 port.

    The one launcher of the suite: runs, fault injection and the tests all start the
    service through it. `settings` are any of the service's settings by field name
    (`workers=2`, `delivery_bridge="thread"`, `producer_config={...}`), passed by
    environment as a deployment would (`service.settings.environment` names and encodes
    them); `env` sets further variables, applied last.
    """

    def __init__(self, mode: str, bootstrap: str, topic: str, log_file: Path, *,
                 env: Mapping[str, str] | None = None, source: Path | None = None,
                 **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.settings: dict[str, Any] = {
            # The no-op endpoint is how a run measures the same server without Kafka.
            "bench_endpoints": True,
            **settings,
            "mode": mode, "bootstrap_servers": bootstrap, "topic": topic,
            "host": "127.0.0.1", "port": self.port,
        }
        self.env = {**os.environ, **environment(self.settings), **(env or {})}
        # Another checkout of the project whose service runs instead (a before/after): run
        # from its directory, since `python -m` puts the working directory first on the path.
        self.source = source
        if source is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(source.resolve()), os.environ.get("PYTHONPATH")]))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def mode(self) -> str:
        return str(self.settings["mode"])

    @property
    def bootstrap(self) -> str:
        return str(self.settings["bootstrap_servers"])

    @property
    def topic(self) -> str:
        return str(self.settings["topic"])

    @property
    def partitions(self) -> int:
        return int(self.settings.get("topic_partitions") or 1)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise LabError("service not started")
        return self.proc.pid

    name = "service"  # in error messages
    probe_timeout_s = 5.0  # one /readyz answer; a loaded box can take seconds

    def command(self) -> list[str]:
        """The program and arguments that run this service."""
        return [sys.executable, "-m", "service"]

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Start and wait for `/readyz`; returns its JSON (mode, topic, effective producer config)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        # The log is appended to (a restart keeps what came before): count from here.
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self.env,
                                         cwd=self.source)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with code {self.proc.returncode}",
                                        self.log_tail())
            with contextlib.suppress(OSError):
                status, body = _get(f"{self.url}/readyz", timeout=self.probe_timeout_s,
                                    headers=self._auth())
                last = f"{status} {body[:200]!r}"
                if status == 200 and self._workers_started(log_start) >= self.workers:
                    return dict(json.loads(body))
            time.sleep(0.02)  # a refused connect costs microseconds; start-up is paid per cell
        self.stop()
        raise ServiceStartError(
            f"{self.name} not ready after {timeout:.0f}s (last /readyz: {last})", self.log_tail()
        )

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def workers(self) -> int:
        return int(self.settings.get("workers") or 1)

    def _workers_started(self, log_start: int) -> int:
        """How many worker processes finished their start since `log_start` (uvicorn logs it
        once per worker). One worker answers /readyz before its siblings listen: with
        several, ready means every one of them is."""
        if self.workers == 1:
            return 1
        with contextlib.suppress(FileNotFoundError), self.log_file.open("rb") as log:
            log.seek(log_start)
            return log.read().count(b"Application startup complete.")
        return 0

    def logs(self) -> list[dict[str, Any]]:
        """The service's structured log lines, parsed (other output is skipped)."""
        with contextlib.suppress(FileNotFoundError):
            lines = self.log_file.read_bytes().splitlines()
            return [json.loads(line) for line in lines if line.startswith(b"{")]
        return []

    def metrics(self) -> str:
        return _get(f"{self.url}/metrics", timeout=5.0, headers=self._auth())[1].decode()

    def _auth(self) -> dict[str, str]:
        """A key of the service's own, for operational routes it may protect."""
        keys = self.settings.get("ops_api_keys") or self.settings.get("api_keys") or {}
        if not (self.settings.get("require_api_key") or self.settings.get("require_ops_key")) \
                or not keys:
            return {}
        key = next(iter(keys.values()))
        return {"Authorization": f"Bearer {getattr(key, 'get_secret_value', lambda: key)()}"}

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the service flushes its producer), SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""
