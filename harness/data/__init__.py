"""A task's rows: read the source (local file or folder, installed package, or hub), apply the
task's transforms, map fields to the scenario's names, split deterministically, cap.

Order: read -> `[[data.transforms]]` -> field mapping -> split (one-file sources) -> validation carve
(`data.validation` only) -> sample caps. A search trial (`data.validation`) scores on rows carved from the
training rows and never reads the eval data; with `data.score_on = "eval"` the carve is only left out of
training (pick's finals, trained on the rows its race trained on) and the cell scores on eval.
The split depends on `[data.split]` and the data only, never on the cell's seed, so every
strategy and every machine sees the same rows; each result records a digest of them.
Prepared rows are cached under the tunebench cache, keyed by the data spec and the bytes
of the source, so that a large source file is parsed once per run, not once per cell.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.checks import DataCard
from harness.data.readers import read_rows
from harness.data.sources import DataLocation, digest, resolve_data
from harness.data.transforms import apply_transforms, get_path
from harness.specs import TaskSpec
from harness.values import missing

Row = dict[str, Any]
STRUCTURED_FIELDS = frozenset({"answers", "messages", "choices"})  # fields that hold lists or objects
CARD_VERSION = 2  # bump when the data check changes what a card holds
CACHE_VERSION = 2  # bump when preparation changes what a cached entry holds (2: scalar fields checked)


@dataclass(frozen=True)
class TaskData:
    """The rows a cell uses and what a result records about them."""

    train: list[Row]
    eval: list[Row]
    record: dict[str, Any]


def _read_hub(task: TaskSpec, split: str) -> list[Row]:
    import datasets

    return list(datasets.load_dataset(task.data.hub, task.data.hub_config, split=split))


def _read_local(path: Path) -> list[Row]:
    """Rows of one local file (format from its name)."""
    return read_rows(DataLocation(path))


def _canonical(
    rows: list[Row], required: tuple[str, ...], optional: tuple[str, ...], mapping: dict[str, str], where: str
) -> list[Row]:
    """Rows keyed by canonical field names: every required field, and optional ones the data has.
    A mapped column may be a nested path, e.g. `input.1.content`."""
    columns = {name: mapping.get(name, name) for name in required}

    def has(row: Row, column: str) -> bool:
        try:
            get_path(row, column)
            return True
        except KeyError:
            return False

    if rows:
        absent = [f"{name} (column {column!r})" for name, column in columns.items() if not has(rows[0], column)]
        if absent:
            raise ValueError(
                f"{where}: missing fields {', '.join(absent)}; columns are {', '.join(rows[0])}; "
                f"map them with [data.fields]"
            )
        columns.update(
            {
                name: mapping.get(name, name)
                for name in optional
                if name not in columns and has(rows[0], mapping.get(name, name))
            }
        )
    out = []
    for number, row in enumerate(rows, start=1):
        canonical = {}
        for name, column in columns.items():
            try:
                canonical[name] = get_path(row, column)
            except KeyError:
                canonical[name] = None
            if name in required and missing(canonical[name]):
                raise ValueError(f"{where}: row {number}: field {name} (column {column!r}) is missing")
            if name not in STRUCTURED_FIELDS and isinstance(canonical[name], (dict, list)):
                raise ValueError(
                    f"{where}: row {number}: field {name} (column {column!r}) must be a single value, "
                    f"got a {type(canonical[name]).__name__}"
                )
            if canonical[name] is None and name not in required:
                del canonical[name]
        out.append(canonical)
    return out


def _cap(rows: list[Row], limit: int | None) -> list[Row]:
    """The first `limit` rows of a fixed shuffle, so every cell sees the same subset."""
    if limit is None or limit >= len(rows):
        return rows
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)
    return [rows[i] for i in sorted(order[:limit])]


def split_rows(
    rows: list[Row], share_or_count: float, seed: int, stratify: bool, where: str, key: str = "data.split.eval"
) -> tuple[list[Row], list[Row]]:
    """(kept, held out): a seeded shuffle, per label when stratified; rows keep their file order."""
    total = len(rows)
    wanted = math.floor(share_or_count * total + 0.5) if share_or_count < 1 else int(share_or_count)
    if not 0 < wanted < total:
        raise ValueError(
            f"{where}: {key} = {share_or_count:g} leaves {wanted} of {total} rows to hold out; "
            f"both sides need at least one row"
        )
    rng = random.Random(seed)
    if stratify:
        if any("label" not in row for row in rows):
            raise ValueError(f"{where}: data.split.stratify needs a label field; set stratify = false")
        groups: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(str(row["label"]), []).append(index)
        exact = {label: wanted * len(members) / total for label, members in sorted(groups.items())}
        counts = {label: math.floor(value) for label, value in exact.items()}
        by_remainder = sorted(exact, key=lambda label: (-(exact[label] - counts[label]), label))
        for label in by_remainder[: wanted - sum(counts.values())]:
            counts[label] += 1
        held = []
        for label, members in sorted(groups.items()):
            members = members[:]
            rng.shuffle(members)
            held.extend(members[: counts[label]])
    else:
        order = list(range(total))
        rng.shuffle(order)
        held = order[:wanted]
    held_set = set(held)
    return [r for i, r in enumerate(rows) if i not in held_set], [r for i, r in enumerate(rows) if i in held_set]


def rows_digest(rows: list[Row]) -> str:
    """A digest of rows as used (canonical JSON): equal digests mean equal data."""
    blob = json.dumps(rows, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _plain(rows: list[Row]) -> list[Row]:
    """Rows as JSON gives them back (numpy scalars to numbers), so fresh and cached rows are equal."""
    return json.loads(
        json.dumps(rows, ensure_ascii=False, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _locations(task: TaskSpec) -> list[DataLocation]:
    data = task.data
    evaluation = None if data.is_trial else data.eval  # a search trial never reads eval
    return [resolve_data(ref, task.path.parent) for ref in (data.train, evaluation) if ref is not None]


def _cache_path(task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...]) -> Path | None:
    if task.data.train is None:
        return None  # hub data: the datasets library keeps its own cache
    from harness.models import cache_root
    from harness.schema import to_plain

    spec = {k: v for k, v in to_plain(task.data).items() if k not in ("max_train_samples", "max_eval_samples")}
    locations = _locations(task)
    key = json.dumps(
        {
            "data": spec,
            "fields": fields,
            "optional": optional,
            "files": [str(loc) for loc in locations],
            "bytes": digest(locations),
            "version": CACHE_VERSION,
        },
        sort_keys=True,
    )
    return cache_root() / "data" / f"{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


VALIDATION_SEED = 0  # the validation carve is fixed, like the split: every trial scores on the same rows


def _prepare(task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...]) -> tuple[list[Row], list[Row]]:
    data = task.data
    train, evaluation, where = _prepare_sources(task, fields, optional)
    if data.validation is not None:  # the carve: a search trial's eval rows (eval is never read), else left out
        stratify = all("label" in row for row in train)
        rest, carve = split_rows(train, data.validation, VALIDATION_SEED, stratify, where, "search.validation")
        if data.is_trial:
            return rest, carve
        train = rest
    assert evaluation is not None
    return train, evaluation


def _prepare_sources(
    task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...]
) -> tuple[list[Row], list[Row] | None, str]:
    """(train, eval or None for a search trial, where the training rows come from)."""
    data = task.data
    mapping = dict(data.fields)
    trial = data.is_trial
    if data.train is None:
        where_train, where_eval = f"{data.hub}[{data.train_split}]", f"{data.hub}[{data.eval_split}]"
        train = _canonical(_read_hub(task, data.train_split), fields, optional, mapping, where_train)
        if trial:
            return train, None, where_train
        return train, _canonical(_read_hub(task, data.eval_split), fields, optional, mapping, where_eval), where_train
    return assemble(task, read_tables(task, fields, optional))


def read_tables(
    task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...], dropped: list[dict] | None = None
) -> list[tuple[str, list[Row]]]:
    """(where, canonical rows) of each local source file, after its transforms; row N of a table is the
    file's N-th row after the transforms. What each transform dropped is appended to `dropped`."""
    tables = []
    for location in _locations(task):
        rows = read_rows(location, task.data.format, task.data.encoding_errors)
        rows = apply_transforms(rows, task.data.transforms, str(location), dropped)
        tables.append((str(location), _canonical(rows, fields, optional, dict(task.data.fields), str(location))))
    return tables


