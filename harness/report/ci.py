"""Exports for CI benchmark tools, from a run's result files.

- pytest-benchmark: one benchmark per (task, strategy), group = task. Its timing statistics are the
  cell's training + evaluation seconds over seeds (one round per seed), so `pytest-benchmark compare`
  ranks and diffs them; the primary metric, peak memory and throughput ride along in `extra_info`.
- github-action-benchmark: `customBiggerIsBetter` (higher-is-better metrics, tokens/s) and
  `customSmallerIsBetter` (lower-is-better metrics, peak memory, seconds): arrays of
  {name, unit, value, range, extra}, the tool's documented custom-tool format.
"""

from __future__ import annotations

import datetime
import platform
import statistics
from pathlib import Path

from harness.metrics import higher_is_better
from harness.report.format import strategy_sort_key
from harness.results.io import read_results
from harness.values import missing

PYTEST_BENCHMARK_VERSION = "5.1.0"  # the saved-file layout written here


def _stats(data: list[float]) -> dict:
    ordered = sorted(data)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    q1, median, q3 = quartiles[0], statistics.median(ordered), quartiles[2]
    mean = statistics.fmean(ordered)
    iqr = q3 - q1
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stddev": statistics.stdev(ordered) if len(ordered) > 1 else 0.0,
        "rounds": len(ordered),
        "median": median,
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": sum(v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr for v in ordered),
        "stddev_outliers": 0,
        "outliers": "0;0",
        "ld15iqr": ordered[0],
        "hd15iqr": ordered[-1],
        "ops": 1 / mean if mean else 0.0,
        "total": sum(ordered),
        "data": ordered,
        "iterations": 1,
    }


def pytest_benchmark(run_dir: Path, cells) -> dict:
    """pytest-benchmark's saved-run JSON: one benchmark per (task, strategy) with ok cells."""
    results = read_results(run_dir)
    provenance = next((r.get("provenance") for r in results if r.get("provenance")), None) or {}
    benchmarks = []
    ok = cells[(cells["status"] == "ok") & (cells["search_role"] != "trial")]
    groups = sorted(ok.groupby(["task", "strategy"]), key=lambda item: (item[0][0], strategy_sort_key(item[0][1])))
    for (task, strategy), group in groups:
        seconds = [
            float(t or 0) + float(e or 0)
            for t, e in zip(group["train_seconds"].fillna(0), group["eval_seconds"].fillna(0))
        ]
        if not any(seconds):
            continue
        first = group.iloc[0]
        benchmarks.append(
            {
                "group": task,
                "name": f"{task}/{strategy}",
                "fullname": f"tunebench::{task}/{strategy}",
                "params": None,
                "param": None,
                "extra_info": {
                    "primary_metric": first["primary_metric"],
                    "primary_value": float(group["primary_value"].mean()),
                    "peak_memory_bytes": _mean(group["peak_memory_bytes"]),
                    "train_tokens_per_s": _mean(group["train_tokens_per_s"]),
                    "seeds": sorted(int(s) for s in group["seed"]),
                    "timed": "training + evaluation seconds per cell, one round per seed",
                },
                "options": {
                    "disable_gc": False,
                    "timer": "perf_counter",
                    "min_rounds": 1,
                    "max_time": 0.0,
                    "min_time": 0.0,
                    "warmup": False,
                },
                "stats": _stats(seconds),
            }
        )
    return {
        "machine_info": {
            "node": platform.node(),
            "processor": provenance.get("device_name") or platform.processor(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "python_version": provenance.get("python") or platform.python_version(),
            "system": platform.system(),
            "release": platform.release(),
            "cpu": {"count": provenance.get("cpu_count")},
        },
        "commit_info": {
            "id": provenance.get("git_commit"),
            "dirty": provenance.get("git_dirty"),
            "project": "tunebench",
        },
        "benchmarks": benchmarks,
        "datetime": datetime.datetime.now(datetime.UTC).isoformat(),
        "version": PYTEST_BENCHMARK_VERSION,
    }


def _mean(series) -> float | None:
    values = [float(v) for v in series if not missing(v)]
    return statistics.fmean(values) if values else None


def github_action_benchmark(aggregates, bigger: bool) -> list[dict]:
    """The figures whose better direction is `bigger` (or smaller), one entry per (task, strategy)."""
    entries = []
    for _, row in aggregates.iterrows():
        if int(row["n"]) == 0:
            continue
        name = f"{row['task']}/{row['strategy']}"
        seeds = f"{int(row['n'])} seed(s)"
        figures = [
            (row["primary_metric"], "primary_value", higher_is_better(row["primary_metric"]), row["primary_metric"])
        ]
        figures += [
            ("peak memory", "peak_memory_bytes", False, "bytes"),
            ("train tokens/s", "train_tokens_per_s", True, "tokens/s"),
            ("train time", "train_seconds", False, "s"),
        ]
        for label, column, higher, unit in figures:
            value = row.get(f"{column}_mean")
            if higher != bigger or missing(value):
                continue
            spread = row.get(f"{column}_ci95")
            entry = {"name": f"{name} {label}", "unit": unit, "value": float(value), "extra": seeds}
            if not missing(spread):
                entry["range"] = f"± {float(spread):.4g}"
            entries.append(entry)
    return entries
