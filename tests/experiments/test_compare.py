"""Comparisons of plan directories: configurations matched by their parameters, verdicts
that say 'no difference' for one build twice and find a real change with its size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.__main__ import main
from experiments.compare import (
    compare_family,
    compare_plans,
    family_note,
    finished_runs,
    group_trials,
    table,
    unmatched,
)
from experiments.rundir import SCHEMA


def write_run(plan_dir: Path, name: str, params: dict, events: float, cpu: float, p99: float,
              finished: bool = True) -> None:
    run = plan_dir / name
    run.mkdir(parents=True)
    summary = {"schema": SCHEMA, "params": {**params, "output_dir": str(run), "cell": name},
               "results": {"events_per_s": events, "cpu_percent": {"service": cpu},
                           "latency_ms": {"p99": p99}}, "audit": {"lost": 0}}
    (run / "summary.json").write_text(json.dumps(summary))
    if not finished:
        (run / "error.txt").write_text("RuntimeError: the cell failed after its summary\n")


def plan(plan_dir: Path, rng: np.random.Generator, scale: dict[str, float], trials: int = 4) -> Path:
    for t in range(1, trials + 1):
        for connections in (10, 50):
            base = 3000.0 if connections == 10 else 5000.0
            events = base * scale.get(str(connections), 1.0) * float(np.exp(rng.normal(0, 0.02)))
            write_run(plan_dir, f"c{connections}-t{t}",
                      {"mode": "durable", "connections": connections, "trial": t, "seed": t},
                      events, 50.0, 20.0 * float(np.exp(rng.normal(0, 0.02))))
    write_run(plan_dir, "broken-t1", {"mode": "durable", "connections": 99, "trial": 1}, 1, 1, 1,
              finished=False)
    return plan_dir


def test_trials_are_grouped_by_every_parameter_but_the_bookkeeping(tmp_path: Path) -> None:
    groups = group_trials(finished_runs(plan(tmp_path / "a", np.random.default_rng(1), {})))
    assert sorted(g.config for g in groups.values()) == ["durable, connections=10",
                                                         "durable, connections=50"]
    assert all(len(g.runs) == 4 for g in groups.values())  # the unfinished run is not a trial


def test_one_build_twice_reads_as_no_difference(tmp_path: Path) -> None:
    a = plan(tmp_path / "a", np.random.default_rng(1), {})
    b = plan(tmp_path / "b", np.random.default_rng(2), {})
    rows = compare_plans(a, b)
    assert len(rows) == 2 * 3
    assert {r.comparison.verdict for r in rows} <= {"same", "undecided"}
    assert "better" not in table(rows) and "worse" not in table(rows)


def test_a_real_change_is_named_with_its_size(tmp_path: Path) -> None:
    a = plan(tmp_path / "a", np.random.default_rng(1), {})
    b = plan(tmp_path / "b", np.random.default_rng(2), {"50": 1.4})
    found = {(r.config, r.figure): r.comparison for r in compare_plans(a, b)}
    changed = found["durable, connections=50", "events/s"]
    assert changed.verdict == "better" and changed.low < 1.4 < changed.high
    assert found["durable, connections=10", "events/s"].verdict in ("same", "undecided")


def test_the_command_prints_the_table_and_writes_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    a = plan(tmp_path / "a", np.random.default_rng(1), {})
    b = plan(tmp_path / "b", np.random.default_rng(2), {"50": 0.7})
    write_run(b, "extra-t1", {"mode": "fire-and-forget", "connections": 50, "trial": 1}, 9, 9, 9)
    assert main(["compare", str(a), str(b), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "| durable, connections=50 | events/s |" in out and "worse" in out
    assert "Welch" in out and "Only in" in out
    assert len(json.loads((tmp_path / "c.json").read_text())) == 6
    assert unmatched(a, b)[1] == ["fire-and-forget, connections=50"]


def test_a_parameter_can_be_compared_across_plans(tmp_path: Path) -> None:
    """10 connections in A, 50 in B: with `--ignore connections` they are one configuration
    and the change between them is what the comparison names."""
    a, b = tmp_path / "a", tmp_path / "b"
    rng = np.random.default_rng(4)
    for t in range(1, 4):
        for plan_dir, connections, events in ((a, 10, 3000.0), (b, 50, 5000.0)):
            write_run(plan_dir, f"durable-t{t}", {"mode": "durable", "connections": connections,
                                                 "trial": t}, events * float(np.exp(rng.normal(0, 0.02))),
                      50.0, 20.0)
    assert compare_plans(a, b) == []
    (row, *_) = compare_plans(a, b, ignore=["connections"])
    assert row.figure == "events/s" and row.comparison.verdict == "better"
    assert row.comparison.low < 5 / 3 < row.comparison.high


def test_two_runs_of_one_plan_are_told_apart_in_the_header(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    a = plan(tmp_path / "run1" / "default", np.random.default_rng(1), {})
    b = plan(tmp_path / "run2" / "default", np.random.default_rng(2), {})
    assert main(["compare", str(a), str(b)]) == 0
    assert "| run1/default (trials) | run2/default (trials) |" in capsys.readouterr().out


def test_a_table_of_one_build_against_itself_raises_a_false_alarm_at_most_one_time_in_twenty() -> None:
    # 18 rows (six configurations, three figures) of two runs of one build, 3 trials each,
    # trial spread 5%: with a 95% interval per row some row reads "better" or "worse" in
    # about a third of such tables; the table's intervals must hold together.
    rng = np.random.default_rng(18)
    tables, alarms = 400, 0
    for _ in range(tables):
        pairs = [(list(np.exp(rng.normal(0, 0.05, 3))), list(np.exp(rng.normal(0, 0.05, 3))),
                  "events/s", True) for _ in range(18)]
        alarms += any(c.decided for c in compare_family(pairs))
    assert alarms / tables <= 0.05 + 0.03  # 0.05 plus three binomial standard errors at n=400


def test_a_table_still_finds_a_real_change_and_says_how_its_intervals_hold(tmp_path: Path) -> None:
    a = plan(tmp_path / "a", np.random.default_rng(1), {})
    b = plan(tmp_path / "b", np.random.default_rng(2), {"50": 1.4})
    rows = compare_plans(a, b)
    assert {r.comparison.confidence for r in rows} == {1 - 0.05 / len(rows)}
    found = {(r.config, r.figure): r.comparison for r in rows}
    assert found[("durable, connections=50", "events/s")].verdict == "better"
    assert "99.2% CI" in table(rows)
    assert "6 intervals is at 99.2% (Bonferroni)" in family_note(rows)
