"""Cell results as one flat row each: the columns of exports and `load_results`."""

from __future__ import annotations

import json
from pathlib import Path

import harness.measure  # noqa: F401  (registers the built-in trackers' figures)
from harness.figures import FIGURES
from harness.results.aggregate import aggregate as aggregate_cells
from harness.results.io import read_results
from harness.results.learning import learning_columns
from harness.results.variants import identity, variant_names
from harness.values import missing

# The leading columns, in this order; then every other registered figure, then EXTRA_COLUMNS, then metrics.
COLUMNS = (
    "task",
    "scenario",
    "strategy",
    "seed",
    "status",
    "primary_metric",
    "primary_value",
    "trainable_params",
    "total_params",
    "peak_memory_bytes",
    "train_tokens_per_s",
    "train_samples_per_s",
    "eval_tokens_per_s",
    "train_seconds",
    "device",
    "cell_id",
)
EXTRA_COLUMNS = (
    "learned",  # a tuned cell passed the learning checks (harness.results.learning); None for `none` and failures
    "learning_reasons",  # the checks it failed, as codes: below_reference, constant_predictions, loss_flat, ...
    "learning_detail",  # those reasons in a sentence each, with what to do
    "strategy_type",
    "search_role",  # "trial" for a learning-rate search trial (scored on validation), "final" for its chosen cell
    "contended",  # other processes used the CPU during the train or eval phase: throughput under contention
    "cells_on_node",  # Ray: the most cells that shared the node during this one (> 1: throughput under contention)
    "profile",
    "error_type",
    "error_message",
    "data_source",
    "data_eval_sha256",
    "items_measure",
    "items_file",
    "memory_saving",  # what the row does to save memory: a 4-bit or 8-bit base, 8-bit or GaLore optimizer state
)


def _contended(result: dict) -> bool | None:
    """Whether the cell's throughput was measured under contention: other processes busy on the CPU during
    its train or eval phase, or (Ray) other cells on its node; None when the result does not say."""
    crowded = ((result.get("executor") or {}).get("cells_on_node") or 1) > 1
    flagged = (result.get("contention") or {}).get("contended")
    return None if flagged is None and not crowded else bool(flagged) or crowded


def data_source_text(record: dict | None) -> str | None:
    """'SOURCE (CITATION), LICENCE' from a result's data record; None when the result has none."""
    if not isinstance(record, dict) or not any(record.get(k) for k in ("source", "citation", "licence")):
        return None
    return (
        f"{record.get('source') or 'source not stated'} ({record.get('citation') or 'no citation given'}), "
        f"{record.get('licence') or 'licence not stated'}"
    )


def data_sources(cells) -> dict[str, str]:
    """Per task, the data-source line of its cells (the first one recorded)."""
    sources: dict[str, str] = {}
    for task, text in zip(cells["task"], cells["data_source"]):
        if isinstance(text, str) and text:
            sources.setdefault(task, text)
    return sources


