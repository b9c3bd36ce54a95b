"""Analysis of a plan's results: load run directories, aggregate trials, draw, conclude.

Reads result files only (experiments/RESULTS.md), so a report can be redrawn without a
rerun. The analysis notebook (notebooks/analyze.ipynb) is a thin sequence of calls into:

- `load_runs(plan_dir) -> Runs`: every run directory of a plan as tables;
- `aggregate`: configurations, medians and spread, merged histograms, percentile spectrum;
- `plots`: one Figure per question; `takeaways`: one computed sentence per figure;
- `report`: header facts, summary / spectrum / audit / failed-cell tables.
"""

from experiments.analysis import aggregate, plots, report, takeaways
from experiments.analysis.load import Runs, decode_histogram, load_runs

__all__ = ["Runs", "aggregate", "decode_histogram", "load_runs", "plots", "report", "takeaways"]
