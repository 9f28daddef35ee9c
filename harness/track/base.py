"""The sink interface and registry of harness.track (see the package's docstring)."""

from __future__ import annotations

import abc
import math
from pathlib import Path
from typing import Any, ClassVar

from harness.registry import Registry


class Sink(abc.ABC):
    """One destination for results. `target` is what follows `=` in `--track NAME=TARGET` (None: the
    sink's default, under the run folder or beside it)."""

    name: ClassVar[str]

    def __init__(self, run_dir: Path, target: str | None, weights: bool = False) -> None:
        self.run_dir, self.target, self.weights = Path(run_dir), target, weights

    def describe(self) -> str:
        """Where it writes, in words."""
        return self.target or "its default store"

    def start(self, info: dict[str, Any]) -> None:  # noqa: B027 - optional
        """The run begins (or a replay): `info` names the run folder, suite paths, matrix digest."""

    @abc.abstractmethod
    def log_cell(self, result: dict, cell_dir: Path) -> None:
        """One finished cell's result (as written to RUN_DIR/cells/<id>.json); `cell_dir` holds its files."""

    def has_cell(self, cell_id: str) -> bool:
        """Whether the store already holds this cell of this run folder (a replay skips it)."""
        return False

    def finish(self, report: Path | None) -> None:  # noqa: B027 - optional
        """The run is over; `report` is its HTML report where one was written."""


SINKS: Registry[type[Sink]] = Registry("tracking sink")


def parse_track(text: str) -> tuple[str, str | None]:
    """`mlflow` or `mlflow=sqlite:///x.db` -> (name, target or None)."""
    name, _, target = text.partition("=")
    return name.strip(), target.strip() or None


def numbers(values: dict[str, Any]) -> dict[str, float]:
    """The finite numbers among `values` (booleans as 0/1), for stores that take only numbers."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[key] = float(value)
    return out


# What a cell's result holds as numbers, for every sink alike.
SETTINGS = ("training.", "option.", "model.", "data.")  # load_results columns that are settings, not figures


def cell_metrics(result: dict) -> dict[str, float]:
    """Every figure `load_results` has for the cell (its flat row's numbers), as MLflow metric names."""
    from harness.results.table import flatten

    row = flatten(result)
    figures = {k: v for k, v in row.items() if k != "seed" and not k.startswith(SETTINGS)}
    return {_metric_name(k): v for k, v in numbers(figures).items()}


def _metric_name(name: str) -> str:
    """MLflow takes letters, digits, `_ - . / :` and spaces; anything else becomes `_`."""
    return "".join(c if c.isalnum() or c in "_-./: " else "_" for c in name)


def cell_series(result: dict) -> dict[str, list[tuple[int, float]]]:
    """(step, value) series: the training loss and learning rate per step, and each periodic evaluation."""
    training = result.get("training") or {}
    series = {
        name: list(enumerate(training.get(key) or [], start=1))
        for name, key in (("train_loss", "loss_curve"), ("learning_rate", "lr_curve"))
    }
    for point in training.get("periodic_evaluation") or []:
        for key, value in numbers({k: v for k, v in point.items() if k != "step"}).items():
            series.setdefault(f"periodic.{_metric_name(key)}", []).append((int(point["step"]), value))
    return {k: [(s, v) for s, v in points if numbers({"v": v})] for k, points in series.items() if points}
