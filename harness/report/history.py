"""`tunebench history`: how each (task, strategy) moved over runs, one self-contained page.

Per (task, strategy): the primary metric, peak memory and training tokens/s over the runs in time
order (labelled by commit), each with a band of ±1 std over seeds, and the regressions the gate
(harness.results.gate, default thresholds) finds between each run and the one before it, marked.
Rendered from result files only: run folders, or an MLflow store's runs exported as run folders.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from harness.report.format import number
from harness.report.svg import RunPoint, history_chart
from harness.results.gate import COST_FIGURES, GateSpec, compare, load_side
from harness.results.io import read_results, write_text_atomic
from harness.results.table import flatten

FIGURES = ("primary_value", "peak_memory_bytes", "train_tokens_per_s")


@dataclass
class HistoryRun:
    """One run on the page: its folder, when its last cell finished, its label (commit) and branch."""

    dir: Path
    when: str
    label: str
    branch: str | None
    results: list[dict]


def _run_label(results: list[dict], folder: Path) -> tuple[str, str, str | None]:
    """(when the run's last cell finished, its label: the commit, else the folder name, its branch)."""
    when = max((r.get("finished_at") or "" for r in results), default="")
    commits = {str(c) for r in results if (c := (r.get("provenance") or {}).get("git_commit"))}
    branches = {str(b) for r in results if (b := (r.get("provenance") or {}).get("git_branch"))}
    label = next(iter(commits))[:8] if len(commits) == 1 else folder.name
    return when, label, next(iter(branches)) if len(branches) == 1 else None


def history_context(run_dirs: list[Path], branch: str | None = None, last: int | None = None) -> dict:
    """What the page shows, from the result files of `run_dirs` (trials left out), oldest run first."""
    runs: list[HistoryRun] = []
    for folder in run_dirs:
        results = [r for r in read_results(folder) if (r.get("search") or {}).get("role") != "trial"]
        when, label, run_branch = _run_label(results, folder)
        if results and (branch is None or run_branch in (branch, None)):
            runs.append(HistoryRun(folder, when, label, run_branch, results))
    runs.sort(key=lambda run: run.when)
    runs = runs[-last:] if last else runs
    flagged: dict[tuple[int, str, str, str], str] = {}
    gate = GateSpec()
    for index in range(1, len(runs)):
        checks = compare(load_side([runs[index - 1].dir]), load_side([runs[index].dir]), gate)
        for check in checks:
            if check.verdict == "REGRESSION":
                flagged[(index, check.task, check.strategy, check.figure)] = check.reason
    labels = [run.label for run in runs]
    flat = {id(r): flatten(r) for run in runs for r in run.results}  # once each; cell ids repeat across runs
    pairs = sorted({(r["task"], r["strategy"]) for run in runs for r in run.results})
    groups = []
    for task, strategy in pairs:
        charts = []
        for column in FIGURES:
            points: list[RunPoint] = []
            metric: str | None = None
            for index, run in enumerate(runs):
                cells = [r for r in run.results if (r["task"], r["strategy"]) == (task, strategy)]
                rows = [flat[id(r)] for r in cells if r["status"] == "ok"]
                values = [v for v in (_value(row, column) for row in rows) if v is not None]
                metric = metric or next((r.get("primary_metric") for r in cells), None)
                label = str(metric) if column == "primary_value" else COST_FIGURES[column][0]
                reason = flagged.get((index, task, strategy, label))
                if column == "primary_value" and reason is None:  # a lost cell or status is the primary's too
                    reason = flagged.get((index, task, strategy, "cells")) or flagged.get(
                        (index, task, strategy, "status")
                    )
                if values:
                    std = statistics.stdev(values) if len(values) > 1 else None
                    points.append(RunPoint(index, statistics.fmean(values), std, len(values), reason))
            if not points:
                continue
            if column == "peak_memory_bytes":
                y_format, unit = _byte_format(max(p.mean for p in points))
                title = "peak memory"
            elif column == "train_tokens_per_s":
                y_format, title, unit = (lambda v: f"{v:,.0f}"), "training tokens/s", "tokens/s"
            else:
                y_format, title, unit = number, f"primary metric: {metric}", str(metric)
            charts.append(
                {
                    "figure": column,
                    "regressions": sum(p.regression is not None for p in points),
                    "svg": history_chart(
                        points, labels, title=f"{task}/{strategy}: {title}", y_label=unit, y_format=y_format
                    ),
                }
            )
        groups.append({"task": task, "strategy": strategy, "charts": charts})
    return {
        "title": "tunebench history",
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "branch": branch,
        "runs": [{"dir": str(r.dir), "when": r.when, "label": r.label, "branch": r.branch} for r in runs],
        "groups": groups,
        "regressions": len(flagged),
    }


def _byte_format(largest: float):
    """Labels in the binary unit of `largest`, with enough decimals to tell ticks 1% apart."""
    unit, name = next(((f, n) for f, n in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")) if largest >= f), (1, "B"))
    return (lambda v: f"{v / unit:,.3f}" if unit > 1 else f"{v:,.0f}"), name


def _value(row: dict, column: str) -> float | None:
    value = row.get(column)
    return float(value) if isinstance(value, (int, float)) and value == value else None


def write_history(run_dirs: list[Path], out: Path, branch: str | None = None, last: int | None = None) -> dict:
    """Render the page into `out`; returns its context (runs, regressions)."""
    from harness.report.html import _environment

    context = history_context(run_dirs, branch, last)
    write_text_atomic(out, _environment().get_template("history.html.j2").render(**context))
    return context
