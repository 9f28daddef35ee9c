"""Learning-rate search per (task, strategy), run as ordinary cells.

A trial is a cell whose overrides set `training.learning_rate` and `data.validation`: it trains on the
training rows minus a fixed validation carve and is scored on that carve, never on the eval split. Trials
are resumable like any cell (their ids hash the rate and the carve). Once a group's trials are done, its
final cells train with the best rate and are evaluated once on eval; their results record the choice.

With `trials = N` the rates come from Optuna's TPE sampler (seeded) over the grid's range, one round of
asks across all groups at a time; a resumed run replays the finished trials, so it asks the same rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.config import load_task_cells
from harness.results.io import cell_result_path, read_result
from harness.results.search import choose
from harness.run.executor import Executor, Outcome, run_matrix, run_one
from harness.schema import ConfigError, Problem
from harness.specs import CellSpec, Matrix, SearchSpec
from harness.strategies import STRATEGIES


@dataclass(frozen=True)
class Group:
    """One searched (task, strategy) and the cell it stands for (its lowest seed)."""

    cell: CellSpec
    spec: SearchSpec
    grid: tuple[float, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.cell.task.name, self.cell.strategy)


def grid_of(cell: CellSpec) -> tuple[float, ...]:
    """The rates searched for `cell`, lowest first: its `[search] learning_rates`, else its strategy's own grid."""
    listed = cell.search.learning_rates if cell.search else ()
    return tuple(sorted(listed or STRATEGIES.get(cell.registered).search_grid))


def carve_of(cell: CellSpec) -> float:
    """The validation carve that scores `cell`'s trials: its `[search] validation`, else the default."""
    return (cell.search or SearchSpec()).validation


def scored_rows_of(cell: CellSpec, limit: int | None = None) -> int:
    """The most carve rows a trial of `cell` scores: its `[search] score_rows`, the task's own
    `data.max_eval_samples` and `limit`, whichever is lowest. A share of a large pool is a large carve
    (diabetes: 20% of 143,594 rows is 28,719, scored by every trial while it trains on 960)."""
    caps = [(cell.search or SearchSpec()).score_rows, cell.task.data.max_eval_samples, limit]
    return min(c for c in caps if c is not None)


def plan(matrix: Matrix) -> list[Group]:
    """The (task, strategy) pairs to search: cells with a search whose strategy trains and has a grid."""
    groups: dict[tuple[str, str], Group] = {}
    for cell in matrix.cells:
        spec = cell.search
        strategy = STRATEGIES.get(cell.registered)
        if spec is None or cell.is_trial or not strategy.trains:
            continue
        if spec.strategies and cell.strategy not in spec.strategies:
            continue
        grid = grid_of(cell)
        if not grid:
            message = f"strategy {cell.registered!r} has no default grid; list the rates to try"
            raise ConfigError([Problem(str(cell.task.path), None, "search.learning_rates", message)])
        groups.setdefault((cell.task.name, cell.strategy), Group(cell, spec, grid))
    return list(groups.values())


def resolve_cell(cell: CellSpec, seed: int, extra: dict[str, Any], strategy: str | None = None) -> CellSpec:
    """`cell` (or its task under `strategy`) re-resolved from its task file with more overrides, as its
    worker will resolve it."""
    problems: list = []
    overrides = {**dict(cell.overrides), **extra}
    found = load_task_cells(
        cell.task.path, (strategy or cell.strategy,), (seed,), cell.profile, problems, overrides, dict(cell.variants)
    )
    if problems or not found:
        raise ConfigError(problems)
    return found[0]


def trial_cell(group: Group, learning_rate: float) -> CellSpec:
    extra = {
        "training.learning_rate": learning_rate,
        "data.validation": group.spec.validation,
        "data.max_eval_samples": scored_rows_of(group.cell),
    }
    return resolve_cell(group.cell, group.spec.seed, extra)


def _score(run_dir: Path, cell: CellSpec) -> float | None:
    path = cell_result_path(run_dir, cell.cell_id)
    if not path.exists():
        return None
    result = read_result(path)
    return result.get("primary_value") if result["status"] == "ok" else None


def _selection(group: Group, trials: list[CellSpec], run_dir: Path, method: str) -> dict[str, Any]:
    scores: dict[float, list[float | None]] = {}
    for cell in trials:
        scores.setdefault(cell.task.training.learning_rate, []).append(_score(run_dir, cell))
    chosen, means = choose(scores, group.cell.task.primary_metric)
    record: dict[str, Any] = {
        "method": method,
        "learning_rate": chosen,
        "metric": group.cell.task.primary_metric,
        "validation": group.spec.validation,
        "trials": [[rate, score] for rate, score in means.items()],
        "trial_cells": sorted({cell.cell_id for cell in trials}),
    }
    if chosen is None:
        record["note"] = "every trial failed; the strategy's default learning rate was kept"
    return record


