"""`python -m experiments.bench service|memory|hostile`: CPU per request beside the raw-ASGI
ceiling; service RSS over 10M events; what hostile connections cost the service."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import orjson

from experiments.bench.hostile import KINDS, run_hostile
from experiments.bench.hostile import table as hostile_table
from experiments.bench.memory import run_memory
from experiments.bench.profile import default_cases, run_profile, select, table, with_baseline
from experiments.errors import LabError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    service = sub.add_parser("service", help="per-request cost profile of the service (wrk)")
    service.add_argument("--out", type=Path, default=Path("results/bench/service.json"))
    service.add_argument("--duration", type=int, default=10, help="measured seconds per case")
    service.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before each")
    service.add_argument("--connections", type=int, default=50)
    service.add_argument("--threads", type=int, default=1, help="wrk threads")
    service.add_argument("--batch", type=int, default=100, help="events per batch request")
    service.add_argument("--rounds", type=int, default=1,
                         help="measure every case this many times, interleaved; quote the median")
    service.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                         help="also run every service case from this checkout of the project "
                              "(e.g. a `git worktree` of an older commit), interleaved")
    service.add_argument("--case", action="append", dest="cases",
                         help="only cases whose name contains this (repeatable)")
    service.add_argument("--bootstrap", help="an existing cluster instead of the local broker")
    memory = sub.add_parser("memory", help="service RSS after each million events (wrk batches)")
    memory.add_argument("--out", type=Path, default=Path("results/bench/memory.json"))
    memory.add_argument("--events", type=int, default=10_000_000)
    memory.add_argument("--checkpoint", type=int, default=1_000_000)
    memory.add_argument("--max-seconds", type=float, default=1800)
    memory.add_argument("--bootstrap", help="an existing cluster instead of the local broker")
    hostile = sub.add_parser("hostile", help="service RSS and hold time under N hostile "
                             "connections of each kind (slow body, non-reading, pipelining)")
    hostile.add_argument("--out", type=Path, default=Path("results/bench/hostile.json"))
    hostile.add_argument("--connections", type=int, default=100, help="per kind")
    hostile.add_argument("--kind", action="append", dest="kinds", choices=KINDS,
                         help="only this kind (repeatable); default: all")
    hostile.add_argument("--set", action="append", dest="overrides", default=[],
                         metavar="NAME=VALUE", help="a service setting, e.g. "
                         "request_timeout_s=5 (repeatable)")
    hostile.add_argument("--max-seconds", type=float, default=120,
                         help="per kind: stop waiting for the service to drop them")
    hostile.add_argument("--bootstrap", help="an existing cluster instead of the local broker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "memory":
            result = run_memory(args.out, events=args.events, checkpoint=args.checkpoint,
                                max_s=args.max_seconds, bootstrap=args.bootstrap)
            print(orjson.dumps({k: v for k, v in result.items() if k != "provenance"},
                               option=orjson.OPT_INDENT_2).decode())
            return 0
        if args.command == "hostile":
            overrides = dict(item.split("=", 1) for item in args.overrides)
            document = run_hostile(args.out, connections=args.connections,
                                   kinds=tuple(args.kinds or KINDS), overrides=overrides,
                                   max_s=args.max_seconds, bootstrap=args.bootstrap)
            print(hostile_table(document))
            print(f"\nwritten: {args.out}", file=sys.stderr)
            return 0
        cases = select(default_cases(args.batch), args.cases)
        if args.baseline is not None:
            if not (args.baseline / "service" / "__init__.py").is_file():
                raise LabError(f"{args.baseline} is not a checkout of this project")
            cases = with_baseline(cases, args.baseline)
        document = run_profile(cases, args.out,
                               duration_s=args.duration, warmup_s=args.warmup,
                               connections=args.connections, threads=args.threads,
                               batch=args.batch, bootstrap=args.bootstrap, rounds=args.rounds)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(table(document))
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
