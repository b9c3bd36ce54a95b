"""The load generator (aiohttp; closed and open loop) and its result files.

Library: `run_load(spec, out_dir, ...)` writes a run directory per experiments/RESULTS.md
and returns its summary; `measure_ceiling()` is the generator's own limit on this machine.
Command: `python -m experiments.load --help`.
"""

from __future__ import annotations

from experiments.load.ceiling import measure_ceiling, measure_ceiling_detail
from experiments.load.run import (
    GENERATOR_BOUND_RULE,
    OVERLOAD_RULE,
    DuringLoad,
    RunDirError,
    execute_load,
    generator_bound,
    run_load,
)
from experiments.load.spec import ENDPOINT_PATHS, LoadSpec, LoadSpecError
from experiments.load.worker import LoadRunError

__all__ = [
    "ENDPOINT_PATHS",
    "GENERATOR_BOUND_RULE",
    "OVERLOAD_RULE",
    "DuringLoad",
    "LoadRunError",
    "LoadSpec",
    "LoadSpecError",
    "RunDirError",
    "execute_load",
    "generator_bound",
    "measure_ceiling",
    "measure_ceiling_detail",
    "run_load",
]
