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
