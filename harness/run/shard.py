"""Shards: a deterministic partition of a matrix's cells, so N CI jobs run disjoint parts of one run,
and the run manifest (RUN_DIR/run.json) that lets `merge` and `compare` tell configs apart.

The partition depends only on the cells (their ids) and, optionally, the cost of each (task, strategy)
measured in an earlier run: units are assigned longest first to the least-loaded shard (ties to the
lowest shard), so the same config gives the same shards on any machine. A cell that searches its
learning rate is never split from its (task, strategy): trials and final cells share one shard.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import statistics
from pathlib import Path

from harness.results.io import phase_seconds, read_results, write_json_atomic
from harness.specs import CellSpec, Matrix

MANIFEST = "run.json"


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 1 <= I <= N; ValueError in one line otherwise."""
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ValueError(f"--shard: expected I/N such as 2/3, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard: expected 1 <= I <= N, got {text!r}")
    return i, n


def _unit(cell: CellSpec) -> str:
    return f"{cell.task.name}/{cell.strategy}" if cell.search else cell.cell_id


def cell_seconds(run_dir: Path) -> dict[tuple[str, str], float]:
    """Mean wall seconds (load + train + eval phases) per (task, strategy) of the ok cells of an earlier run."""
    seconds: dict[tuple[str, str], list[float]] = {}
    for result in read_results(run_dir):
        total = phase_seconds(result)
        if result["status"] == "ok" and total > 0:
            seconds.setdefault((result["task"], result["strategy"]), []).append(total)
    return {key: statistics.fmean(values) for key, values in seconds.items()}


def shard(matrix: Matrix, index: int, count: int, costs: dict[tuple[str, str], float] | None = None) -> Matrix:
    """The cells of shard `index` of `count` (1-based), in matrix order."""
    costs = costs or {}
    fallback = statistics.fmean(costs.values()) if costs else 1.0  # unknown cells cost the mean known one
    units: dict[str, float] = {}
    for cell in matrix.cells:
        units[_unit(cell)] = units.get(_unit(cell), 0.0) + costs.get((cell.task.name, cell.strategy), fallback)
    loads = [0.0] * count
    owner: dict[str, int] = {}
    for unit, cost in sorted(units.items(), key=lambda item: (-item[1], item[0])):
        target = min(range(count), key=lambda k: (loads[k], k))
        owner[unit] = target
        loads[target] += cost
    cells = tuple(cell for cell in matrix.cells if owner[_unit(cell)] == index - 1)
    return dataclasses.replace(matrix, cells=cells)


def matrix_digest(matrix: Matrix) -> str:
    """One digest of the whole (unsharded) matrix: equal digests mean the same cells and configs."""
    blob = json.dumps(sorted(cell.cell_id for cell in matrix.cells))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_manifest(run_dir: Path, matrix: Matrix, paths: list[str], shard_text: str | None) -> None:
    """RUN_DIR/run.json: which config (digest of the full matrix) and which shard this folder holds."""
    write_json_atomic(
        Path(run_dir) / MANIFEST,
        {
            "matrix_digest": matrix_digest(matrix),
            "matrix_cells": len(matrix.cells),
            "paths": [str(p) for p in paths],
            "shards": [shard_text] if shard_text else [],
        },
    )


def read_manifest(run_dir: Path) -> dict | None:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a run manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a run manifest (expected a JSON object)")
    return manifest
