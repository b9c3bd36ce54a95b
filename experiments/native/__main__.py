"""`python -m experiments.native check|build|path|bench|fidelity`: the Rust comparison service."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from experiments.fidelity import table as fidelity_table
from experiments.native.bench import run_bench, run_fidelity, table
from experiments.native.build import NativeBuildError, NativeUnavailable, binary_path, build, missing_prereqs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.native", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="list missing build prerequisites (exit 1 if any)")
    build_cmd = sub.add_parser("build", help="build seed-rs unless the cached binary is current")
    build_cmd.add_argument("--force", action="store_true", help="run cargo even if the cache is current")
    sub.add_parser("path", help="print where the binary is (built or not)")
    bench = sub.add_parser("bench", help="wrk on POST /: seed-rs beside the Python service, both modes")
    bench.add_argument("--out", type=Path, default=None,
                       help="output dir (default results/native-bench/<time>)")
    bench.add_argument("--seconds", type=int, default=10, help="measured wrk run per target")
    bench.add_argument("--warmup", type=int, default=3, help="wrk warm-up per target, not measured")
    bench.add_argument("--connections", type=int, default=50)
    fidelity = sub.add_parser("fidelity", help="awkward events through seed-rs and the Python "
                              "service, both modes: kept, altered or refused")
    fidelity.add_argument("--out", type=Path, default=Path("results") / "native-fidelity",
                          help="output dir (fidelity.json and fidelity.md)")
    args = parser.parse_args(argv)
    if args.command == "check":
        missing = missing_prereqs()
        for item in missing:
            print(f"missing: {item}")
        return 1 if missing else 0
    if args.command == "path":
        print(binary_path())
        return 0
    if args.command == "fidelity":
        results = run_fidelity(args.out)
        print(fidelity_table(results))
        print(f"written to {args.out}/fidelity.json and fidelity.md")
        return 0
    if args.command == "bench":
        out = args.out or Path("results") / "native-bench" / time.strftime("%Y%m%dT%H%M%S")
        rows = run_bench(out, seconds=args.seconds, warmup=args.warmup, connections=args.connections)
        print(table(rows))
        print(f"written to {out}/bench.json and bench.md")
        return 0
    try:
        result = build(force=args.force)
    except (NativeUnavailable, NativeBuildError) as exc:
        print(exc, file=sys.stderr)
        return 1
    state = f"built in {result.seconds:.1f} s" if result.built else "up to date"
    print(f"{result.binary} ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