def assemble(task: TaskSpec, tables: list[tuple[str, list[Row]]]) -> tuple[list[Row], list[Row] | None, str]:
    """(train, eval or None for a search trial, where the training rows come from) from the source tables:
    the split where the task carves eval out of train. The rows are the tables' own objects."""
    data = task.data
    trial = data.is_trial
    (where, first), rest = tables[0], tables[1:]
    if data.split is not None:
        split = data.split
        train, evaluation = split_rows(first, split.eval, split.seed, split.stratify, where)
        return train, None if trial else evaluation, where
    return first, None if trial else rest[0][1], where


def capped(task: TaskSpec, train: list[Row], evaluation: list[Row]) -> tuple[list[Row], list[Row]]:
    """The rows a cell uses: the task's sample caps applied (the same rows, not copies)."""
    return _cap(train, task.data.max_train_samples), _cap(evaluation, task.data.max_eval_samples)


def _write_cache(path: Path, payload: dict) -> None:
    """A cache entry written whole or not at all: a killed run never leaves half an entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def load_task_data(task: TaskSpec, fields: tuple[str, ...], optional: tuple[str, ...] = ()) -> TaskData:
    """The rows for one cell of `task`, with the scenario's canonical field names."""
    data = task.data
    cache = _cache_path(task, fields, optional)
    if cache is not None and cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        train, evaluation = cached["train"], cached["eval"]
    else:
        train, evaluation = map(_plain, _prepare(task, fields, optional))
        if cache is not None:
            _write_cache(cache, {"train": train, "eval": evaluation})
    train, evaluation = capped(task, train, evaluation)
    if not train or not evaluation:
        side, key = ("training", "data.train") if not train else ("evaluation", "data.eval")
        source = data.train if not train else (data.eval or data.train)
        raise ValueError(f"{task.path}: {key}: no {side} rows in {source} (after transforms and the split)")
    record = {
        "source": data.source,
        "citation": data.citation,
        "licence": data.licence,
        "train": data.train or f"{data.hub}[{data.train_split}]",
        "eval": None if data.is_trial else data.eval or (None if data.split else f"{data.hub}[{data.eval_split}]"),
        "validation": data.validation,  # a carve of train: a search trial's "eval" rows, else left out of training
        "score_on": data.score_on if data.validation is not None else "eval",
        "split": {"eval": data.split.eval, "seed": data.split.seed, "stratify": data.split.stratify}
        if data.split
        else None,
        "train_rows": len(train),
        "eval_rows": len(evaluation),
        "train_sha256": rows_digest(train),
        "eval_sha256": rows_digest(evaluation),
    }
    return TaskData(train, evaluation, record)


