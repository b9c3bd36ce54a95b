"""Analysis of a plan's results: load its run directories, then one report section per
question.

Reads result files only (experiments/RESULTS.md), so a report can be redrawn without a
rerun. notebooks/analyze.ipynb is a parameters cell, a header cell and one line per section:

- `load_runs(plan_dir, options) -> Runs` (runs.py): every run directory of a plan as tables,
  with the labels of configs.py and what the reader asked (`Options`: a baseline directory,
  the Decision section's loss budget and p99 target); the one object every section receives;
- `sections/` (interface: blocks.py): one module per question (throughput, latency,
  saturation, settings, comparisons, cpu, audit, faults, decision, summary), each with its
  TITLE, INTRO and
  `render(runs)` owning its aggregation, tables, figures and takeaway sentences;
- `report` (report.py): `show_header(runs, title)` (header.py) and `show_section(module, runs)`;
- shared by several sections: aggregate.py (a configuration's medians and spread, overload
  marks, merged histograms), sweep.py (an open-loop rate sweep), capacity.py (capacity at an
  SLO, and a capacity search's path), confidence.py (a figure's interval, a comparison's
  ratio and verdict), _style.py (the figures' look), _format.py (numbers).

Naming: a *configuration* is the set of varying parameters a run was executed with; its
runs are trials of one experiment. Every table names it in a column called `configuration`
(the label `durable, linger.ms=20`), the printed tables included; in the tables of a rate
sweep and of a capacity (sweep.py, capacity.py) the configuration leaves out the offered
rate, which is a column of its own there (`offered_rps`). `Runs.configs` lists them in
report order.

Throughput everywhere is what completed inside the measured window (RESULTS.md); an
overloaded open-loop run is marked in every table and legend and never called steady.
"""

from experiments.analysis import report, sections
from experiments.analysis.runs import Options, Runs, load_runs

__all__ = ["Options", "Runs", "load_runs", "report", "sections"]
