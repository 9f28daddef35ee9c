"""Per-item results of a cell: one line per evaluation item, gzip-compressed, next to the cell's weights.

Each line is {"id", "prediction", "reference"} plus the item's figure for paired tests:
"correct" (true/false) when the primary metric is a share of correct items (classification,
exact match), or "score" (a number) when it is a mean of per-item scores. The result records
{"file", "n", "measure", "metric", "higher_is_better", "sha256"}; `measure` is "correct",
"score" or None (the metric does not split into items, e.g. distinct-n: no paired test).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path

from harness.metrics import CORRECT, SCORE  # noqa: F401  (the measures, named where they are defined)

ITEMS_FILE = "items.jsonl.gz"


def write_items(folder: Path, items: list[dict], measure: str | None, metric: str, higher_is_better: bool) -> dict:
    """Write `items` atomically to folder/items.jsonl.gz; the record a result keeps under "items"."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(item, sort_keys=True, allow_nan=False, default=str) + "\n" for item in items)
    data = gzip.compress(payload.encode("utf-8"), mtime=0)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{ITEMS_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, folder / ITEMS_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {
        "file": ITEMS_FILE,
        "n": len(items),
        "measure": measure,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def read_items(path: str | Path) -> list[dict]:
    """The per-item lines of one cell; a file that is not gzip JSON lines is a one-line ValueError."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a per-item results file ({exc})") from None
