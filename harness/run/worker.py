"""Entry point of the per-cell process: `python -m harness.run.worker RUN_DIR REQUEST_FILE`.

The request holds the cell's fully resolved config, so the worker never re-reads the task file (a
cluster node may not have it); the cell is rebuilt from it and its id, recomputed here from the config
and this machine's copy of the data, must equal the parent's: parent and child run the same cell.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0])
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    from harness.config import cell_from_resolved, load_plugins
    from harness.results.io import non_finite_paths, without_non_finite, write_result
    from harness.run.cell import error_result, run_cell

    load_plugins(request["plugins"])
    problems: list = []
    cell = cell_from_resolved(request["resolved"], Path(request["task_path"]), problems, request.get("selection"))
    if problems or cell is None or cell.cell_id != request["cell_id"]:
        found = f"; here it is {cell.cell_id} (different data?)" if cell is not None else ""
        print(
            f"cell {request['cell_id']} does not resolve to the same config here{found} "
            + "; ".join(map(str, problems)),
            file=sys.stderr,
        )
        return 3
    cell_dir = run_dir / "cells" / cell.cell_id
    try:
        result = run_cell(cell, cell_dir, request.get("price_per_device_hour"))
    except Exception as exc:  # recorded in the result; the parent carries on with other cells
        write_result(run_dir, error_result(cell, exc))
        raise
    if bad := non_finite_paths(result):  # e.g. a diverged run: keep every figure, fail the cell clearly
        result = {
            **without_non_finite(result),
            "status": "failed",
            "error": {
                "type": "NonFiniteResult",
                "message": f"non-finite values (NaN or inf) at: {', '.join(bad)}",
                "traceback_tail": [],
            },
        }
    write_result(run_dir, result)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
