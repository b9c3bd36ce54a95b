"""The answer to "which mode and settings, for my loss budget and p99 target, and how much
will it carry": per configuration, capacity at the target, loss and unavailability per
fault kind, and the winner under the budget, with the runs that are the evidence.

A *choice* is what a user configures (mode, producer settings, delivery reports, workers,
the topic's replication...); the runs of one choice differ only in the *conditions* the
suite applies to it (offered rate, load model, connections, the fault, timings) and the
bookkeeping (trial, files). From whichever runs are present:

- capacity at the p99 target: the open-loop runs without a fault, rate by rate, with the
  capacity search's rule (experiments/search.py: a rate holds when no trial was
  overloaded and the 95% interval of its trials' p99 is within the target; undecided
  counts as not holding); the capacity is the highest rate with every lower rate holding;
- per fault kind: acknowledged events lost (the audit; the worst trial decides, since a
  budget is a promise about every fault) and seconds unavailable (from the fault to the
  first success), median and worst over trials;
- the winner: the highest capacity among the choices whose worst trial of every fault
  kind lost no more than the budget; a choice with no fault runs cannot be shown to meet
  a budget and is never the winner.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from experiments.compare import configuration
from experiments.search import HOLDS, verdict

# Parameters that set the conditions of a measurement, not the choice being measured.
CONDITIONS = frozenset({
    "rate", "load_model", "connections", "duration_s", "warmup_s", "fault", "fault_at_s",
    "fault_duration_s", "service_restart", "load_workers", "load_engine", "data_fields",
    "field_size",
})


@dataclass
class Capacity:
    """Capacity at a p99 target from a rate sweep (requests/s times events per request)."""

    events_per_s: float | None  # None: not even the lowest rate held
    all_held: bool  # the highest rate measured held: the capacity is at least that
    rates: list[tuple[float, str, list[str]]] = field(default_factory=list)  # rate, verdict, runs

    def describe(self) -> str:
        if not self.rates:
            return "not measured"
        if self.events_per_s is None:
            return f"none of the rates measured (lowest {self.rates[0][0]:,.0f}/s)"
        return f"{'at least ' if self.all_held else ''}{self.events_per_s:,.0f} events/s"


@dataclass
class FaultOutcome:
    kind: str
    lost: list[int]  # acknowledged events lost, per trial
    unavailable_s: list[float]
    runs: list[str]

    @property
    def worst_lost(self) -> int:
        return max(self.lost) if self.lost else 0


@dataclass
class Choice:
    label: str
    params: dict[str, Any]
    capacity: Capacity
    faults: dict[str, FaultOutcome]

    def within(self, loss_budget: int) -> bool | None:
        """Every fault kind's worst trial within the budget; None without fault runs."""
        if not self.faults:
            return None
        return all(f.worst_lost <= loss_budget for f in self.faults.values())


def _choice_key(params: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in configuration(params).items() if k not in CONDITIONS},
                      sort_keys=True, default=str)


def _label(choice: dict[str, Any], others: Sequence[dict[str, Any]]) -> str:
    varying = sorted(k for k in {k for o in others for k in o}
                     if len({json.dumps(o.get(k), sort_keys=True, default=str) for o in others}) > 1)
    parts = [str(choice.get("mode", ""))]
    for name in varying:
        if name == "mode":
            continue
        value = choice.get(name)
        if isinstance(value, dict):
            parts.append(" + ".join(f"{k}={v}" for k, v in value.items()) or "defaults")
        else:
            parts.append(f"{name}={value}")
    return ", ".join(p for p in parts if p) or "default"


def _events_per_request(params: dict[str, Any]) -> int:
    return int(params.get("batch_size", 1) or 1) if params.get("endpoint") == "batch" else 1


def capacity(runs: Sequence[tuple[str, dict[str, Any]]], p99_target_ms: float) -> Capacity:
    """The sweep rule over one choice's open-loop runs without a fault."""
    by_rate: dict[float, list[tuple[str, dict[str, Any]]]] = {}
    for run_id, summary in runs:
        by_rate.setdefault(float(summary["params"]["rate"]), []).append((run_id, summary))
    result = Capacity(None, False)
    holding = True
    for rate in sorted(by_rate):
        trials = by_rate[rate]
        decided = verdict([s.get("results") for _, s in trials], p99_target_ms)[0]
        result.rates.append((rate, decided, [r for r, _ in trials]))
        if holding and decided == HOLDS:
            result.events_per_s = rate * _events_per_request(trials[0][1]["params"])
        else:
            holding = False
    result.all_held = holding and bool(result.rates)
    return result


