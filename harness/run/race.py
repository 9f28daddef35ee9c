"""`tunebench pick`: which strategy for this task, with evidence, at a fraction of the full path's cost.

The full path is every rate of every strategy's grid trained in full on the validation carve (the
grid search), then three seeds of each strategy's chosen rate on eval. `pick` does instead:

1. **A race** of (strategy, learning rate) pairs on the validation carve of the training rows, never
   on eval, by successive halving. Every pair of a strategy's grid trains for a ninth of the planned
   steps (rung 0); after each rung, Optuna's SuccessiveHalvingPruner (one study per strategy,
   reduction factor 3) keeps the best third of that strategy's surviving rates, at least one, for the
   next rung, a third of the planned steps, where strategies are compared. Pairs are dropped, never
   strategies: each strategy's best rate reaches the comparison rung. Rung cells are ordinary trial
   cells (`training.max_steps` set to the rung's budget, the learning rate and the carve as a search
   trial's): resumable, shardable, run by any executor. A run started again replays the finished rungs
   from their result files and runs none of them again.
2. **Finals only where they decide.** The leader at the comparison rung and every strategy within
   validation noise of it (the paired test on the validation items) run on eval with FINAL_SEEDS
   seeds at their best rate and full budget; the others run once; the untuned `none` once, as the
   learning checks' reference.
3. **The pick** is `recommend` on the finals (learning checks, ties, mixed seed counts, the memory and
   metric limits), and RUN_DIR/pick.json records the race, the choice and the cost of each phase in
   cell-seconds beside what the full path would have cost, estimated from this run's own step times.

`--max-memory` drops a strategy from the race once a rung cell's pre-flight estimate or measured peak
exceeds it; `--budget-hours` stops promoting once the race's cell-hours reach it and picks among what
ran, listing what did not.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results.io import cell_result_path, phase_seconds, read_result, write_json_atomic
from harness.run.search import final_cell, resolve_cell
from harness.specs import CellSpec, SearchSpec
from harness.strategies import STRATEGIES

REDUCTION = 3  # successive halving's reduction factor: a third of the rates, and a third more budget, per rung
RUNGS = 2  # rung budgets: planned steps / 9 and / 3; strategies are compared at the last
MIN_RUNG_STEPS = 2  # a lower rung shorter than this is left out
FINAL_SEEDS = 3
PICK_FILE = "pick.json"


def rung_budgets(planned: int) -> list[int]:
    """Training steps per rung: [planned/9, planned/3] (floors), fewer rungs where they would be shorter
    than MIN_RUNG_STEPS; at least one rung of at least one step."""
    budgets = [planned // REDUCTION ** (RUNGS - k) for k in range(RUNGS)]
    kept = [b for b in budgets if b >= MIN_RUNG_STEPS]
    return kept or [max(1, budgets[-1])]


def planned_steps_of(cell: CellSpec) -> int:
    """The planned optimizer steps of `cell` (a trial: on its training rows less the carve)."""
    from harness.data import load_task_data
    from harness.run.train import planned_steps
    from harness.scenarios import SCENARIOS

    scenario = SCENARIOS.get(cell.task.task.scenario)
    data = load_task_data(cell.task, scenario.required_fields(cell.task.scenario), scenario.fields)
    return planned_steps(len(data.train), cell.task.training)


@dataclass(frozen=True)
class Entry:
    """One (strategy, learning rate) pair of the race."""

    strategy: str
    rate: float


@dataclass
class RaceState:
    """What the race did: each pair's validation score per rung budget, the pairs dropped and why."""

    budgets: list[int]
    planned: int = 0  # the comparison rung's reference: planned steps of a full trial on the carve
    scores: dict[Entry, dict[int, float | None]] = field(default_factory=dict)  # budget -> score (None: failed)
    cells: dict[Entry, dict[int, str]] = field(default_factory=dict)  # budget -> cell id
    pruned: dict[Entry, int] = field(default_factory=dict)  # pair -> the budget after which it was dropped
    excluded: dict[str, str] = field(default_factory=dict)  # strategy -> why it left the race
    not_run: list[str] = field(default_factory=list)  # rung cells the budget left out, as labels
    stopped_by_budget: bool = False

    def best(self, strategy: str, higher: bool) -> tuple[Entry, float] | None:
        """The strategy's best pair at the highest rung any of its pairs reached, and its score."""
        mine = {e: s for e, s in self.scores.items() if e.strategy == strategy}
        for budget in reversed(self.budgets):
            scored = [(e, s[budget]) for e, s in mine.items() if s.get(budget) is not None]
            if scored:
                return max(scored, key=lambda item: item[1] if higher else -item[1])  # type: ignore[arg-type,return-value,operator]
        return None

    def record(self) -> dict[str, Any]:
        return {
            "budgets_steps": self.budgets,
            "planned_steps": self.planned,
            "pairs": [
                {
                    "strategy": e.strategy,
                    "learning_rate": e.rate,
                    "scores": {str(b): s for b, s in sorted(self.scores[e].items())},
                    "cells": {str(b): c for b, c in sorted(self.cells.get(e, {}).items())},
                    "pruned_after_steps": self.pruned.get(e),
                }
                for e in sorted(self.scores, key=lambda e: (e.strategy, e.rate))
            ],
            "excluded": self.excluded,
            "not_run": self.not_run,
            "stopped_by_budget": self.stopped_by_budget,
        }