def final_cell(cell: CellSpec, selection: dict[str, Any]) -> CellSpec:
    """`cell` with the chosen rate (re-resolved, so its id is that of the config it runs)."""
    if selection["learning_rate"] is None:
        return dataclasses.replace(cell, selection=selection)
    chosen = resolve_cell(cell, cell.seed, {"training.learning_rate": selection["learning_rate"]})
    return dataclasses.replace(chosen, search=cell.search, selection=selection)


def _optuna_rounds(
    groups: list[Group], run: Callable[[list[CellSpec]], None], run_dir: Path
) -> dict[tuple[str, str], list[CellSpec]]:
    """Budgeted search: each round asks every group's study for one rate, runs those trials, tells."""
    try:
        import optuna
    except ImportError:
        message = "a budgeted search needs optuna: pip install 'tunebench[search]'"
        raise ConfigError([Problem(str(groups[0].cell.task.path), None, "search.trials", message)]) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = {}
    for group in groups:
        higher = _higher(group)
        sampler = optuna.samplers.TPESampler(seed=group.spec.seed, n_startup_trials=min(4, group.spec.trials or 1))
        studies[group.key] = optuna.create_study(direction="maximize" if higher else "minimize", sampler=sampler)
    done: dict[tuple[str, str], list[CellSpec]] = {group.key: [] for group in groups}
    rounds = max(group.spec.trials or 0 for group in groups)
    for number in range(rounds):
        asked = []
        for group in groups:
            if number >= (group.spec.trials or 0):
                continue
            trial = studies[group.key].ask()
            rate = trial.suggest_float("learning_rate", group.grid[0], group.grid[-1], log=True)
            cell = trial_cell(group, float(f"{rate:.2g}"))  # two significant digits: readable, stable ids
            asked.append((group, trial, cell))
        run([cell for _, _, cell in asked])
        for group, trial, cell in asked:
            done[group.key].append(cell)
            score = _score(run_dir, cell)
            if score is None:
                studies[group.key].tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                studies[group.key].tell(trial, score)
    return done


def _higher(group: Group) -> bool:
    from harness.metrics import higher_is_better

    return higher_is_better(group.cell.task.primary_metric)


def run_with_search(
    matrix: Matrix,
    run_dir: Path,
    stream: TextIO,
    runner: Callable[[CellSpec, Path, Matrix], str] = run_one,
    executor: Executor | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> list[Outcome]:
    """Run the matrix; where its cells ask for a search, first the trials, then the final cells with the
    chosen learning rate. Outcomes of trials come first (their cells say `is_trial`). `on_result` gets
    each finished cell's result (harness.run.executor.run_matrix)."""
    groups = plan(matrix)
    if not groups:
        return run_matrix(matrix, run_dir, stream, runner, executor, on_result)
    outcomes: list[Outcome] = []

    def run(cells: list[CellSpec]) -> None:
        if cells:
            part = dataclasses.replace(matrix, cells=tuple(cells))
            outcomes.extend(run_matrix(part, run_dir, stream, runner, executor, on_result))

    grid = [g for g in groups if not g.spec.trials]
    budgeted = [g for g in groups if g.spec.trials]
    trials = {g.key: [trial_cell(g, rate) for rate in g.grid] for g in grid}
    print(
        f"search: learning rate of {len(groups)} (task, strategy) pair(s), trials scored on a validation "
        f"carve of the training rows; {sum(map(len, trials.values()))} grid trial(s) first",
        file=stream,
    )
    run([cell for cells in trials.values() for cell in cells])
    if budgeted:
        trials.update(_optuna_rounds(budgeted, run, run_dir))
    selections = {
        g.key: _selection(g, trials[g.key], run_dir, "optuna-tpe" if g.spec.trials else "grid") for g in groups
    }
    for key, record in selections.items():
        rate = record["learning_rate"]
        said = f"chose lr={rate:g}" if rate else record["note"]
        print(f"search: {key[0]}/{key[1]} {said}", file=stream)
    finals = [
        final_cell(cell, selections[(cell.task.name, cell.strategy)])
        if (cell.task.name, cell.strategy) in selections
        else cell
        for cell in matrix.cells
    ]
    run(finals)
    return outcomes
