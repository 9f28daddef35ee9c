"""The run's ETA: each pending cell's own cost, not a mean of the cells finished so far.

A cell's cost is its load, training (steps × seconds per step) and evaluation phases plus the start-up
around them. For a pending cell it is taken from, in order:

1. a finished cell of the same config in this run (another seed of it): what that cell measured;
2. the recorded times shipped for the default tasks (`recorded_times.json` beside this module, keyed by
   the cell's config without its seed), scaled by how fast this machine runs compared with the machine
   that recorded them: the ratio of measured to recorded seconds over the finished cells that have a
   record, shrunk towards 1 until CALIBRATION_S seconds of such cells have run;
3. the recorded time of the same task, strategy and profile under another config (a shipped task with
   an edited setting), scaled the same way; never for a search trial or a race rung, which train on
   other rows for other budgets;
4. the mean of the finished cells of the same task, then of every finished cell.

A cell none of these covers has no estimate: the ETA then says how many cells it leaves out. The
estimate is the cells' summed time: with a parallel executor (Ray) it is an upper bound.
`python -m harness.run.eta RUN_DIR` rewrites the record from a finished run's ok cells.
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.results.io import read_results, write_json_atomic
from harness.results.variants import config_digest

RECORDED_TIMES = Path(__file__).with_name("recorded_times.json")
CALIBRATION_S = 60.0  # seconds of recorded cells after which the measured speed ratio counts fully
START_UP_S = 2.0  # spawn and hand-over around a cell's phases, until this run has measured its own


@dataclass(frozen=True)
class CellCost:
    """What one cell's phases took, in seconds."""

    load_s: float
    train_steps: int
    train_step_s: float
    eval_s: float

    @property
    def seconds(self) -> float:
        return self.load_s + self.train_steps * self.train_step_s + self.eval_s

    @classmethod
    def of(cls, result: dict) -> CellCost | None:
        """The cost measured by a cell result; None for a result that is not ok or holds no timing."""
        timing = result.get("timing") or {}
        if result.get("status") != "ok" or not timing:
            return None
        train_s = float(timing.get("train_seconds") or 0.0)
        steps = int((result.get("training") or {}).get("steps") or 0)
        other = sum(
            float(v)
            for k, v in timing.items()
            if k.endswith("_seconds") and k not in ("load_seconds", "train_seconds") and isinstance(v, (int, float))
        )
        return cls(
            load_s=float(timing.get("load_seconds") or 0.0),
            train_steps=steps,
            train_step_s=train_s / steps if steps else 0.0,
            eval_s=other,
        )


def read_recorded(path: Path = RECORDED_TIMES) -> dict[str, CellCost]:
    """The shipped record: config digest -> cost; empty when the file is missing."""
    return {digest: cost for digest, (_, cost) in _recorded_entries(path).items()}


def read_recorded_by_name(path: Path = RECORDED_TIMES) -> dict[tuple[str, str, str], CellCost]:
    """The shipped record by (task, strategy, profile): the cost of that cell under its recorded config."""
    return {name: cost for name, cost in _recorded_entries(path).values()}


def _recorded_entries(path: Path) -> dict[str, tuple[tuple[str, str, str], CellCost]]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        digest: (
            (entry["task"], entry["strategy"], entry["profile"]),
            CellCost(entry["load_s"], entry["train_steps"], entry["train_step_s"], entry["eval_s"]),
        )
        for digest, entry in data["cells"].items()
    }


def record(run_dir: Path, path: Path = RECORDED_TIMES) -> int:
    """Write the record from a finished run's ok cells (the mean over seeds of one config); returns its size."""
    by_digest: dict[str, list[tuple[dict, CellCost]]] = {}
    for result in read_results(run_dir):
        cost = CellCost.of(result)
        if cost is not None and result.get("config"):
            by_digest.setdefault(config_digest(result["config"]), []).append((result, cost))
    cells = {}
    for digest, entries in sorted(by_digest.items()):
        first = entries[0][0]
        cells[digest] = {
            "task": first["task"],
            "strategy": first["strategy"],
            "profile": first.get("profile"),
            "load_s": round(statistics.fmean(c.load_s for _, c in entries), 3),
            "train_steps": entries[0][1].train_steps,
            "train_step_s": round(statistics.fmean(c.train_step_s for _, c in entries), 4),
            "eval_s": round(statistics.fmean(c.eval_s for _, c in entries), 3),
        }
    source = next(iter(by_digest.values()))[0][0] if by_digest else {}
    provenance = source.get("provenance") or {}
    write_json_atomic(
        path,
        {
            "recorded_from": str(run_dir),
            "machine": {
                "cpu_count": provenance.get("cpu_count"),
                "device": provenance.get("device_name"),
                "peak_flops_per_s": (source.get("efficiency") or {}).get("peak_flops_per_s"),
            },
            "cells": cells,
        },
    )
    return len(cells)


@dataclass
class Eta:
    """Estimates of the remaining time of a run, updated as cells finish."""

    recorded: dict[str, CellCost] = field(default_factory=read_recorded)
    similar: dict[tuple[str, str, str], CellCost] = field(default_factory=read_recorded_by_name)
    measured: dict[str, list[float]] = field(default_factory=dict)  # config digest -> wall seconds
    by_task: dict[str, list[float]] = field(default_factory=dict)
    start_up: list[float] = field(default_factory=list)
    recorded_s: float = 0.0  # over the finished cells that have a record: recorded seconds ...
    measured_s: float = 0.0  # ... and what they took here

    def finished(self, digest: str, task: str, wall_s: float, result: dict | None) -> None:
        """A cell whose config has this digest (`CellSpec.config_digest`) took `wall_s` seconds, as the
        runner saw it; `result` is its result file."""
        self.measured.setdefault(digest, []).append(wall_s)
        self.by_task.setdefault(task, []).append(wall_s)
        cost = CellCost.of(result) if result else None
        if cost is not None:
            self.start_up.append(max(0.0, wall_s - cost.seconds))
        if digest in self.recorded:
            self.recorded_s += self.recorded[digest].seconds + START_UP_S
            self.measured_s += wall_s

    @property
    def speed_ratio(self) -> float:
        """Measured over recorded seconds, shrunk towards 1 while few recorded seconds have run."""
        return (self.measured_s + CALIBRATION_S) / (self.recorded_s + CALIBRATION_S)

    def estimate(self, digest: str, name: tuple[str, str, str]) -> float | None:
        """Seconds a cell should take here, from its config digest and (task, strategy, profile); None when
        nothing covers it."""
        task = name[0]
        if digest in self.measured:
            return statistics.fmean(self.measured[digest])
        recorded = self.recorded.get(digest) or self.similar.get(name)
        if recorded is not None:
            start_up = statistics.fmean(self.start_up) if self.start_up else START_UP_S
            return recorded.seconds * self.speed_ratio + start_up
        if task in self.by_task:
            return statistics.fmean(self.by_task[task])
        every = [s for values in self.by_task.values() for s in values]
        return statistics.fmean(every) if every else None

    def remaining(self, pending: list[tuple[str, tuple[str, str, str]]]) -> tuple[float, int]:
        """(seconds, cells without an estimate) for the pending cells, as (config digest, (task, strategy,
        profile))."""
        total, unknown = 0.0, 0
        for digest, name in pending:
            seconds = self.estimate(digest, name)
            if seconds is None:
                unknown += 1
            else:
                total += seconds
        return total, unknown


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m harness.run.eta RUN_DIR  (rewrites harness/run/recorded_times.json)")
    print(f"recorded {record(Path(sys.argv[1]))} cell config(s) into {RECORDED_TIMES}")
