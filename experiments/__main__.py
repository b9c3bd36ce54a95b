"""`python -m experiments run PLAN` | `report PLAN_DIR` | `cells PLAN`: a thin CLI over the runner."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from experiments.errors import LabError
from experiments.plans import load_plan
from experiments.runner import build_report, run_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a plan (name or YAML path) into results/ and a report")
    run.add_argument("plan")
    run.add_argument("--results", type=Path, default=Path("results"))
    run.add_argument("--reports", type=Path, default=Path("reports"))
    run.add_argument("--no-resume", action="store_true", help="refuse to reuse finished cells")
    run.add_argument("--no-report", action="store_true")
    report = sub.add_parser("report", help="redraw the report of a plan's results without a rerun")
    report.add_argument("plan_dir", type=Path)
    report.add_argument("--reports", type=Path, default=Path("reports"))
    cells = sub.add_parser("cells", help="list a plan's cells and their parameters")
    cells.add_argument("plan")
    cells.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # papermill announces every notebook at INFO: the progress bar already says which cell runs.
    logging.getLogger("papermill").setLevel(logging.WARNING)
    try:
        if args.command == "run":
            outcome = run_plan(
                args.plan,
                args.results,
                args.reports,
                resume=not args.no_resume,
                report=not args.no_report,
            )
            print(
                f"plan {outcome.plan}: {len(outcome.ran)} ran, {len(outcome.skipped)} already done, "
                f"{len(outcome.failed)} failed; results in {outcome.plan_dir}",
                file=sys.stderr,
            )
            for cell, why in outcome.failed.items():
                print(f"  failed {cell}: {why}", file=sys.stderr)
            if outcome.report:
                print(outcome.report)
            return 1 if outcome.failed else 0
        if args.command == "report":
            print(build_report(args.plan_dir, args.reports))
            return 0
        plan = load_plan(args.plan)
        if plan.kind == "search":
            print(f"search plan: per configuration below, the runner bisects {plan.search} "
                  f"for p99 <= {plan.slo_p99_ms:g} ms; its cells are made as it goes")
            for config, values in plan.combinations():
                print(config, {**plan.base, **values})
        for cell in plan.cells(args.results):
            print(cell.id, cell.params)
        return 0
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
