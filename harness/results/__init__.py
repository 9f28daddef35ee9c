"""Cell result files: one JSON per cell, written atomically, loaded into pandas."""

from harness.results.aggregate import aggregate  # noqa: F401
from harness.results.io import cell_result_path, read_result, read_results, write_result  # noqa: F401
from harness.results.table import COLUMNS, load_aggregates, load_results  # noqa: F401
