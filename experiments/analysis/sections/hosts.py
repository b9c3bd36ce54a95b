"""Load hosts: where the load of each run came from, when it ran on generator agents
(`load_hosts`), and what each host's clock, share and CPU were."""

from __future__ import annotations

from typing import Any

import pandas as pd

from experiments.analysis._format import fmt_count, fmt_ms, fmt_pct, fmt_rate
from experiments.analysis.blocks import Block, Table, Takeaway
from experiments.analysis.runs import Runs

TITLE = "Load hosts"
INTRO = """
Runs whose load came from generator agents on several hosts (`load_hosts`,
experiments/load/agent.py): one row per run and host. Every host ran its workers of the one
global load from a common start time placed on its own clock by the offset measured just
before (*clock offset*, uncertain by at most *± uncertainty*: the schedule's error at start);
*start margin* is how long before that start the host received it. A host's *sent*, *2xx/s*
and percentiles are its own workers'; the run's figures elsewhere in the report merge every
host that finished. *agent CPU* is the control plane alone (100 = one core), *generator CPU*
the host's load workers, *host CPU* the whole host. A *lost* host stopped answering during
the run: the run kept the others and says when the lost one was last seen.
"""


def render(runs: Runs) -> list[Block]:
    frame = hosts_frame(runs.raw)
    if frame.empty:
        return []
    return [Table(frame), Takeaway(takeaway(runs.raw))]


def hosts_frame(raw: Any) -> pd.DataFrame:
    rows = []
    for name, summary in sorted(raw.items()):
        section = summary.get("load_hosts")
        if not section:
            continue
        for host in section["hosts"]:
            latency = host.get("latency_ms") or {}
            cpu = host.get("cpu_percent") or {}
            fault = host.get("fault")
            rows.append({
                "run": name,
                "host": host["address"],
                "workers": ", ".join(str(w) for w in host["workers"]),
                "state": host["state"] if not fault else f"lost (last seen {fault['last_seen_s']} s)",
                "clock offset": fmt_ms(host.get("clock_offset_ms")),
                "± uncertainty": fmt_ms(host.get("clock_uncertainty_ms")),
                "start margin": fmt_ms(host.get("start_margin_ms")),
                "sent": fmt_count(host.get("sent")),
                "2xx/s": fmt_rate(host.get("throughput_rps")),
                "p50": fmt_ms(latency.get("p50")),
                "p99": fmt_ms(latency.get("p99")),
                "agent CPU": fmt_pct(_fraction(cpu.get("agent"))),
                "generator CPU": fmt_pct(_fraction(cpu.get("generator"))),
                "host CPU": fmt_pct(_fraction(cpu.get("machine"))),
            })
    return pd.DataFrame(rows)


def takeaway(raw: Any) -> str:
    sections = [s["load_hosts"] for s in raw.values() if s.get("load_hosts")]
    bounds = [s["schedule_error_bound_ms"] for s in sections if s.get("schedule_error_bound_ms") is not None]
    skews = [s["clock_skew_ms"] for s in sections if s.get("clock_skew_ms") is not None]
    agent_cpu = [h["cpu_percent"]["agent"] for s in sections for h in s["hosts"]
                 if (h.get("cpu_percent") or {}).get("agent") is not None]
    lost = [f"{entry['address']} in {name}" for name, s in raw.items() if s.get("load_hosts")
            for entry in s["load_hosts"]["lost"]]
    text = (f"{len(sections)} run(s) drove their load from "
            f"{max(len(s['hosts']) for s in sections)} host(s) at most. The common start was placed "
            f"on every host to within {fmt_ms(max(bounds)) if bounds else 'an unknown bound'} "
            f"(the largest clock uncertainty); the clocks measured apart by up to "
            f"{fmt_ms(max(skews)) if skews else 'unknown'}.")
    if agent_cpu:
        text += f" The agents themselves used at most {max(agent_cpu):.1f}% of a core during a window."
    text += f" Lost hosts: {', '.join(lost)}." if lost else " No host was lost."
    return text


def _fraction(percent: Any) -> float | None:
    return None if percent is None else float(percent) / 100.0
