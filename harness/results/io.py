"""Atomic JSON writes and reads of cell results under RUN_DIR/cells/."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from harness.results.schema import SCHEMA_VERSION, STATUSES, CellResult, migrate  # noqa: F401


def cell_result_path(run_dir: Path, cell_id: str) -> Path:
    return Path(run_dir) / "cells" / f"{cell_id}.json"


def write_json_atomic(path: Path, payload: dict) -> None:
    """A JSON file written whole or not at all (results, manifests, requests)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(run_dir: Path, result: CellResult | dict) -> Path:
    """Write one result in the current schema; a dict is checked against CellResult first."""
    if isinstance(result, dict):
        if result.get("status") not in STATUSES:
            raise ValueError(f"result status must be one of {STATUSES}, got {result.get('status')!r}")
        result = CellResult.from_dict(result)
    path = cell_result_path(run_dir, result.cell_id)
    write_json_atomic(path, {"schema_version": SCHEMA_VERSION, **result.to_dict()})
    return path


class ResultFileError(ValueError):
    """A result file that cannot be read as one; the message names the file and the key."""


def read_result(path: Path) -> dict:
    """One result in the current layout (older schema versions migrated), checked against CellResult."""
    try:
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path}: not a JSON result file ({exc})") from None
    if not isinstance(result, dict):
        raise ResultFileError(f"{path}: expected a JSON object, got {type(result).__name__}")
    try:
        return CellResult.from_dict(migrate(result)).to_dict()
    except (TypeError, ValueError) as exc:
        raise ResultFileError(f"{path}: {exc}") from None


def non_finite_paths(value, prefix: str = "") -> list[str]:
    """Dotted paths of NaN or infinite numbers inside a result (JSON cannot hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [prefix]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite_paths(v, f"{prefix}[{i}]")]
    return []


def without_non_finite(value):
    """A copy with NaN and infinities replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: without_non_finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_non_finite(v) for v in value]
    return value


def read_results(run_dir: Path) -> list[dict]:
    """Every cell result of a run, in a stable order."""
    folder = Path(run_dir) / "cells"
    if not folder.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no cells/ inside)")
    results = [read_result(p) for p in sorted(folder.glob("*.json"))]
    return sorted(results, key=lambda r: (r["task"], r["strategy"], r["seed"]))


def phase_seconds(result: dict | None) -> float:
    """A cell's time as its result records it: the sum of its phases' seconds (load, train, eval, ...);
    0 for a result without timing."""
    timing = (result or {}).get("timing") or {}
    return sum(float(v) for k, v in timing.items() if k.endswith("_seconds") and isinstance(v, (int, float)))
