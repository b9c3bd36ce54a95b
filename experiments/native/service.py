"""Launch seed-rs like `ServiceProcess` launches the Python service, with the same interface.

`RustService(mode, bootstrap, topic, log_file, **settings)` (the settings it reads:
`producer_config`, `workers`, `topic_partitions`),
`.start() -> dict`, `.stop() -> exit code`, `.pid`, `.url`, `.metrics()`: a run can hold
either. The binary reads the Python service's environment variables (INGEST_MODE,
INGEST_PORT, INGEST_WORKERS, INGEST_TOPIC, INGEST_PRODUCER_CONFIG, KAFKA_BOOTSTRAP_SERVERS);
`INGEST_WORKERS` is the number of actix worker threads in its one process, which share
one producer (the Python service forks one process, with its own producer, per worker).
"""

from __future__ import annotations

from typing import Any

from experiments.kafka.topics import create_topic
from experiments.native.build import build
from experiments.service_proc import ServiceProcess


class RustService(ServiceProcess):
    """seed-rs in one producer mode on a free 127.0.0.1 port; built first if needed."""

    name = "seed-rs"

    def command(self) -> list[str]:
        return [str(build().binary)]

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        """Build if the sources changed, create the topic, start, and wait for `/readyz`.

        Returns the readiness JSON: mode, topic, workers and the effective producer config.
        The build is not counted in `timeout`.
        """
        build()
        # The Python service creates its topic itself; seed-rs, like the article, does not.
        create_topic(self.bootstrap, self.topic, partitions=self.partitions)
        return super().start(timeout)
