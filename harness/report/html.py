"""The self-contained HTML report: one file, inline CSS, JS and SVG, no network request of any kind.

Rendered from RUN_DIR/cells/*.json only, with jinja2 autoescaping every value that comes
from configs, datasets or model outputs.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from harness.report.compare import cell_deltas
from harness.report.details import confusion_matrices, data_card, examples, failed_cells, provenance
from harness.report.format import (
    LEGEND_MARKERS,
    NOISE_LEGEND,
    number,
    ordered,
    seeds_header,
    single_seed_rows,
    strategy_sort_key,
)
from harness.report.recommend import PREFERENCES, Constraints, recommend
from harness.report.view import (
    cost_note,
    learning_curves,
    memory_breakdown_chart,
    overview,
    race_section,
    search_section,
    strategy_colors,
    task_charts,
    task_table,
)
from harness.results.aggregate import aggregate
from harness.results.io import read_results, write_text_atomic
from harness.results.search import is_trial
from harness.results.table import data_sources, load_results

REPORT_NAME = "report.html"


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _recommendations(aggregates, constraints: Constraints) -> list[dict]:
    """Per task: the pick under the user's constraints, and the pick for each preference under the same limits."""
    by_preference = {}
    for prefer in PREFERENCES:
        limits = dataclasses.replace(constraints, prefer=prefer)
        by_preference[prefer] = {item.task: item for item in recommend(aggregates, limits)}
    return [
        {
            "task": task,
            "chosen": by_preference[constraints.prefer][task],
            "alternatives": [(prefer, by_preference[prefer][task]) for prefer in PREFERENCES],
        }
        for task in sorted(by_preference[constraints.prefer])
    ]


def _memory_kind(results: list[dict]) -> str:
    kinds = {(r.get("memory") or {}).get("kind") for r in results if r["status"] == "ok"}
    names = {"process_peak_rss": "process peak RSS", "cuda_max_allocated": "CUDA max allocated"}
    return ", ".join(sorted(names.get(k, str(k)) for k in kinds if k)) or "not measured"


def report_context(run_dir: Path, baseline: Path | None = None, constraints: Constraints = Constraints()) -> dict:
    """Everything the template shows, computed from the result files of `run_dir` (and `baseline`)."""
    results = read_results(run_dir)
    trials = [r for r in results if is_trial(r)]  # search trials: scored on validation rows, shown apart
    picked = race_section(run_dir, {})
    raced = set(picked["race_cells"]) if picked else set()
    trials = [r for r in trials if r["cell_id"] not in raced]  # a pick's race is drawn as the race, not a grid
    results = [r for r in results if not is_trial(r)]
    cells = load_results(run_dir)
    cells = cells[cells["search_role"] != "trial"]
    aggregates = ordered(aggregate(cells))
    tasks = sorted(aggregates["task"].unique()) if len(aggregates) else []
    strategies = sorted(aggregates["strategy"].unique(), key=strategy_sort_key) if len(aggregates) else []
    colors = strategy_colors(strategies)
    memory_kind = _memory_kind(results)
    metric_columns = sorted(c for c in cells.columns if c.startswith("metric."))
    sources = data_sources(cells) if len(cells) else {}
    task_sections = []
    for task in tasks:
        group = aggregates[aggregates["task"] == task]
        task_metrics = [
            c for c in metric_columns if group.get(f"{c}_mean") is not None and group[f"{c}_mean"].notna().any()
        ]
        first = group.iloc[0]
        task_sections.append(
            {
                "name": task,
                "scenario": first["scenario"],
                "primary_metric": first["primary_metric"],
                "data_source": sources.get(task, "not recorded in these results"),
                "data_card": data_card(results, task),
                "cost": cost_note(task, results),
                "not_comparable": first.get("not_comparable") or "",
                "contended": [
                    f"{row['strategy']} (seed {row['seed']})"
                    for _, row in cells[cells["task"] == task].iterrows()
                    if row.get("contended") is True
                ],
                "noise_tests": [
                    (row["strategy"], row["noise_test"])
                    for _, row in group.iterrows()
                    if isinstance(row.get("noise_test"), str)
                ],
                "table": task_table(group, task_metrics),
                "charts": task_charts(task, group, colors, memory_kind) + learning_curves(task, results, colors),
                "breakdown": memory_breakdown_chart(task, results, strategies),
                "search": search_section(task, trials, colors),
                "examples": examples(results, task),
                "confusion": confusion_matrices(results, task),
            }
        )
    seeds = sorted({int(s) for s in cells["seed"]}) if len(cells) else []
    compare = None
    if baseline is not None:
        base_cells = load_results(baseline)
        compare = {"baseline": str(baseline), **cell_deltas(cells, aggregates, base_cells, aggregate(base_cells))}
    finished = sorted(r.get("finished_at") or "" for r in results)
    return {
        "title": f"tunebench report: {Path(run_dir).resolve().name}",
        "run_dir": str(run_dir),
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "last_cell_at": finished[-1] if finished else "",
        "summary": {
            "tasks": len(tasks),
            "strategies": len(strategies),
            "seeds": len(seeds),
            "seeds_text": seeds_header(cells),
            "single_seed_rows": single_seed_rows(aggregates),
            "single_seed_best": [
                f"{row['task']}/{row['strategy']}" for _, row in aggregates.iterrows() if row["best"] and row["n"] == 1
            ],
            "cells": len(cells),
            "ok": int((cells["status"] == "ok").sum()) if len(cells) else 0,
            "max_n": int(aggregates["n"].max()) if len(aggregates) else 0,
        },
        "data_sources": [(task, sources.get(task, "not recorded in these results")) for task in tasks],
        "overview": overview(aggregates, tasks, strategies),
        "legend": [(LEGEND_MARKERS[k], v) for k, v in NOISE_LEGEND.items()],
        "colors": colors,
        "constraints": constraints.describe(),
        "preferred": constraints.prefer,
        "recommendations": _recommendations(aggregates, constraints),
        "picked": race_section(run_dir, colors) if picked else None,
        "tasks": task_sections,
        "failed": failed_cells(results),
        "provenance": provenance(results),
        "compare": compare,
        "memory_kind": memory_kind,
        "number": number,
    }


def render_html(
    run_dir: str | Path, baseline: str | Path | None = None, constraints: Constraints = Constraints()
) -> str:
    """The report page as one string."""
    context = report_context(Path(run_dir), Path(baseline) if baseline else None, constraints)
    return _environment().get_template("report.html.j2").render(**context)


def write_html(
    run_dir: str | Path,
    out: str | Path | None = None,
    baseline: str | Path | None = None,
    constraints: Constraints = Constraints(),
) -> Path:
    """Render the report into `out` (default RUN_DIR/report.html) and return its path."""
    path = Path(out) if out else Path(run_dir) / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_html(run_dir, baseline, constraints))
    return path
