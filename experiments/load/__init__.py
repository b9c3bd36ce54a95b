"""The load generator (closed and open loop) and its result files.

Two engines, chosen by `LoadSpec.engine`, record the same files: "aiohttp" (client.py,
a coroutine per request through aiohttp) and "raw" (rawengine.py, prebuilt request bytes
on uvloop Protocols with httptools parsing, several times cheaper per request).

Library: `apply_load(spec, out_dir, ...)` writes a run directory per experiments/RESULTS.md
and returns its summary; `measure_ceiling()` is the generator's own limit on this machine.
Command: `python -m experiments.load --help`. Load from several hosts: a generator agent
per host (`python -m experiments.load agent`, agent.py) and `apply_load(..., hosts=...)`
(remote.py), which runs the same workers there and merges them the same way.
"""

from __future__ import annotations

from experiments.load.ceiling import measure_ceiling, measure_ceiling_detail
from experiments.load.driver import DuringLoad, apply_load, execute_load
from experiments.load.spec import ENDPOINT_PATHS, LoadSpec, LoadSpecError
from experiments.load.worker import LoadRunError

# The rules a summary states, and the refusal to overwrite a run, are the run directory's.
from experiments.rundir import GENERATOR_BOUND_RULE, OVERLOAD_RULE, RunDirError, generator_bound

__all__ = [
    "ENDPOINT_PATHS",
    "GENERATOR_BOUND_RULE",
    "OVERLOAD_RULE",
    "DuringLoad",
    "LoadRunError",
    "LoadSpec",
    "LoadSpecError",
    "RunDirError",
    "apply_load",
    "execute_load",
    "generator_bound",
    "measure_ceiling",
    "measure_ceiling_detail",
]
