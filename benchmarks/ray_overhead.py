"""What the Ray executor costs over the local one: the smoke suite run by each, one cell at a time.

The local executor runs the matrix first, then the Ray executor on a local instance with one worker slot
(num_cpus = cpus_per_cell = every CPU, so cells run one by one with as many threads as locally); Ray's
start-up and shutdown are inside its wall time. Prints both wall times and the ratio. The issue's target
is a ratio within 1.15. Run on a quiet machine:

    .venv/bin/python benchmarks/ray_overhead.py [SUITE] [KEEP_DIR]

With KEEP_DIR the two run folders are kept there (KEEP_DIR/local, KEEP_DIR/ray) for a closer look: each
Ray cell's result records its worker process and its spawn-to-first-step.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from pathlib import Path

from harness.config import load_matrix
from harness.run.executor import run_matrix
from harness.run.ray_executor import RayExecutor

ROOT = Path(__file__).resolve().parents[1]


def main(suite: str = str(ROOT / "tasks/suites/smoke.toml"), keep: str | None = None) -> None:
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    matrix = load_matrix([suite])
    cpus = os.cpu_count() or 1
    walls = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = keep or scratch
        for name, executor in (("local", None), ("ray", RayExecutor(num_cpus=cpus, cpus_per_cell=cpus))):
            start = time.perf_counter()
            outcomes = run_matrix(matrix, Path(folder) / name, io.StringIO(), executor=executor)
            walls[name] = time.perf_counter() - start
            ok = sum(o.status == "ok" for o in outcomes)
            print(f"{name:>5}: {walls[name]:7.1f} s wall for {len(outcomes)} cells ({ok} ok)", flush=True)
    print(f"ratio ray / local: {walls['ray'] / walls['local']:.3f} (target: within 1.15)")


if __name__ == "__main__":
    main(*sys.argv[1:])
