"""Analysis of a plan's results: load run directories, aggregate trials, draw, conclude.

Reads result files only (experiments/RESULTS.md), so a report can be redrawn without a
rerun. The analysis notebook (notebooks/analyze.ipynb) is a thin sequence of calls into:

- `load_runs(plan_dir) -> Runs`: every run directory of a plan (schema lab.run/2) as tables;
- `aggregate`: configurations, medians and spread, merged histograms, percentile spectrum,
  open-loop saturation against the offered rate, capacity at an SLO, search path, faults;
- `plots`: one Figure per question; `takeaways`: one computed sentence per figure;
- `report`: header facts, summary / spectrum / capacity / CPU / audit / fault tables.

Throughput everywhere is what completed inside the measured window (RESULTS.md); an
overloaded open-loop run is marked in every table and legend and never called steady.
"""

from experiments.analysis import aggregate, plots, report, takeaways
from experiments.analysis.runs import Runs, load_runs

__all__ = ["Runs", "aggregate", "load_runs", "plots", "report", "takeaways"]
