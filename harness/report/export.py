"""Tables built from a run folder's result files: CSV, JSON, GitHub Markdown and LaTeX.

CSV and JSON carry every cell and every (task, strategy) aggregate. In CSV a first column
`row_type` says which ("cell" or "aggregate"); read it back with
`frame = pd.read_csv(path); cells = frame[frame.row_type == "cell"].dropna(axis=1, how="all")`.
JSON is {"columns": [...], "cells": [...], "aggregate_columns": [...], "aggregates": [...]}.
Markdown and LaTeX are for publishing: one row per (task, strategy), mean ± std over seeds,
the best per task marked and ties within noise marked.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.figures import shown_figures
from harness.report.format import (
    NOISE_LEGEND,
    eval_noise_only,
    human_bytes,
    learning_words,
    metric_value,
    missing,
    number,
    ordered,
    seed_count_text,
    verdict_words,
)
from harness.results.aggregate import BEST, DIFFERS, TIE, UNKNOWN, aggregate
from harness.results.table import data_sources, load_results

# For CI tools: pytest-benchmark's saved-run JSON (`pytest-benchmark compare` reads it), and
# github-action-benchmark's customBiggerIsBetter / customSmallerIsBetter arrays.
CI_FORMATS = ("pytest-benchmark", "github-action-benchmark", "github-action-benchmark-smaller")
FORMATS = ("csv", "md", "json", "latex", "search", *CI_FORMATS)
MARKDOWN_COLUMNS = (
    "task",
    "scenario",
    "strategy",
    "n",
    "primary_metric",
    "primary_value",
    "peak_memory",
    "train_tokens_per_s",
    "eval_tokens_per_s",
    "trainable_percent",
    "train_seconds",
    "vs_best",
)
VS_BEST_TEXT = {
    BEST: "★ best",
    TIE: "≈ within noise of best",
    UNKNOWN: "? single seed: noise unknown",
    DIFFERS: "worse, beyond noise",
}


def vs_best_text(row) -> str:
    """How a strategy stands against the best of its task, in words with the marker."""
    if int(row["n"]) == 0:
        return "no ok cell"
    if eval_noise_only(row):
        return f"{'≈' if row['noise_vs_best'] == TIE else '≠'} {verdict_words(row)}"
    return VS_BEST_TEXT.get(row["noise_vs_best"], "")


def not_learned_notes(aggregates) -> str:
    """A paragraph per row that did not learn: what its checks found and what to do."""
    lines = [
        f"\n✗ {row['task']} / {row['strategy']} did not learn. {_markdown_cell(row['learning_detail'])}\n"
        for _, row in ordered(aggregates).iterrows()
        if learning_words(row) and isinstance(row.get("learning_detail"), str)
    ]
    return "".join(lines)


def _markdown_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(aggregates) -> str:
    """A GitHub table: one row per (task, strategy), mean ± std, best in bold, ties marked; figures that
    ask to be shown (harness.figures) come before `vs_best`."""
    shown = shown_figures(aggregates)
    header = list(MARKDOWN_COLUMNS[:-1]) + [f"{f.name} ({f.unit})" if f.unit else f.name for f in shown] + ["vs_best"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in ordered(aggregates).iterrows():
        value = metric_value(row["primary_value_mean"], row["primary_value_std"])
        if row["best"]:
            value = f"**{value}**"
        if learning_words(row):
            value = f"{value} {learning_words(row)}"
        cells = [
            row["task"],
            row["scenario"],
            row["strategy"],
            seed_count_text(row),
            row["primary_metric"],
            value,
            human_bytes(row.get("peak_memory_bytes_mean")),
            number(row.get("train_tokens_per_s_mean")),
            number(row.get("eval_tokens_per_s_mean")),
            number(row.get("trainable_percent_mean"), 3),
            number(row.get("train_seconds_mean")),
        ]
        cells += [number(row.get(f"{f.name}_mean")) for f in shown] + [vs_best_text(row)]
        lines.append("| " + " | ".join(_markdown_cell("n/a" if missing(c) else c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def combined_frame(cells, aggregates):
    """Cells and aggregates in one frame, told apart by a first column `row_type`."""
    import pandas as pd

    def keep_integers(frame):  # NaN-padding by concat would turn seeds and counts into floats
        return frame.astype({c: "Int64" for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])})

    both = pd.concat([keep_integers(cells), keep_integers(aggregates)], ignore_index=True)
    row_type = pd.Series(["cell"] * len(cells) + ["aggregate"] * len(aggregates), name="row_type")
    return pd.concat([row_type, both], axis=1)  # joined at once: inserting a column warns of fragmentation


def _records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def export(run_dir: str | Path, fmt: str) -> str:
    """The run's tables in `fmt` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "search":  # the learning-rate search: trials, choices, one rate per strategy
        from harness.results.io import read_results
        from harness.results.search import search_markdown

        return search_markdown(read_results(Path(run_dir)))
    cells = load_results(run_dir)
    aggregates = aggregate(cells)
    if fmt in CI_FORMATS:
        from harness.report.ci import github_action_benchmark, pytest_benchmark

        if fmt == "pytest-benchmark":
            return json.dumps(pytest_benchmark(Path(run_dir), cells), indent=2) + "\n"
        return json.dumps(github_action_benchmark(aggregates, bigger=fmt == "github-action-benchmark"), indent=2) + "\n"
    if fmt == "csv":
        return combined_frame(cells, aggregates).to_csv(index=False)
    if fmt == "json":
        payload = {
            "columns": list(cells.columns),
            "cells": _records(cells),
            "aggregate_columns": list(aggregates.columns),
            "aggregates": _records(aggregates),
            "noise_rule": NOISE_LEGEND,
        }
        return json.dumps(payload, indent=2) + "\n"
    sources = data_sources(cells)
    if fmt == "md":
        return (
            markdown_table(aggregates)
            + "".join(f"\nData ({task}): {_markdown_cell(text)}\n" for task, text in sorted(sources.items()))
            + not_learned_notes(aggregates)
        )
    from harness.report.latex import latex_table

    return latex_table(aggregates, sources)
