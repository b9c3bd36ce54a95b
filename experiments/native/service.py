"""Launch seed-rs like `ServiceProcess` launches the Python service, with the same interface.

`RustService(mode, bootstrap, topic, log_file, producer_config, workers, partitions)`,
`.start() -> dict`, `.stop() -> exit code`, `.pid`, `.url`, `.metrics()`: a run can hold
either. The binary reads the Python service's environment variables (INGEST_MODE,
INGEST_PORT, INGEST_WORKERS, INGEST_TOPIC, INGEST_PRODUCER_CONFIG, KAFKA_BOOTSTRAP_SERVERS);
`INGEST_WORKERS` is the number of actix worker threads in its one process, which share
one producer (the Python service forks one process, with its own producer, per worker).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from experiments.kafka.topics import create_topic
from experiments.native.build import build
from experiments.service_proc import ServiceProcess, ServiceStartError, _get


class RustService(ServiceProcess):
    """seed-rs in one producer mode on a free 127.0.0.1 port; built first if needed."""

    def __init__(
        self,
        mode: str,
        bootstrap: str,
        topic: str,
        log_file: Path,
        producer_config: dict[str, Any] | None = None,
        workers: int = 1,
        partitions: int = 1,
        delivery_bridge: str = "loop",
    ) -> None:
        # `delivery_bridge` is a Python-service setting, taken only so the two classes are
        # interchangeable where a run constructs one: seed-rs has one way to get reports.
        super().__init__(mode, bootstrap, topic, log_file, producer_config, workers, partitions,
                         delivery_bridge)
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.env.update({
            "INGEST_MODE": mode,
            "INGEST_HOST": "127.0.0.1",
            "INGEST_PORT": str(self.port),
            "INGEST_WORKERS": str(workers),
        })

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Build if the sources changed, create the topic, start, and wait for `/readyz`.

        Returns the readiness JSON: mode, topic, workers and the effective producer config.
        The build is not counted in `timeout`.
        """
        binary = build().binary
        # The Python service creates its topic itself; seed-rs, like the article, does not.
        create_topic(self.bootstrap, self.topic, partitions=self.partitions)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen([str(binary)], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceStartError(f"seed-rs exited with code {self.proc.returncode}", self.log_tail())
            with contextlib.suppress(OSError):
                status, body = _get(f"{self.url}/readyz", timeout=5.0)
                last = f"{status} {body[:200]!r}"
                if status == 200:
                    return dict(json.loads(body))
            time.sleep(0.2)
        self.stop()
        raise ServiceStartError(f"seed-rs not ready after {timeout:.0f}s (last /readyz: {last})",
                                self.log_tail())
