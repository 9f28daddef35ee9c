"""Report sections read straight from the raw results: examples, confusion matrices, failures, provenance."""

from __future__ import annotations

from collections import defaultdict

from harness.report.format import strategy_sort_key

MAX_EXAMPLES = 5


def _first_ok(results: list[dict], task: str) -> dict[str, dict]:
    """Per strategy, its ok result with the lowest seed."""
    chosen: dict[str, dict] = {}
    for result in sorted(results, key=lambda r: r["seed"]):
        if result["task"] == task and result["status"] == "ok":
            chosen.setdefault(result["strategy"], result)
    return dict(sorted(chosen.items(), key=lambda kv: strategy_sort_key(kv[0])))


def examples(results: list[dict], task: str) -> dict | None:
    """Inputs with the reference and each strategy's prediction side by side (lowest seed), or None."""
    with_examples = {
        s: r["details"]["examples"]
        for s, r in _first_ok(results, task).items()
        if isinstance(r["details"].get("examples"), list) and r["details"]["examples"]
    }
    if not with_examples:
        return None
    first = next(iter(with_examples.values()))
    rows = []
    for index, example in enumerate(first[:MAX_EXAMPLES]):
        predictions = []
        for items in with_examples.values():
            item = items[index] if index < len(items) else {}
            predictions.append(str(item.get("prediction", "")) if isinstance(item, dict) else "")
        rows.append(
            {
                "input": str(example.get("input", "")),
                "reference": str(example.get("reference", "")),
                "predictions": predictions,
            }
        )
    return {"strategies": list(with_examples), "rows": rows}


def confusion_matrices(results: list[dict], task: str) -> list[dict]:
    """Per strategy (lowest ok seed) its confusion matrix, rows = reference, columns = prediction."""
    matrices = []
    for strategy, result in _first_ok(results, task).items():
        matrix = result["details"].get("confusion_matrix")
        if not isinstance(matrix, dict) or not matrix.get("labels") or not matrix.get("counts"):
            continue
        labels, counts = [str(label) for label in matrix["labels"]], matrix["counts"]
        rows = []
        for i, (label, line) in enumerate(zip(labels, counts)):
            total = sum(line) or 1
            rows.append(
                {
                    "label": label,
                    "cells": [{"count": c, "share": c / total, "diagonal": i == j} for j, c in enumerate(line)],
                }
            )
        matrices.append({"strategy": strategy, "seed": result["seed"], "labels": labels, "rows": rows})
    return matrices


def failed_cells(results: list[dict]) -> list[dict]:
    """Every cell whose status is not ok, with its error."""
    failed = []
    for result in results:
        if result["status"] == "ok":
            continue
        error = result.get("error") or {}
        failed.append(
            {
                "task": result["task"],
                "strategy": result["strategy"],
                "seed": result["seed"],
                "status": result["status"],
                "cell_id": result["cell_id"],
                "error": f"{error.get('type', 'error')}: {error.get('message', '')}",
                "traceback": "\n".join(error.get("traceback_tail") or []),
            }
        )
    return sorted(failed, key=lambda f: (f["task"], strategy_sort_key(f["strategy"]), f["seed"]))


def provenance(results: list[dict]) -> dict:
    """Versions, devices and commits across the run (every distinct value), and each cell's config hash."""
    values: dict[str, set] = defaultdict(set)
    packages: dict[str, set] = defaultdict(set)
    for result in results:
        info = result.get("provenance") or {}
        for name, version in (info.get("packages") or {}).items():
            packages[name].add(str(version))
        if info:
            values["device"].add(f"{info.get('device')} ({info.get('device_name')})")
            values["python"].add(str(info.get("python")))
            values["platform"].add(str(info.get("platform")))
            values["CPU count"].add(str(info.get("cpu_count")))
            dirty = " (uncommitted changes)" if info.get("git_dirty") else ""
            values["git commit"].add(f"{info.get('git_commit')}{dirty}")
        values["profile"].add(str(result.get("profile")))
    cells = [
        {
            "task": r["task"],
            "strategy": r["strategy"],
            "seed": r["seed"],
            "status": r["status"],
            "config_hash": r["cell_id"],
            "data_hash": (r.get("config") or {}).get("data_sha256", ""),
        }
        for r in sorted(results, key=lambda r: (r["task"], strategy_sort_key(r["strategy"]), r["seed"]))
    ]
    return {
        "environment": [(name, ", ".join(sorted(v))) for name, v in values.items()],
        "packages": [(name, ", ".join(sorted(v))) for name, v in sorted(packages.items())],
        "cells": cells,
    }


def data_card(results: list[dict], task: str) -> list[str]:
    """The task's data card (harness.data.checks) as lines, from the first of its results that records one;
    empty when none does (results written before the data check, or hub data)."""
    from harness.data.checks import card_lines

    for result in results:
        card = (result.get("data") or {}).get("card")
        if result["task"] == task and card:
            return card_lines(card)
    return []
