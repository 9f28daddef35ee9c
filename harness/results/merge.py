"""`tunebench merge OUT RUN_DIR...`: one run folder from several (e.g. the shards of one matrix).

A cell id found in several folders must have the same result there; folders of different configs
(their manifests' matrix digests differ) are refused unless forced. Forced, cells of one (task,
strategy) whose configs differ beyond the seed are never pooled: the tables keep them apart as rows
named after the setting that differs (`harness.results.variants`), and the merge says which.
Nothing is written before every check has passed, and each file is copied atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.results.io import cell_result_path, read_result, write_json_atomic
from harness.results.variants import kept_apart
from harness.run.shard import MANIFEST, read_manifest


class MergeError(ValueError):
    """Why the folders cannot be merged; one line per conflict."""


def _differing_keys(a: dict, b: dict) -> list[str]:
    return sorted(
        k for k in set(a) | set(b) if json.dumps(a.get(k), sort_keys=True) != json.dumps(b.get(k), sort_keys=True)
    )


def merge_runs(out: Path, sources: list[Path], force: bool = False) -> dict:
    """Merge `sources` into `out` (created if missing; cells already in it take part in the checks).
    Returns {"cells": n, "sources": [...], "shards": [...], "kept_apart": [line, ...]}; raises MergeError
    on conflicts."""
    out = Path(out)
    folders = [out, *sources] if (out / "cells").is_dir() else list(sources)
    manifests = {str(folder): read_manifest(folder) for folder in folders}
    digests = {name: m.get("matrix_digest") for name, m in manifests.items() if m}
    problems = []
    if len(set(digests.values())) > 1 and not force:
        listed = ", ".join(f"{name} ({digest})" for name, digest in digests.items())
        problems.append(f"the folders ran different configs (matrix digests: {listed}); --force merges them anyway")
    chosen: dict[str, tuple[Path, dict]] = {}
    for folder in folders:
        cells = folder / "cells"
        if not cells.is_dir():
            raise FileNotFoundError(f"{folder}: not a run folder (no cells/ inside)")
        for path in sorted(cells.glob("*.json")):
            result = read_result(path)
            seen = chosen.get(result["cell_id"])
            if seen is None:
                chosen[result["cell_id"]] = (folder, result)
            elif keys := _differing_keys(seen[1], result):
                problems.append(
                    f"cell {result['cell_id']} ({result['task']}/{result['strategy']}/seed{result['seed']}) differs "
                    f"between {seen[0]} and {folder} in: {', '.join(keys)}"
                )
    if problems:
        raise MergeError("\n".join(problems))
    for cell_id, (folder, _) in sorted(chosen.items()):
        if folder == out:
            continue
        _copy_tree(folder / "cells" / cell_id, out / "cells" / cell_id)
        _copy_file(cell_result_path(folder, cell_id), cell_result_path(out, cell_id))
    shards = sorted({s for m in manifests.values() if m for s in m.get("shards", [])})
    first = next((m for m in manifests.values() if m), None) or {}
    write_json_atomic(
        out / MANIFEST,
        {**first, "shards": shards, "merged_from": [str(s) for s in sources]},
    )
    return {
        "cells": len(chosen),
        "sources": [str(s) for s in sources],
        "shards": shards,
        "kept_apart": kept_apart([result for _, result in chosen.values()]),
    }


def _copy_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_tree(source: Path, target: Path) -> None:
    """A cell's folder (per-item results, weights, log), file by file, each atomically."""
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        if path.is_file():
            _copy_file(path, target / path.relative_to(source))
