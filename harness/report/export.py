"""Per-cell tables as CSV, GitHub Markdown or JSON, built from a run folder's result files."""
from __future__ import annotations

import json
import math
from pathlib import Path

from harness.results.table import COLUMNS, load_results

FORMATS = ("csv", "md", "json")


def _cell_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def export(run_dir: str | Path, fmt: str) -> str:
    """The run's table in `fmt`; one row per cell with at least COLUMNS."""
    frame = load_results(run_dir)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        records = json.loads(frame.to_json(orient="records"))
        return json.dumps({"columns": list(frame.columns), "cells": records}, indent=2) + "\n"
    if fmt == "md":
        columns = list(COLUMNS)
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in frame[columns].itertuples(index=False):
            lines.append("| " + " | ".join(_cell_text(v) for v in row) + " |")
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