def data_card(task: TaskSpec, scenario) -> DataCard | None:
    """The data check of `task` under its registered `scenario` class (harness.data.checks), from a fresh
    read of the sources so that each finding names its file and row; cached like the rows. None for hub
    data (the network is not assumed) and for search trials (they never read the eval rows)."""
    from harness.data.checks import DataCard, Finding, check_rows

    if task.data.train is None or task.data.is_trial:
        return None
    fields, optional = scenario.required_fields(task.scenario), scenario.fields
    rows_cache = _cache_path(task, fields, optional)
    assert rows_cache is not None
    caps = f"{task.data.max_train_samples}-{task.data.max_eval_samples}"
    cache = rows_cache.with_name(f"{rows_cache.stem}-card{CARD_VERSION}-{caps}.json")
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        return DataCard([Finding(**f) for f in saved["errors"]], saved["warnings"], saved["figures"], saved["relaxed"])
    dropped: list[dict] = []
    tables = read_tables(task, fields, optional, dropped)
    train, evaluation, _ = assemble(task, tables)
    assert evaluation is not None
    card = check_rows(task, scenario, tables, train, evaluation, capped(task, train, evaluation), dropped)
    saved = {
        "errors": [f.__dict__ for f in card.errors],
        **{k: getattr(card, k) for k in ("warnings", "figures", "relaxed")},
    }
    _write_cache(cache, saved)
    return card


def load_rows(task: TaskSpec, fields: tuple[str, ...]) -> tuple[list[Row], list[Row]]:
    """(train, eval) rows with the scenario's canonical field names."""
    loaded = load_task_data(task, fields)
    return loaded.train, loaded.eval


def warm_cache(tasks: list[TaskSpec]) -> None:
    """Prepare each task's rows once (in the calling process), so cells read the small cached file;
    a problem here is left for the cell to report."""
    from harness.scenarios import SCENARIOS
    from harness.schema import to_plain

    for task in {json.dumps([str(t.path), to_plain(t.data)], sort_keys=True): t for t in tasks}.values():
        scenario = SCENARIOS.get(task.task.scenario)
        try:
            load_task_data(task, scenario.required_fields(task.scenario), scenario.fields)
        except Exception:  # noqa: BLE001 - the task's cells run the same code and record the error
            pass


def read_texts(spec, base: Path) -> list[str]:
    """The first `spec.samples` non-empty texts of a [forgetting] source (a ForgettingSpec), in file order."""
    from harness.data.readers import read_rows
    from harness.data.sources import resolve_data
    from harness.data.transforms import get_path

    location = resolve_data(spec.text, base)
    texts: list[str] = []
    for number, row in enumerate(read_rows(location, spec.format, "replace"), start=1):
        try:
            text = get_path(row, spec.column)
        except KeyError:
            raise ValueError(f"{location}: row {number}: no column {spec.column!r} (forgetting.column)") from None
        if isinstance(text, str) and text.strip():
            texts.append(text)
        if len(texts) == spec.samples:
            break
    if not texts:
        raise ValueError(f"{location}: no text in column {spec.column!r} (forgetting.column)")
    return texts
