"""Plans expand into stable, valid cells; the run notebook's parameters mirror RunParams."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import nbformat
import pytest

from experiments.params import ParamsError, RunParams, load_profile
from experiments.plans import PLANS_DIR, load_plan


def test_every_shipped_plan_expands_into_valid_cells(tmp_path: Path) -> None:
    names = sorted(p.stem for p in PLANS_DIR.glob("*.yaml"))
    assert {"seed", "tuning", "saturation", "batch", "payload", "smoke", "default", "bridge"} <= set(names)
    for name in names:
        plan = load_plan(name)
        cells = plan.cells(tmp_path)
        assert len({c.id for c in cells}) == len(cells), name
        for cell in cells:
            params = RunParams.from_dict(cell.params)
            params.effective_producer_config()
            assert Path(params.output_dir) == tmp_path / plan.name / cell.id


def test_seed_plan_is_the_articles_experiment(tmp_path: Path) -> None:
    cells = load_plan("seed").cells(tmp_path)
    assert sorted({c.params["mode"] for c in cells}) == ["durable", "fire-and-forget"]
    assert all(c.params["connections"] == 50 and c.params["duration_s"] == 60 for c in cells)
    assert all(c.params["endpoint"] == "seed" and c.params["load_model"] == "closed" for c in cells)
    assert load_profile("seed") == {"message.timeout.ms": 2000}


def test_trials_are_the_outer_loop_and_ids_are_stable(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.yaml"
    plan_file.write_text(
        "name: p\ntrials: 2\nbase: {duration_s: 1}\n"
        "matrix: {mode: [durable, fire-and-forget], producer_config: [{}, {linger.ms: 20}]}\n"
    )
    cells = load_plan(plan_file).cells(tmp_path)
    assert [c.id for c in cells] == [
        "001-mode=durable_defaults-t1",
        "002-mode=durable_linger.ms=20-t1",
        "003-mode=fire-and-forget_defaults-t1",
        "004-mode=fire-and-forget_linger.ms=20-t1",
        "005-mode=durable_defaults-t2",
        "006-mode=durable_linger.ms=20-t2",
        "007-mode=fire-and-forget_defaults-t2",
        "008-mode=fire-and-forget_linger.ms=20-t2",
    ]
    assert cells[1].config == cells[5].config
    assert [c.id for c in load_plan(plan_file).cells(tmp_path)] == [c.id for c in cells]


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: p\nmatrix: {mode: [durable, sideways]}\n", "mode='sideways'"),
        ("name: p\nbase: {connectionz: 5}\n", "unknown run parameters"),
        ("name: p\nbase: {trial: 2}\n", "set by the runner"),
        ("name: p\nmatrix: {mode: durable}\n", "non-empty list"),
        ("name: p\nbase: {producer_profile: nope}\n", "profile 'nope' not found"),
        ("name: p\ninclude: [{mode: durable, delivery_reports: errors}]\n", "fire-and-forget"),
        ("name: p\ninclude: [{trial: 2}]\n", "set by the runner"),
        ("name: p\ninclude: {mode: durable}\n", "list of non-empty mappings"),
    ],
)
def test_bad_plans_are_refused_before_anything_runs(tmp_path: Path, yaml_text: str, message: str) -> None:
    plan_file = tmp_path / "p.yaml"
    plan_file.write_text(yaml_text)
    with pytest.raises(ParamsError, match=message):
        plan = load_plan(plan_file)
        for cell in plan.cells(tmp_path):
            RunParams.from_dict(cell.params).effective_producer_config()


def test_include_adds_combinations_the_matrix_does_not_cross(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.yaml"
    plan_file.write_text(
        "name: p\ntrials: 1\nbase: {duration_s: 1}\nmatrix: {mode: [durable, fire-and-forget]}\n"
        "include: [{mode: fire-and-forget, delivery_reports: errors}]\n")
    cells = load_plan(plan_file).cells(tmp_path)
    assert [c.id for c in cells] == ["001-mode=durable-t1", "002-mode=fire-and-forget-t1",
                                     "003-mode=fire-and-forget_delivery_reports=errors-t1"]
    assert RunParams.from_dict(cells[2].params).service_settings() == {
        "workers": 1, "delivery_bridge": "loop", "delivery_reports": "errors"}


def test_an_include_is_a_matrix_of_its_own_named_by_what_it_crosses(tmp_path: Path) -> None:
    plan_file = tmp_path / "p.yaml"
    plan_file.write_text(
        "name: p\ntrials: 1\nbase: {load_model: open, duration_s: 1}\n"
        "matrix: {mode: [durable, fire-and-forget], rate: [100, 200]}\n"
        "include: [{mode: [durable, fire-and-forget], fault: service-kill, load_model: closed,"
        " duration_s: 10, fault_at_s: 2, service_restart: true}]\n")
    cells = load_plan(plan_file).cells(tmp_path)
    assert [c.config for c in cells][4:] == ["mode=durable", "mode=fire-and-forget"]
    assert cells[4].params["fault"] == "service-kill" and cells[4].params["load_model"] == "closed"
    # Named apart from the matrix's own combinations (their names differ: `rate=` is in them).
    assert len({c.config for c in cells}) == len(cells)
    assert len(load_plan("decision").cells(tmp_path)) == 3 * (2 * 2 * 5 + 2 * 2 * 2)


def test_profile_overrides_stack_under_run_overrides() -> None:
    params = RunParams(producer_profile="throughput", producer_config={"linger.ms": 5})
    config = params.effective_producer_config()
    assert config["linger.ms"] == 5
    assert config["compression.type"] == "lz4"


def test_run_notebook_parameters_mirror_run_params(repo_root: Path) -> None:
    notebook = nbformat.read(repo_root / "notebooks" / "run_experiment.ipynb", as_version=4)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    defaults = {}
    for node in ast.parse(tagged[0].source).body:
        assert isinstance(node, ast.Assign)
        defaults[node.targets[0].id] = ast.literal_eval(node.value)  # type: ignore[attr-defined]
    expected = RunParams().as_dict()
    assert defaults == expected
    assert set(defaults) == {f.name for f in fields(RunParams)}


def test_the_old_name_of_the_broker_address_is_still_accepted() -> None:
    """`kafka_bootstrap` became `bootstrap` (one name for the broker address): plans, papermill
    `-p` and scripts that use the old name keep working."""
    assert RunParams.from_dict({"kafka_bootstrap": "b:9"}).bootstrap == "b:9"
    assert RunParams.from_namespace({"bootstrap": "", "kafka_bootstrap": "b:9"}).bootstrap == "b:9"
    assert RunParams.from_namespace({"bootstrap": "a:1", "kafka_bootstrap": "b:9"}).bootstrap == "a:1"


def test_the_sweep_and_the_search_measure_capacity_under_one_load() -> None:
    # Issue 18: their capacities are compared (within 15%), so they differ in method only.
    sweep, searched = load_plan("saturation"), load_plan("capacity")
    assert sweep.base == searched.base
    assert (sweep.trials, sweep.slo_p99_ms, sweep.matrix["mode"]) == (
        searched.trials, searched.slo_p99_ms, searched.matrix["mode"])
    assert searched.search is not None
    rates = sweep.matrix["rate"]
    assert (min(rates), max(rates)) == (1000, searched.search.high)
