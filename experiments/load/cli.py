"""Command line: parse arguments into a LoadSpec and call the library, nothing else.

    python -m experiments.load --url http://127.0.0.1:8000 --endpoint seed --model closed \\
        --connections 50 --duration 60 --warmup 5 --out results/adhoc/<name>
    python -m experiments.load ceiling [--compare-wrk]
    python -m experiments.load agent [--bind 127.0.0.1] [--port 7070]   (a generator host)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from experiments.errors import LabError
from experiments.load.ceiling import measure_ceiling_detail
from experiments.load.driver import apply_load
from experiments.load.spec import ENDPOINT_PATHS, ENGINES, MODELS, LoadSpec

DEFAULTS = LoadSpec()


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULTS.url, help="service base URL")
    parser.add_argument("--endpoint", choices=sorted(ENDPOINT_PATHS), default=DEFAULTS.endpoint)
    parser.add_argument("--model", choices=MODELS, default=DEFAULTS.model)
    parser.add_argument("--engine", choices=ENGINES, default=DEFAULTS.engine,
                        help="load engine: aiohttp (a coroutine per request) or raw "
                             "(prebuilt bytes on uvloop Protocols, several times cheaper)")
    parser.add_argument("--connections", type=int, default=DEFAULTS.connections)
    parser.add_argument("--rate", type=float, default=DEFAULTS.rate,
                        help="open loop: requests/s over all workers")
    parser.add_argument("--duration", dest="duration_s", type=float, default=DEFAULTS.duration_s)
    parser.add_argument("--warmup", dest="warmup_s", type=float, default=DEFAULTS.warmup_s)
    parser.add_argument("--data-fields", type=int, default=DEFAULTS.data_fields)
    parser.add_argument("--field-size", type=int, default=DEFAULTS.field_size)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--body-file", default=None, help="send this file's bytes as every body")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--workers", type=int, default=DEFAULTS.workers)
    parser.add_argument("--timeout", dest="timeout_s", type=float, default=DEFAULTS.timeout_s)
    parser.add_argument("--drain-limit", dest="drain_limit_s", type=float,
                        default=DEFAULTS.drain_limit_s,
                        help="seconds after the window that answers may still arrive")
    parser.add_argument("--allow-remote", action="store_true",
                        help="permit a non-loopback URL (off by default)")


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    fields = LoadSpec.__dataclass_fields__
    return LoadSpec(**{k: v for k, v in vars(args).items() if k in fields}).validate()


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.load",
        description="Apply one load and write a run directory.",
        epilog="The generator's own ceiling: python -m experiments.load ceiling --help")
    add_spec_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="run directory (must be new)")
    parser.add_argument("--service-pid", type=int, default=None)
    parser.add_argument("--broker-pid", type=int, default=None)
    parser.add_argument("--ceiling", type=float, default=None,
                        help="generator ceiling in req/s (from `ceiling`), for the bound flag")
    return parser


def ceiling_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments.load ceiling",
                                     description="Measure the generator's own ceiling.")
    parser.add_argument("--duration", dest="duration_s", type=float, default=3.0)
    parser.add_argument("--warmup", dest="warmup_s", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--endpoint", choices=sorted(ENDPOINT_PATHS), default="seed")
    parser.add_argument("--engine", dest="engines", action="append", choices=ENGINES,
                        help=f"load engine (default {DEFAULTS.engine}); with --compare-wrk "
                             f"repeat it to measure several engines in the same run")
    parser.add_argument("--compare-wrk", action="store_true",
                        help="also run wrk against the same no-op server")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --compare-wrk: alternate the two tools this many times")
    parser.add_argument("--json", action="store_true", help="print the full detail as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["agent"]:
            from experiments.load.agent import serve  # the web server only where it serves

            return serve(argv[1:])
        if argv[:1] == ["ceiling"]:
            return _ceiling(ceiling_parser().parse_args(argv[1:]))
        return _run(run_parser().parse_args(argv))
    except LabError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


def _run(args: argparse.Namespace) -> int:
    pids = {name: pid for name, pid in (("service", args.service_pid),
                                        ("broker", args.broker_pid)) if pid}
    summary = apply_load(spec_from_args(args), args.out, pids=pids or None,
                       ceiling_rps=args.ceiling)
    results = summary["results"]
    shown = ("sent", "throughput_rps", "events_per_s", "error_rate", "late", "latency_ms",
             "cpu_percent", "generator_bound", "overloaded", "unfinished")
    _emit({key: results[key] for key in shown} | {"out": str(args.out)})
    return 0


def _ceiling(args: argparse.Namespace) -> int:
    engines = args.engines or [DEFAULTS.engine]
    if args.compare_wrk:
        from experiments.load.wrk import compare_with_wrk

        detail = compare_with_wrk(args.duration_s, args.connections, args.workers,
                                  args.wrk_threads, repeat=args.repeat, engines=engines)
        if not args.json:
            detail = _brief_comparison(detail)
        _emit(detail)
        return 0
    if len(engines) > 1:
        raise LabError("several --engine values need --compare-wrk (one run for all)")
    detail = measure_ceiling_detail(args.duration_s, args.warmup_s, args.connections,
                                    args.workers, args.endpoint, engine=engines[0])
    if args.json:
        _emit(detail)
    else:
        sys.stdout.write(f"{detail['ceiling_rps']}\n")
        sys.stderr.write(f"cpu: {detail['cpu_percent']}\n")
    return 0


def _brief_comparison(detail: dict[str, Any]) -> dict[str, Any]:
    """The figures and, per trial, rate and CPU: the rest is in --json."""
    brief = {k: v for k, v in detail.items() if not k.endswith("_trials")}
    for key in [k for k in detail if k.endswith("_trials")]:
        brief[key] = [{"rps": t["ceiling_rps"], "quiet": t["quiet"],
                       "cpu_percent": t["cpu_percent"],
                       "cpu_us_per_request": t["cpu_us_per_request"]} for t in detail[key]]
    brief["wrk_command"] = detail["wrk_trials"][0]["command"]
    return brief


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
