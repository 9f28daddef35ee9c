"""tunebench: a declarative benchmark harness for fine-tuning strategies.

`load_results(run_dir)`: one row per cell. `load_aggregates(run_dir)` (the same as
`load_results(run_dir, aggregate=True)`): one row per (task, strategy) with mean, std,
95% CI and n over seeds, and which strategy is best per task and which tie with it.
"""

from harness.results.table import load_aggregates, load_results

__all__ = ["load_aggregates", "load_results"]
