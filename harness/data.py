"""Load task rows from local files (jsonl, csv, parquet) or a datasets hub id."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from harness.config import TaskSpec

Row = dict[str, Any]


def _read_jsonl(path: Path) -> list[Row]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not a JSON object: {exc.msg}") from None
    return rows


def _read_local(path: Path) -> list[Row]:
    import pandas as pd

    if path.suffix in (".jsonl", ".json"):
        return _read_jsonl(path)  # read as written: no type guessing, a missing key stays missing
    readers = {".csv": lambda p: pd.read_csv(p, keep_default_na=False),  # "NA" or "" is text, not NaN
               ".parquet": pd.read_parquet}
    if path.suffix not in readers:
        raise ValueError(f"{path}: unsupported data format {path.suffix!r}; use .jsonl, .csv or .parquet")
    return readers[path.suffix](path).to_dict(orient="records")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_hub(task: TaskSpec, split: str) -> list[Row]:
    import datasets

    return list(datasets.load_dataset(task.data.hub, task.data.hub_config, split=split))


def _canonical(rows: list[Row], required: tuple[str, ...], optional: tuple[str, ...], mapping: dict[str, str],
               where: str) -> list[Row]:
    """Rows keyed by canonical field names: every required field, and optional ones the data has."""
    columns = {name: mapping.get(name, name) for name in required}
    if rows:
        missing = [f"{name} (column {column!r})" for name, column in columns.items() if column not in rows[0]]
        if missing:
            raise ValueError(f"{where}: missing fields {', '.join(missing)}; columns are {', '.join(rows[0])}; "
                             f"map them with [data.fields]")
        columns.update({name: mapping.get(name, name) for name in optional
                        if name not in columns and mapping.get(name, name) in rows[0]})
    for number, row in enumerate(rows, start=1):
        for name, column in columns.items():
            if name in required and _missing(row.get(column)):
                raise ValueError(f"{where}: row {number}: field {name} (column {column!r}) is missing")
    return [{name: row[column] for name, column in columns.items() if column in row} for row in rows]


def _cap(rows: list[Row], limit: int | None) -> list[Row]:
    """The first `limit` rows of a fixed shuffle, so every cell sees the same subset."""
    if limit is None or limit >= len(rows):
        return rows
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    return [rows[i] for i in sorted(order[:limit])]


def load_rows(task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> tuple[list[Row], list[Row]]:
    """(train, eval) rows with the scenario's canonical field names."""
    data = task.data
    if data.train is not None and data.eval is not None:
        train_path, eval_path = task.resolve_path(data.train), task.resolve_path(data.eval)
        train, evaluation = _read_local(train_path), _read_local(eval_path)
        where_train, where_eval = str(train_path), str(eval_path)
    else:
        train, evaluation = _read_hub(task, data.train_split), _read_hub(task, data.eval_split)
        where_train, where_eval = f"{data.hub}[{data.train_split}]", f"{data.hub}[{data.eval_split}]"
    mapping = dict(data.fields)
    train = _canonical(_cap(train, data.max_train_samples), fields, optional, mapping, where_train)
    evaluation = _canonical(_cap(evaluation, data.max_eval_samples), fields, optional, mapping, where_eval)
    if not train or not evaluation:
        raise ValueError(f"{task.path}: empty {'training' if not train else 'evaluation'} data")
    return train, evaluation
