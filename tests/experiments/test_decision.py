"""The decision: capacity at a p99 target, loss and unavailability per fault, the winner."""

from __future__ import annotations

from typing import Any

from experiments import decision

DURABLE = {"mode": "durable", "endpoint": "seed", "producer_config": {}}
FIRE = {"mode": "fire-and-forget", "endpoint": "seed", "producer_config": {}}


def sweep(choice: dict[str, Any], p99_by_rate: dict[float, tuple[float, ...]]) -> list[tuple[str, dict]]:
    runs = []
    for rate, trials in p99_by_rate.items():
        for t, p99 in enumerate(trials, 1):
            runs.append((f"{choice['mode']}-r{rate:g}-t{t}", {
                "params": {**choice, "load_model": "open", "rate": rate, "trial": t, "fault": "none"},
                "results": {"overloaded": p99 > 1000, "latency_ms": {"p99": p99}}}))
    return runs


def faulted(choice: dict[str, Any], kind: str, lost: tuple[int, ...],
            unavailable: tuple[float, ...]) -> list[tuple[str, dict]]:
    return [(f"{choice['mode']}-{kind}-t{t}", {
        "params": {**choice, "load_model": "closed", "connections": 50, "fault": kind, "trial": t},
        "audit": {"lost": n}, "availability": {"unavailable_s": u}})
        for t, (n, u) in enumerate(zip(lost, unavailable, strict=True), 1)]


RUNS = [
    *sweep(DURABLE, {1000: (10, 11, 10.5), 2000: (20, 22, 21), 4000: (45, 90, 60),
                     6000: (2000, 2000, 2000)}),
    *sweep(FIRE, {1000: (5, 5.5, 5.2), 2000: (8, 8.5, 8.2), 4000: (20, 21, 20.5), 6000: (30, 32, 31)}),
    *faulted(DURABLE, "service-kill", (0, 0, 0), (6.1, 6.4, 6.2)),
    *faulted(DURABLE, "broker-kill", (0, 0, 0), (11.1, 14.2, 13.0)),
    *faulted(FIRE, "service-kill", (10, 89, 50), (5.6, 5.9, 5.8)),
    *faulted(FIRE, "broker-kill", (0, 0, 0), (0.01, 0.02, 0.01)),
]


def test_each_choice_gathers_its_sweep_and_its_faults() -> None:
    found = {c.label: c for c in decision.choices(RUNS, 50)}
    assert set(found) == {"durable", "fire-and-forget"}
    durable = found["durable"]
    # 4,000/s straddles 50 ms (45, 90 and 60 ms): undecided, so not held.
    assert durable.capacity.events_per_s == 2000 and not durable.capacity.all_held
    assert [v for _, v, _ in durable.capacity.rates] == ["holds", "holds", "undecided", "fails"]
    assert found["fire-and-forget"].capacity.events_per_s == 6000
    assert found["fire-and-forget"].capacity.all_held
    assert found["fire-and-forget"].faults["service-kill"].worst_lost == 89


def test_the_winner_is_the_fastest_choice_that_kept_the_budget_in_every_trial() -> None:
    found = decision.choices(RUNS, 50)
    assert decision.winner(found, 0).label == "durable"
    assert decision.winner(found, 100).label == "fire-and-forget"
    assert decision.winner(found, 88).label == "durable"  # the worst trial decides
    text = decision.answer(found, 0, 50)
    assert text.startswith("For no acknowledged event lost per fault (broker-kill, service-kill)")
    assert "durable, which carries 2,000 events/s" in text and "fire-and-forget" in text


def test_two_trials_seldom_show_a_rate_holds() -> None:
    """With two trials the one-sided bound of p99 lies t(1) = 6.31 standard errors above
    the mean: 10 and 11 ms show p99 <= 15 ms (bound 14.2) but not <= 14; the plan runs three."""
    two = [r for r in RUNS if r[1]["params"]["trial"] < 3]
    assert {c.label: c for c in decision.choices(two, 15)}["durable"].capacity.events_per_s == 1000
    found = {c.label: c for c in decision.choices(two, 14)}
    assert found["durable"].capacity.events_per_s is None


def test_a_tighter_target_changes_the_capacity_not_the_losses() -> None:
    found = {c.label: c for c in decision.choices(RUNS, 15)}
    assert found["durable"].capacity.events_per_s == 1000
    assert found["fire-and-forget"].capacity.events_per_s == 2000
    rows = decision.table(list(found.values()), 0, 15)
    assert rows[0]["capacity at p99 <= 15 ms"] == "1,000 events/s"
    assert rows[1]["service-kill: acknowledged lost (worst; median)"] == "89 (50)"
    assert rows[1]["meets the budget of 0 lost"] == "no"


def test_without_fault_runs_no_choice_can_be_shown_to_meet_a_budget() -> None:
    found = decision.choices([r for r in RUNS if r[1]["params"]["fault"] == "none"], 50)
    assert decision.winner(found, 0) is None
    assert "these runs hold no fault" in decision.answer(found, 0, 50)
    assert decision.table(found, 0, 50)[0]["meets the budget of 0 lost"] == "no fault runs"