def rung_cell(base: CellSpec, rate: float, steps: int, planned: int, validation: float) -> CellSpec:
    """A trial cell of `base`'s strategy at `rate`, trained for `steps` (all of its planned steps when equal)."""
    extra: dict[str, Any] = {"training.learning_rate": rate, "data.validation": validation}
    if steps < planned:
        extra["training.max_steps"] = steps
    return resolve_cell(base, base.seed, extra)


def _result(run_dir: Path, cell: CellSpec) -> dict | None:
    path = cell_result_path(run_dir, cell.cell_id)
    return read_result(path) if path.exists() else None


def _over_memory(result: dict | None, limit: int | None) -> str | None:
    if limit is None or result is None or result.get("status") != "ok":
        return None
    estimate = ((result.get("preflight") or {}).get("total_bytes")) or 0
    peak = ((result.get("memory") or {}).get("peak_bytes")) or 0
    if max(estimate, peak) > limit:
        which = "measured peak" if peak >= estimate else "pre-flight estimate"
        return f"its {which} ({max(estimate, peak) / 2**30:.2f} GiB) exceeds --max-memory ({limit / 2**30:.2f} GiB)"
    return None


def run_race(
    bases: list[CellSpec],
    run: Callable[[list[CellSpec]], None],
    run_dir: Path,
    validation: float = SearchSpec().validation,
    max_memory: int | None = None,
    budget_s: float | None = None,
) -> RaceState:
    """Race every base cell's strategy over its grid (see the module docstring); `run` runs a list of
    cells (skipping those already finished in `run_dir`)."""
    try:
        import optuna
    except ImportError:
        raise ValueError("the race needs optuna: pip install 'tunebench[search]'") from None

    from harness.metrics import higher_is_better

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    higher = higher_is_better(bases[0].task.primary_metric)
    planned = planned_steps_of(resolve_cell(bases[0], bases[0].seed, {"data.validation": validation}))
    state = RaceState(rung_budgets(planned), planned)
    studies, trials, alive = {}, {}, {}
    for base in bases:
        grid = sorted(STRATEGIES.get(base.registered).search_grid)
        study = optuna.create_study(
            direction="maximize" if higher else "minimize",
            pruner=optuna.pruners.SuccessiveHalvingPruner(
                min_resource=state.budgets[0], reduction_factor=REDUCTION, min_early_stopping_rate=0
            ),
        )
        studies[base.strategy] = study
        for rate in grid:
            study.enqueue_trial({"learning_rate": rate})
            trial = study.ask()
            trial.suggest_categorical("learning_rate", grid)
            entry = Entry(base.strategy, rate)
            trials[entry], alive[entry] = trial, base
            state.scores[entry] = {}
    spent = 0.0
    for index, budget in enumerate(state.budgets):
        cells = {e: rung_cell(base, e.rate, budget, planned, validation) for e, base in alive.items()}
        if budget_s is not None and spent >= budget_s:
            state.stopped_by_budget = True
            state.not_run += [c.label + f" ({budget} steps)" for c in cells.values()]
            break
        run(list(cells.values()))
        results = {e: _result(run_dir, c) for e, c in cells.items()}
        spent += sum(phase_seconds(r) for r in results.values())
        for entry, cell in cells.items():
            result = results[entry]
            score = result.get("primary_value") if result and result["status"] == "ok" else None
            state.scores[entry][budget] = score
            state.cells.setdefault(entry, {})[budget] = cell.cell_id
            if (why := _over_memory(result, max_memory)) and entry.strategy not in state.excluded:
                state.excluded[entry.strategy] = why
        last = index == len(state.budgets) - 1
        for strategy, study in studies.items():
            mine = [e for e in alive if e.strategy == strategy]
            if strategy in state.excluded:
                for entry in mine:
                    study.tell(trials[entry], state=optuna.trial.TrialState.PRUNED)
                    state.pruned[entry] = budget
                    del alive[entry]
                continue
            # best first: the pruner compares each pair with those checked before it at this rung, so
            # this order makes its asynchronous rule (ASHA) the synchronous one: the top third is kept
            ordered = sorted(
                mine,
                key=lambda e: (
                    state.scores[e][budget] is None,
                    -(state.scores[e][budget] or 0) if higher else (state.scores[e][budget] or 0),
                    e.rate,
                ),
            )
            for entry in ordered:
                score = state.scores[entry][budget]
                trial = trials[entry]
                if score is None or (isinstance(score, float) and math.isnan(score)):
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    state.pruned[entry] = budget
                    del alive[entry]
                    continue
                trial.report(score, budget)
                if last:
                    study.tell(trial, score)
                elif trial.should_prune():
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    state.pruned[entry] = budget
                    del alive[entry]
    return state


