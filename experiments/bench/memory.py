"""Service memory under sustained load: RSS after each million events, up to `events`.

A fire-and-forget service (one worker) takes batches from wrk in short rounds; after each
round the service's own count of accepted events (`/metrics`) and its RSS are recorded.
The figure the issue asks for is RSS at the end over RSS after the first million.
"""

from __future__ import annotations

import re
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from experiments.bench.profile import Case, request_body, rss_mb, service_server
from experiments.errors import LabError
from experiments.kafka import LocalKafka, ensure_kafka
from experiments.load.wrk import find_wrk, wrk_once, wrk_script
from experiments.provenance import collect_provenance

_ACCEPTED = re.compile(r'^ingest_events_accepted_total\{mode="fire-and-forget"\} ([0-9.e+]+)$',
                       re.MULTILINE)


def _accepted(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        found = _ACCEPTED.search(response.read().decode())
    return int(float(found.group(1))) if found else 0


def run_memory(out: Path, events: int = 10_000_000, checkpoint: int = 1_000_000,
               batch: int = 100, round_s: int = 5, connections: int = 50,
               max_s: float = 1800, bootstrap: str | None = None) -> dict[str, Any]:
    wrk = find_wrk("install it with `make bench-deps`")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_file = out.parent / (out.stem + ".service.log")
    target = ensure_kafka(bootstrap)
    case = Case("fire-and-forget, batch", "service", "/v1/events/batch", batch=batch,
                mode="fire-and-forget")
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                service_server(case, target.bootstrap, log_file) as (url, pid):
            script = Path(tmp) / "post.lua"
            script.write_text(wrk_script(request_body(batch)))
            rows.append({"events": 0, "rss_mb": rss_mb(pid), "elapsed_s": 0.0})
            next_mark = checkpoint
            while True:
                wrk_once(wrk, url + case.path, script, round_s, connections, 1)
                accepted = _accepted(url)
                row = {"events": accepted, "rss_mb": rss_mb(pid),
                       "elapsed_s": round(time.monotonic() - started, 1)}
                if accepted >= next_mark or accepted >= events:
                    rows.append(row)
                    next_mark = (accepted // checkpoint + 1) * checkpoint
                if accepted >= events:
                    break
                if time.monotonic() - started > max_s:
                    rows.append({**row, "stopped": "time limit"})
                    break
    finally:
        if target.started_here:
            LocalKafka().stop()
    first = next((r for r in rows if r["events"] >= checkpoint), None)
    last = rows[-1]
    if first is None:
        raise LabError(f"the service never reached {checkpoint} events: {rows}")
    document = {
        "schema": "lab.bench.memory/1",
        "load": {"client": "wrk", "path": case.path, "batch": batch, "connections": connections},
        "rows": rows,
        "rss_first_checkpoint_mb": first["rss_mb"],
        "rss_last_mb": last["rss_mb"],
        "last_over_first": round(last["rss_mb"] / first["rss_mb"], 3),
        "provenance": collect_provenance(target.kafka_version),
    }
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return document
