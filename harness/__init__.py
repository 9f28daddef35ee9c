"""tunebench: a declarative benchmark harness for fine-tuning strategies."""
from harness.results.table import load_results

__all__ = ["load_results"]