def contenders(state: RaceState, run_dir: Path, higher: bool) -> tuple[str | None, dict[str, float | None]]:
    """The leader at the comparison rung and, per other strategy, the p-value of the paired test on the
    validation items against it (None where the items do not pair)."""
    from harness.results.items import read_items
    from harness.results.significance import paired_test

    best = {}
    for strategy in sorted({e.strategy for e in state.scores}):
        if strategy in state.excluded:
            continue
        found = state.best(strategy, higher)
        if found is not None:
            best[strategy] = found
    if not best:
        return None, {}
    leader = max(best, key=lambda s: (best[s][1] if higher else -best[s][1], s))  # type: ignore[operator]

    def items(strategy: str):
        entry = best[strategy][0]
        budget = max(b for b, s in state.scores[entry].items() if s is not None)
        result = read_result(cell_result_path(run_dir, state.cells[entry][budget]))
        record = result.get("items") or {}
        path = run_dir / "cells" / result["cell_id"] / record.get("file", "")
        return (
            (read_items(path) if record.get("file") and path.exists() else None),
            record.get("measure"),
            record.get("metric"),
        )

    leader_items, measure, metric = items(leader)
    p_values: dict[str, float | None] = {}
    for strategy in best:
        if strategy == leader:
            continue
        mine, my_measure, my_metric = items(strategy)
        test = (
            paired_test({0: mine}, {0: leader_items}, measure, 1, metric)
            if mine is not None and leader_items is not None and (my_measure, my_metric) == (measure, metric)
            else None
        )
        p_values[strategy] = None if test is None else test.p_value
    return leader, p_values


def final_cells(
    bases: list[CellSpec], state: RaceState, leader: str | None, p_values: dict[str, float | None], higher: bool
) -> list[CellSpec]:
    """The eval cells: FINAL_SEEDS seeds for the leader and every strategy within validation noise of it
    (p >= LEVEL, or items that do not pair), one seed for the others; `none` is `untuned_cell`'s."""
    from harness.results.significance import LEVEL

    cells = []
    for base in bases:
        if base.strategy in state.excluded:
            continue
        found = state.best(base.strategy, higher)
        if found is None:
            continue
        entry, score = found
        p_value = p_values.get(base.strategy)
        contending = base.strategy == leader or p_value is None or p_value >= LEVEL
        selection = {
            "method": "race",
            "learning_rate": entry.rate,
            "metric": base.task.primary_metric,
            "validation_score": score,
            "p_value_vs_leader": p_value,
            "leader": leader,
        }
        for seed in range(FINAL_SEEDS if contending else 1):
            seeded = resolve_cell(base, seed, {})
            cells.append(final_cell(seeded, selection))
    return cells


def untuned_cell(task_cell: CellSpec) -> CellSpec:
    """The `none` cell of the task, seed 0: the learning checks' reference."""
    return resolve_cell(task_cell, 0, {}, strategy="none")


def full_path_seconds(
    state: RaceState, run_dir: Path, finals: list[CellSpec], planned: int, grids: dict[str, int]
) -> dict[str, float]:
    """What the full path would have cost here, in cell-seconds, from this run's own measured times: each
    of a strategy's `grids[strategy]` rates trained for all `planned` steps on the carve (its rung cells'
    time per step, and their load and validation time), and FINAL_SEEDS final cells per strategy (its
    final cells' mean time)."""
    per_step: dict[str, list[float]] = {}
    fixed: dict[str, list[float]] = {}
    for entry, cells in state.cells.items():
        for cell_id in cells.values():
            measured = read_result(cell_result_path(run_dir, cell_id))
            steps = int((measured.get("training") or {}).get("steps") or 0)
            if measured["status"] != "ok" or not steps:
                continue
            train_s = float((measured.get("timing") or {}).get("train_seconds") or 0.0)
            per_step.setdefault(entry.strategy, []).append(train_s / steps)
            fixed.setdefault(entry.strategy, []).append(phase_seconds(measured) - train_s)
    final_s: dict[str, list[float]] = {}
    for cell in finals:
        result = _result(run_dir, cell)
        if result is not None and result["status"] == "ok" and cell.strategy in grids:
            final_s.setdefault(cell.strategy, []).append(phase_seconds(result))
    grid = sum(grids[s] * (planned * _mean(per_step[s]) + _mean(fixed[s])) for s in per_step)
    seeds = sum(FINAL_SEEDS * _mean(values) for values in final_s.values())
    return {"grid_search": grid, "final_seeds": seeds, "total": grid + seeds}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def write_pick(run_dir: Path, record: dict[str, Any]) -> None:
    write_json_atomic(run_dir / PICK_FILE, record)