# Not pandas.json_normalize: it would turn every nested key (per-phase memory, the breakdown, the
# resolved config) into a column; the figures name their own paths, and options and settings are
# picked deliberately.
def flatten(result: dict, run_dir: str | Path | None = None) -> dict:
    """One row: the identity columns, every registered figure (harness.figures), then every metric as
    `metric.NAME`. With `run_dir`, `items_file` is the path of the cell's per-item results."""
    error = result.get("error") or {}
    items = result.get("items") or {}
    row = {
        "task": result["task"],
        "scenario": result.get("scenario"),
        "strategy": result["strategy"],
        "seed": result["seed"],
        "status": result["status"],
        "primary_metric": result.get("primary_metric"),
        "device": (result.get("provenance") or {}).get("device"),
        "cell_id": result["cell_id"],
        "strategy_type": (result.get("config") or {}).get("strategy_type") or result["strategy"],
        "profile": result.get("profile"),
        "search_role": (result.get("search") or {}).get("role"),
        "cells_on_node": (result.get("executor") or {}).get("cells_on_node"),
        "contended": _contended(result),
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "data_source": data_source_text(result.get("data")),
        "data_eval_sha256": (result.get("data") or {}).get("eval_sha256"),
        "items_measure": items.get("measure"),
        "items_file": (
            str(Path(run_dir) / "cells" / result["cell_id"] / items["file"])
            if run_dir is not None and items.get("file")
            else None
        ),
    }
    for figure in FIGURES.registered():
        row[figure.name] = figure.value(result)
    # settings added later are left out at their defaults (quantize = "none" is no setting of a row's)
    config = identity(result.get("config"), seed=True)
    task = config.get("task") or {}
    row["memory_saving"] = memory_saving(config)
    for prefix, values in (("option", config.get("options")), ("training", task.get("training"))):
        for name, value in (values or {}).items():
            row[f"{prefix}.{name}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    row["model.max_length"] = (task.get("model") or {}).get("max_length")
    for name in ("max_train_samples", "max_eval_samples"):
        row[f"data.{name}"] = (task.get("data") or {}).get(name)
    for name, value in (result.get("metrics") or {}).items():
        row[f"metric.{name}"] = value
    return row


SAVINGS = {
    "nf4": "4-bit NF4 base",
    "int8": "8-bit base",
    "adamw8bit": "8-bit AdamW state",
    "galore_adamw": "GaLore-projected optimizer state",
}


def memory_saving(config: dict) -> str | None:
    """'4-bit NF4 base', '8-bit AdamW state', both joined, or None for a float base under AdamW."""
    options = config.get("options") or {}
    training = (config.get("task") or {}).get("training") or {}
    found = [SAVINGS.get(str(options.get("quantize"))), SAVINGS.get(str(training.get("optimizer")))]
    if training.get("optimizer") == "galore_adamw":
        found[1] = f"GaLore-projected optimizer state (rank {training.get('galore_rank')})"
    return " and ".join(f for f in found if f) or None


# Sizes that decide what a strategy sees, shown as columns; the comparability check reads them too.
SIZES = ("model.max_length", "data.max_train_samples", "data.max_eval_samples")


def training_defaults() -> dict[str, object]:
    """The `training.NAME` columns' values when a task leaves them alone."""
    from dataclasses import fields

    from harness.specs import TrainingSpec

    return {f"training.{f.name}": f.default for f in fields(TrainingSpec)}


def settings_columns(frame) -> list[str]:
    """The strategy options, and the training settings that some cell sets away from the default."""
    defaults = training_defaults()
    options = sorted(c for c in frame.columns if c.startswith("option."))
    changed = [
        c
        for c in defaults
        if c in frame.columns and any(not (missing(v) and defaults[c] is None) and v != defaults[c] for v in frame[c])
    ]
    return [*options, *changed, *(c for c in SIZES if c in frame.columns)]


def columns() -> list[str]:
    """Every column of `load_results` but the metrics, in order."""
    figures = [f.name for f in FIGURES.registered() if f.name not in COLUMNS]
    return list(COLUMNS) + figures + list(EXTRA_COLUMNS)


def load_results(run_dir: str | Path, aggregate: bool = False):
    """A pandas DataFrame with one row per cell of the run in `run_dir`.

    With aggregate=True, one row per (task, strategy) instead: see `harness.load_aggregates`. Cells of
    one (task, strategy) whose configs differ beyond the seed get strategy names of their own
    (`harness.results.variants`), so that no row pools them as seeds.
    """
    import pandas as pd

    if aggregate:
        return load_aggregates(run_dir)
    results = read_results(Path(run_dir))
    frame = pd.DataFrame([flatten(r, run_dir) for r in results])
    if variants := variant_names(results):
        frame["strategy"] = [variants.get(c, s) for c, s in zip(frame["cell_id"], frame["strategy"])]
    for column in columns():
        if column not in frame:
            frame[column] = None
    if len(frame):
        frame = frame.assign(**learning_columns(frame, results))
    metric_columns = sorted(c for c in frame.columns if c.startswith("metric."))
    frame = frame[columns() + settings_columns(frame) + metric_columns]
    if frame["general_text_loss"].notna().any():  # only runs that measure it get the column
        frame = frame.assign(forgetting=forgetting(frame))
    return frame


def forgetting(frame):
    """Per cell, its loss on the [forgetting] general text minus the untuned model's (the mean of the
    task's ok `none` cells), in nats per token: above 0 the tuning forgot some general language.
    NaN where either is missing."""
    import pandas as pd

    loss = pd.to_numeric(frame["general_text_loss"], errors="coerce")
    untuned = frame[(frame["strategy_type"] == "none") & (frame["status"] == "ok")]
    base = pd.to_numeric(untuned["general_text_loss"], errors="coerce").groupby(untuned["task"]).mean()
    return loss - frame["task"].map(base).astype(float)


def load_aggregates(run_dir: str | Path):
    """A pandas DataFrame with one row per (task, strategy) of the run in `run_dir`: for the primary
    metric and each numeric figure `<column>_mean`, `_std` (ddof=1), `_ci95` (95% CI half-width),
    plus n (ok cells), n_failed, best, within_noise_of_best, noise_vs_best (with noise_test and
    noise_p_value: the rule that decided it), within_noise_of and rank_in_task."""
    return aggregate_cells(load_results(run_dir))
