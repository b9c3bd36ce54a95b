"""`python -m experiments run PLAN` | `report PLAN_DIR` | `cells PLAN` | `compare A B`: a thin
CLI over the runner and the comparisons."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from experiments.compare import compare_plans, family_note, table, unmatched
from experiments.errors import LabError
from experiments.plans import load_plan
from experiments.runner import build_report, run_plan
from experiments.stats import METHOD, THRESHOLD


def compare_command(a: Path, b: Path, threshold: float, out: Path | None,
                    ignore: list[str] | None = None) -> int:
    for path in (a, b):
        if not path.is_dir():
            raise LabError(f"{path} is not a results directory")
    rows = compare_plans(a, b, threshold, ignore or ())
    only_a, only_b = unmatched(a, b, ignore or ())
    if not rows:
        raise LabError(f"{a} and {b} share no configuration with finished runs")
    print(f"{b} against {a}\n")
    # Two runs of one plan share its directory name: then the parent tells them apart.
    a_name, b_name = (a.name, b.name) if a.name != b.name else (
        f"{a.parent.name}/{a.name}", f"{b.parent.name}/{b.name}")
    print(table(rows, a_name, b_name))
    print(f"\nMethod: {METHOD.format(threshold=threshold)}; {family_note(rows)}.")
    for name, only in ((a, only_a), (b, only_b)):
        if only:
            print(f"Only in {name}: {'; '.join(only)}")
    if out is not None:
        out.write_text(json.dumps([r.as_dict() for r in rows], indent=2) + "\n")
    return 0


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
    report.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another results directory of the plan: every configuration compared")
    report.add_argument("--loss-budget", type=int, default=0,
                        help="the Decision section's budget: acknowledged events lost per fault")
    report.add_argument("--p99-target-ms", type=float, default=0.0,
                        help="the Decision section's p99 target (default: the plan's slo_p99_ms)")
    versus = sub.add_parser("compare", help="B's configurations against A's: change, 95%% interval, "
                            "verdict (experiments/compare.py)")
    versus.add_argument("a", type=Path, help="a plan's results directory (the baseline)")
    versus.add_argument("b", type=Path, help="another results directory of the same plan")
    versus.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="the smallest relative change called a difference (default 0.05)")
    versus.add_argument("--json", type=Path, help="also write every comparison to this file")
    versus.add_argument("--ignore", action="append", default=[], metavar="PARAM",
                        help="a run parameter that does not tell configurations apart, so A's "
                             "and B's values of it are compared (repeatable; e.g. connections)")
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
                f"{len(outcome.failed)} failed, {len(outcome.set_aside)} run again because other load "
                f"disturbed them; results in {outcome.plan_dir}",
                file=sys.stderr,
            )
            for cell, why in outcome.failed.items():
                print(f"  failed {cell}: {why}", file=sys.stderr)
            if outcome.report:
                print(outcome.report)
            return 1 if outcome.failed else 0
        if args.command == "compare":
            return compare_command(args.a, args.b, args.threshold, args.json, args.ignore)
        if args.command == "report":
            if args.baseline is not None and not args.baseline.is_dir():
                raise LabError(f"{args.baseline} is not a results directory")
            print(build_report(args.plan_dir, args.reports, {
                "baseline_dir": str(args.baseline or ""), "loss_budget": args.loss_budget,
                "p99_target_ms": args.p99_target_ms}))
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