def choices(runs: Iterable[tuple[str, dict[str, Any]]], p99_target_ms: float) -> list[Choice]:
    """Every choice found among `runs` (finished runs: id, summary), in order of appearance."""
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for run_id, summary in runs:
        grouped.setdefault(_choice_key(summary.get("params") or {}), []).append((run_id, summary))
    configs = {key: {k: v for k, v in configuration(group[0][1]["params"]).items() if k not in CONDITIONS}
               for key, group in grouped.items()}
    out = []
    for key, group in grouped.items():
        sweep = [(r, s) for r, s in group if s["params"].get("load_model") == "open"
                 and s["params"].get("fault", "none") == "none"]
        faults: dict[str, FaultOutcome] = {}
        for run_id, summary in group:
            kind = summary["params"].get("fault", "none")
            if kind == "none":
                continue
            found = faults.setdefault(kind, FaultOutcome(kind, [], [], []))
            found.lost.append(int((summary.get("audit") or {}).get("lost") or 0))
            unavailable = (summary.get("availability") or {}).get("unavailable_s")
            if unavailable is not None and math.isfinite(unavailable):
                found.unavailable_s.append(float(unavailable))
            found.runs.append(run_id)
        out.append(Choice(_label(configs[key], list(configs.values())), configs[key],
                          capacity(sweep, p99_target_ms), faults))
    return out


def winner(found: Sequence[Choice], loss_budget: int) -> Choice | None:
    """The highest capacity among the choices shown to meet the budget."""
    eligible = [c for c in found if c.within(loss_budget) and c.capacity.events_per_s is not None]
    return max(eligible, key=lambda c: c.capacity.events_per_s or 0.0, default=None)


def table(found: Sequence[Choice], loss_budget: int, p99_target_ms: float) -> list[dict[str, Any]]:
    """One row per choice: capacity, then lost (worst, median) and unavailable s per fault."""
    kinds = sorted({k for c in found for k in c.faults})
    rows = []
    for choice in found:
        row: dict[str, Any] = {
            "configuration": choice.label,
            f"capacity at p99 <= {p99_target_ms:g} ms": choice.capacity.describe(),
        }
        for kind in kinds:
            f = choice.faults.get(kind)
            row[f"{kind}: acknowledged lost (worst; median)"] = (
                f"{f.worst_lost:,} ({statistics.median(f.lost):,.0f})" if f else "not measured")
            row[f"{kind}: unavailable s (median; worst)"] = (
                f"{statistics.median(f.unavailable_s):.1f} ({max(f.unavailable_s):.1f})"
                if f and f.unavailable_s else ("not measured" if not f else "-"))
        meets = choice.within(loss_budget)
        row[f"meets the budget of {loss_budget:,} lost"] = (
            "no fault runs" if meets is None else "yes" if meets else "no")
        row["evidence (runs)"] = ", ".join(
            [r for _, _, runs in choice.capacity.rates for r in runs][:2]
            + [r for f in choice.faults.values() for r in f.runs][:2]) + (", ..." if choice.faults else "")
        rows.append(row)
    return rows


def answer(found: Sequence[Choice], loss_budget: int, p99_target_ms: float) -> str:
    """The decision in words."""
    if not found:
        return "No runs to decide from."
    best = winner(found, loss_budget)
    budget = "no acknowledged event lost" if loss_budget == 0 else f"at most {loss_budget:,} lost"
    if best is None:
        shown = [c for c in found if c.within(loss_budget)]
        if not any(c.faults for c in found):
            return (f"No configuration can be shown to meet {budget} per fault: these runs hold "
                    "no fault (run the `decision` plan, or a faults plan beside this one).")
        if not shown:
            return f"No configuration measured kept {budget} in every trial of every fault."
        if not any(c.capacity.rates for c in shown):
            return (f"{', '.join(c.label for c in shown)} kept {budget} per fault; no open-loop "
                    "rate sweep says how much it carries (run the `decision` plan).")
        return (f"{', '.join(c.label for c in shown)} kept {budget} per fault, but no rate "
                f"measured held p99 <= {p99_target_ms:g} ms for it.")
    kinds = ", ".join(sorted(best.faults))
    others = [c for c in found if c is not best and c.within(loss_budget)
              and c.capacity.events_per_s is not None]
    runner_up = max(others, key=lambda c: c.capacity.events_per_s or 0.0, default=None)
    text = (f"For {budget} per fault ({kinds}) and p99 <= {p99_target_ms:g} ms: {best.label}, "
            f"which carries {best.capacity.describe()}.")
    if runner_up is not None:
        text += f" Next: {runner_up.label} ({runner_up.capacity.describe()})."
    excluded = [c.label for c in found if c.within(loss_budget) is False]
    if excluded:
        text += f" Lost more than the budget in some trial: {'; '.join(excluded)}."
    return text
