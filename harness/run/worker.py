"""Entry point of the per-cell process: `python -m harness.run.worker RUN_DIR CELL_JSON`.

The cell is re-resolved from its task file and checked against the parent's
cell id, so parent and child run exactly the same config.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    run_dir, request = Path(argv[0]), json.loads(argv[1])
    from harness.config import load_plugins, load_task_cells
    from harness.results.io import non_finite_paths, without_non_finite, write_result
    from harness.run.cell import error_result, run_cell

    load_plugins(request["plugins"])
    problems: list = []
    cells = load_task_cells(
        Path(request["task_path"]),
        (request["strategy"],),
        (request["seed"],),
        request["profile"],
        problems,
        request.get("overrides"),
    )
    matching = [c for c in cells if c.cell_id == request["cell_id"]]
    if problems or not matching:
        print(
            f"cell {request['cell_id']} no longer resolves to the same config: " + "; ".join(map(str, problems)),
            file=sys.stderr,
        )
        return 3
    cell = dataclasses.replace(matching[0], selection=request.get("selection"))
    cell_dir = run_dir / "cells" / cell.cell_id
    try:
        result = run_cell(cell, cell_dir)
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
