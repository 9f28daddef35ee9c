"""`tunebench pick`: which strategy for this task, with evidence, at a fraction of the full path's cost.

The full path is every rate of every strategy's grid trained in full on the validation carve (the
grid search), then three seeds of each strategy's chosen rate on eval. `pick` does instead:

1. **A race** of (strategy, learning rate) pairs on the validation carve of the training rows, never
   on eval, by successive halving. Rungs are prefixes of the full run: every rung trains with the full
   run's schedule (warm-up and decay over all the planned steps) and stops early, and a promoted pair
   continues from its rung's checkpoint (weights, optimizer, schedule, data order, dropout RNG), so that
   its last rung is exactly the full run. Every pair of a strategy's grid trains for a ninth of the
   planned steps (rung 0); successive halving (reduction factor 3) keeps the best third of that
   strategy's rates, at least one, for a third of the steps, and the best third of those for all of
   them, where strategies are compared. A rung where no strategy has two pairs left decides nothing
   and is passed: its pairs go on to the full budget at once. Pairs are dropped, never strategies.
   A pair whose validation score falls from one rung to the next beyond noise (the paired test on the
   validation items) has diverged, and one whose full-budget cell fails its own learning checks on
   the validation items (`harness.results.learning`: no better than the trivial reference beyond
   noise, one class or answer for nearly every item, a flat or diverging training loss) has not
   learned: either gives its place to the strategy's best dropped pair, which continues from its
   checkpoint. Short rungs favour the fastest learner, which is often the rate that later collapses,
   and where nothing has learned yet they rank by noise; so a strategy is tried rate after rate until
   one learns, or its grid is spent ("did not learn at any rate tried"). An earlier rule asked
   instead for a gain over the pair's first rung beyond noise: on a small carve that has no power
   (ToMi's 64 items: 0.484 -> 0.531 after 4 and 12 steps is no gain), and a model already good at the
   first rung cannot gain much, so ToMi's race sent 12 of its 16 pairs to the full budget (11 of them
   passed their learning checks), and pick cost 0.85x the full path.
   Ties on validation go to the lower training loss, then the lower rate: Optuna's
   SuccessiveHalvingPruner, which the first version used, keeps every tied pair, and a small model at
   chance on a small carve ties often (all four rates of the tests' tiny model went to the full
   budget, and the race cost 1.03x the full path's estimate).
   Every rung scores on the same fixed subset of the carve (at most RACE_SCORE_ROWS rows).
   The grid and the carve are the full path's: the task's `[search] learning_rates` (else each
   strategy's own grid) and `[search] validation`.
   Rung cells are ordinary trial cells (`training.stop_after_steps`, `training.resume_from`, the rate
   and the carve): resumable, shardable, run by any executor. A run started again replays the finished
   rungs from their result files and runs none of them again.
2. **Finals only where they decide.** Every strategy the race kept is evaluated on eval once: seed 0
   is the race's own full run, evaluated on eval (`data.score_on = "eval"`, resumed from its
   checkpoint with no step left), so this costs scoring only. The untuned `none` runs at seed 0, as
   the learning checks' reference, and at each seed the finals add, since a tuned cell is compared
   with the untuned cell of its own seed. Then `recommend` picks, and the two rows its answer rests
   on, the pick and its runner-up, get FINAL_SEEDS seeds (the seeds after 0 train afresh on the
   race's rows, the carve left out, at the race's rate); this repeats until the pick and its
   runner-up both have them.
   The runner-up is left at one seed where the race already told the two apart: the pick led on
   validation and the runner-up fell short of it beyond noise (the others run once, as the issue's
   rule has it). On one seed against three, `recommend`'s prediction interval is wide enough that a
   runner-up is nearly always "within noise" on eval (squad: full 0.291 against frozen-lower's
   0.479 ± 0.075 on eval, and 0.471 against 0.586 on validation, p = 0.04), so eval alone rarely
   spares it.
   The issue's first rule, FINAL_SEEDS seeds for every strategy within validation noise of the
   leader, spent 8 of spam's 13 final cells on a four-way tie on validation (272 cell-seconds of pick
   against the full path's 501); the answer only needs the seeds of the rows it compares.
3. **The pick** is `recommend` on the finals (learning checks, ties, mixed seed counts: a one-seed row
   is judged against seeded ones by their prediction interval, the memory and metric limits), and
   RUN_DIR/pick.json records the race, the choice and the cost of each phase in cell-seconds beside
   what the full path would have cost, estimated from this run's own step times.

`--max-memory` drops a strategy from the race once a rung cell's pre-flight estimate or measured peak
exceeds it; `--budget-hours` stops promoting once the race's cell-hours reach it and picks among what
ran, listing what did not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results.io import cell_result_path, phase_seconds, read_result, write_json_atomic
from harness.run.search import carve_of, grid_of, resolve_cell, scored_rows_of
from harness.specs import CellSpec

REDUCTION = 3  # successive halving's reduction factor: a third of the rates, and three times the steps, per rung
RUNGS = 3  # rung budgets: planned steps / 9, / 3 and all of them, where strategies are compared
MIN_RUNG_STEPS = 2  # a lower rung shorter than this is left out
RACE_SCORE_ROWS = 256  # every rung scores on at most this many rows of the carve (the same ones each time)
FINAL_SEEDS = 3
PICK_FILE = "pick.json"


def rung_budgets(planned: int) -> list[int]:
    """Training steps per rung: [planned/9, planned/3, planned] (floors), the lower rungs left out where
    they would be shorter than MIN_RUNG_STEPS (or not shorter than the next)."""
    budgets = [planned // REDUCTION ** (RUNGS - 1 - k) for k in range(RUNGS)]
    lower = [b for b in budgets[:-1] if MIN_RUNG_STEPS <= b < planned]
    return sorted(set(lower)) + [max(1, planned)]


def _rows(cell: CellSpec):
    from harness.data import load_task_data
    from harness.scenarios import SCENARIOS

    scenario = SCENARIOS.get(cell.task.task.scenario)
    return load_task_data(cell.task, scenario.required_fields(cell.task.scenario), scenario.fields)


def planned_steps_of(cell: CellSpec) -> int:
    """The planned optimizer steps of `cell` (a trial: on its training rows less the carve)."""
    from harness.run.train import planned_steps

    return planned_steps(len(_rows(cell).train), cell.task.training)


def full_path_scored_rows(base: CellSpec) -> int:
    """The carve rows each of the full path's grid trials scores (`--search`'s cap, not the race's)."""
    extra = {"data.validation": carve_of(base), "data.max_eval_samples": scored_rows_of(base)}
    return len(_rows(resolve_cell(base, base.seed, extra)).eval)


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
    replaced: dict[Entry, dict] = field(default_factory=dict)  # pair -> why the next rate took its place
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
                    "replaced": self.replaced.get(e),
                }
                for e in sorted(self.scores, key=lambda e: (e.strategy, e.rate))
            ],
            "excluded": self.excluded,
            "not_run": self.not_run,
            "stopped_by_budget": self.stopped_by_budget,
        }


def rung_cell(base: CellSpec, rate: float, steps: int, previous: str | None) -> CellSpec:
    """A trial cell of `base`'s strategy at `rate` on the full run's schedule, stopped after `steps` (a
    checkpoint, no weights folder), continuing the `previous` rung cell's checkpoint where given. It
    scores on at most RACE_SCORE_ROWS rows of the carve, a fixed subset (the task's `max_eval_samples`
    or its `[search] score_rows`, if lower, stands): scoring spam's whole carve (822 rows) took 3.1 s of
    a first-rung cell whose 6 training steps took 1.2-3 s, and every rung scoring the same rows keeps
    their items paired across rungs and pairs."""
    extra: dict[str, Any] = {
        "training.learning_rate": rate,
        "data.validation": carve_of(base),
        "data.max_eval_samples": scored_rows_of(base, RACE_SCORE_ROWS),
        "training.stop_after_steps": steps,
        "training.save_weights": False,
    }
    if previous is not None:
        extra["training.resume_from"] = previous
    return resolve_cell(base, base.seed, extra)


def drop_checkpoint(run_dir: Path, cell_id: str | None) -> None:
    """A rung's checkpoint once nothing will continue it (its pair was dropped, or it was continued)."""
    from harness.run.cell import checkpoint_path

    if cell_id is not None:
        checkpoint_path(run_dir / "cells", cell_id).unlink(missing_ok=True)


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
    max_memory: int | None = None,
    budget_s: float | None = None,
) -> RaceState:
    """Race every base cell's strategy over its grid (see the module docstring); `run` runs a list of
    cells (skipping those already finished in `run_dir`)."""
    from harness.metrics import higher_is_better

    higher = higher_is_better(bases[0].task.primary_metric)
    planned = planned_steps_of(resolve_cell(bases[0], bases[0].seed, {"data.validation": carve_of(bases[0])}))
    state = RaceState(rung_budgets(planned), planned)
    alive: dict[Entry, CellSpec] = {}
    for base in bases:
        for rate in grid_of(base):
            alive[Entry(base.strategy, rate)] = base
            state.scores[Entry(base.strategy, rate)] = {}
    spent = 0.0
    for index, budget in enumerate(state.budgets):
        last = index == len(state.budgets) - 1
        per_strategy = [sum(e.strategy == s for e in alive) for s in {e.strategy for e in alive}]
        if not last and max(per_strategy, default=0) <= 1:
            continue  # nothing left to decide at this rung: each pair goes on to the full budget at once
        losses: dict[Entry, float | None] = {}
        batch = dict(alive)
        while batch:  # the rung's pairs, then any that take the place of a pair that fell or did not learn
            previous = {e: _latest(state, e) for e in batch}
            cells = {e: rung_cell(base, e.rate, budget, previous[e]) for e, base in batch.items()}
            if budget_s is not None and spent >= budget_s:
                state.stopped_by_budget = True
                state.not_run += [c.label + f" ({budget} steps)" for c in cells.values()]
                _drop_checkpoints(state, run_dir, None)
                return state
            run(list(cells.values()))
            results = {e: _result(run_dir, c) for e, c in cells.items()}
            spent += sum(phase_seconds(r) for r in results.values())
            for entry, cell in cells.items():
                result = results[entry]
                ok = bool(result) and result["status"] == "ok"  # type: ignore[index]
                score = result.get("primary_value") if ok else None  # type: ignore[union-attr]
                state.scores[entry][budget] = None if isinstance(score, float) and math.isnan(score) else score
                losses[entry] = ((result or {}).get("training") or {}).get("final_loss") if ok else None
                state.cells.setdefault(entry, {})[budget] = cell.cell_id
                drop_checkpoint(run_dir, previous[entry])  # continued: this rung's checkpoint supersedes it
                if (why := _over_memory(result, max_memory)) and entry.strategy not in state.excluded:
                    state.excluded[entry.strategy] = why
            batch = {}
            for entry in cells:
                if entry.strategy in state.excluded:
                    continue
                if (replaced := _replaced(state, run_dir, entry, budget, higher, last)) is None:
                    continue
                state.replaced[entry] = replaced
                state.pruned[entry] = budget
                del alive[entry]
                if (substitute := _substitute(state, entry.strategy, higher)) is not None:
                    del state.pruned[substitute]
                    alive[substitute] = batch[substitute] = next(b for b in bases if b.strategy == entry.strategy)
        for strategy in {e.strategy for e in alive}:
            mine = [e for e in alive if e.strategy == strategy]
            if strategy in state.excluded:
                kept: list[Entry] = []
            else:
                scored = [e for e in mine if state.scores[e].get(budget) is not None]
                # best first; a tie goes to the lower training loss, then the lower rate
                scored.sort(
                    key=lambda e: (
                        -state.scores[e][budget] if higher else state.scores[e][budget],  # type: ignore[operator]
                        losses.get(e) if losses.get(e) is not None else math.inf,
                        e.rate,
                    )
                )
                kept = scored if last else scored[: max(1, len(mine) // REDUCTION)]
            for entry in mine:
                if entry not in kept:
                    state.pruned[entry] = budget
                    del alive[entry]
    _drop_checkpoints(state, run_dir, higher)
    return state


def _replaced(state: RaceState, run_dir: Path, entry: Entry, budget: int, higher: bool, last: bool) -> dict | None:
    """Why a pair gives its place to its strategy's next rate, or None: its validation score at `budget`
    fell from its previous rung's beyond noise (it diverged on the way, like adapter at 1e-2 on spam:
    0.946 macro-F1 after 6 of 60 steps, 0.467 after 60; the paired test on the validation items), or,
    at the full budget (`last`), its cell failed its own learning checks on the validation items (it
    did not learn, like adapter at 3e-4 on sentiment: 0.498 after 60 steps, at chance)."""
    from harness.results.significance import LEVEL, paired_test

    now = state.scores[entry].get(budget)
    if now is None:
        return None
    reached = sorted(b for b in state.cells.get(entry, {}) if b < budget and state.scores[entry].get(b) is not None)
    if reached:
        before = reached[-1]
        was = state.scores[entry][before]
        fell = was > now if higher else was < now  # type: ignore[operator]
        if fell:
            (a, measure, metric), (b, _, _) = (_cell_items(run_dir, state.cells[entry][k]) for k in (budget, before))
            test = paired_test({0: a}, {0: b}, measure, 1, metric) if a is not None and b is not None else None
            if test is not None and test.p_value < LEVEL:
                return {
                    "why": "fell",
                    "after_steps": budget,
                    "from_steps": before,
                    "score": now,
                    "was": was,
                    "p_value": test.p_value,
                }
    if not last:
        return None
    learning = (read_result(cell_result_path(run_dir, state.cells[entry][budget])).get("learning")) or {}
    if learning.get("learned") is False:
        reasons = [r["code"] for r in learning.get("reasons") or []]
        return {"why": "not_learned", "after_steps": budget, "score": now, "reasons": reasons}
    return None


def _substitute(state: RaceState, strategy: str, higher: bool) -> Entry | None:
    """The strategy's best dropped pair that did not fall: the furthest rung it reached, then its score
    there; it continues from its checkpoint in the place of one that fell or did not learn."""
    candidates = []
    for entry, _ in state.pruned.items():
        if entry.strategy != strategy or entry in state.replaced:
            continue
        reached = max((b for b, v in state.scores[entry].items() if v is not None), default=None)
        if reached is not None:
            score = state.scores[entry][reached]
            candidates.append((reached, score if higher else -score, -entry.rate, entry))  # type: ignore[operator]
    return max(candidates, key=lambda c: c[:3])[3] if candidates else None


def _drop_checkpoints(state: RaceState, run_dir: Path, keep_for: bool | None) -> None:
    """Once the race is over, every rung's checkpoint but the full runs the finals evaluate: each
    strategy's best pair's at the full budget (`keep_for`: whether higher is better; None keeps none)."""
    top, kept = state.budgets[-1], set()
    if keep_for is not None:
        for strategy in {e.strategy for e in state.scores}:
            if (found := state.best(strategy, keep_for)) is not None:
                kept.add(state.cells.get(found[0], {}).get(top))
    for cells in state.cells.values():
        for cell_id in cells.values():
            if cell_id not in kept:
                drop_checkpoint(run_dir, cell_id)


def _latest(state: RaceState, entry: Entry) -> str | None:
    """The cell of the pair's highest rung so far (whose checkpoint the next rung continues)."""
    cells = state.cells.get(entry, {})
    return cells[max(cells)] if cells else None


def _cell_items(run_dir: Path, cell_id: str) -> tuple[list[dict] | None, str | None, str | None]:
    """A cell's per-item results (None where it kept none), their measure and metric."""
    from harness.results.items import read_items

    result = read_result(cell_result_path(run_dir, cell_id))
    record = result.get("items") or {}
    path = run_dir / "cells" / cell_id / record.get("file", "")
    found = read_items(path) if record.get("file") and path.exists() else None
    return found, record.get("measure"), record.get("metric")


def contenders(state: RaceState, run_dir: Path, higher: bool) -> tuple[str | None, dict[str, float | None]]:
    """The leader at the comparison rung and, per other strategy, the p-value of the paired test on the
    validation items against it (None where the items do not pair)."""
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
        return _cell_items(run_dir, state.cells[entry][budget])

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
    bases: list[CellSpec],
    state: RaceState,
    leader: str | None,
    p_values: dict[str, float | None],
    higher: bool,
    seeds: range = range(1),
    strategies: set[str] | None = None,
) -> list[CellSpec]:
    """The eval cells of `seeds` for each strategy of `strategies` (default: every one the race kept) at
    its race rate: each trains on the race's rows (the carve left out) and scores on eval; seed 0 is
    the race's own full run, resumed from its checkpoint with no step left, where it reached the full
    budget. `none` is `untuned_cell`'s."""
    cells = []
    top = state.budgets[-1]
    for base in bases:
        if base.strategy in state.excluded or (strategies is not None and base.strategy not in strategies):
            continue
        found = state.best(base.strategy, higher)
        if found is None:
            continue
        entry, score = found
        selection = {
            "method": "race",
            "learning_rate": entry.rate,
            "metric": base.task.primary_metric,
            "validation_score": score,
            "p_value_vs_leader": p_values.get(base.strategy),
            "leader": leader,
        }
        for seed in seeds:
            extra: dict[str, Any] = {
                "training.learning_rate": entry.rate,
                "data.validation": carve_of(base),
                "data.score_on": "eval",
            }
            if seed == base.seed and state.scores[entry].get(top) is not None:
                extra["training.resume_from"] = state.cells[entry][top]
            cells.append(dataclasses.replace(resolve_cell(base, seed, extra), selection=selection))
    return cells


def untuned_cell(task_cell: CellSpec, seed: int = 0) -> CellSpec:
    """The `none` cell of the task at `seed`: the learning checks' reference for the tuned cells of that
    seed (a tuned cell is compared with the untuned cell of its own seed, whose classification head is
    that seed's)."""
    return resolve_cell(task_cell, seed, {}, strategy="none")


def full_path_seconds(
    state: RaceState,
    run_dir: Path,
    finals: list[CellSpec],
    planned: dict[str, int],
    grids: dict[str, int],
    scored_rows: int,
) -> dict[str, float]:
    """What the full path would have cost here, in cell-seconds, from this run's own measured times: each
    of a strategy's `grids[strategy]` rates trained for all `planned["carve"]` steps on the carve and
    scored on `scored_rows` rows of it, and FINAL_SEEDS cells per strategy trained for all
    `planned["full"]` steps on every training row and scored on eval. A step costs the strategy's mean
    measured time per step (its rung and final cells); loading costs its cells' mean load time; a
    validation row costs its rung cells' mean scoring time per row (they score at most RACE_SCORE_ROWS,
    the grid's trials up to `[search] score_rows`); eval costs its final cells' mean eval time."""
    per_step: dict[str, list[float]] = {}
    load: dict[str, list[float]] = {}
    per_row: dict[str, list[float]] = {}  # validation scoring, seconds per carve row (rung cells)
    per_eval: dict[str, list[float]] = {}  # eval scoring, seconds per cell (final cells)

    def measure(strategy: str, result: dict | None, final: bool) -> None:
        if result is None or result["status"] != "ok":
            return
        timing = result.get("timing") or {}
        steps = int((result.get("training") or {}).get("steps_this_cell") or 0)
        if steps:
            per_step.setdefault(strategy, []).append(float(timing.get("train_seconds") or 0.0) / steps)
        load.setdefault(strategy, []).append(float(timing.get("load_seconds") or 0.0))
        seconds = float(timing.get("eval_seconds") or 0.0)
        rows = int((result.get("data") or {}).get("eval_rows") or 0)
        if final:
            per_eval.setdefault(strategy, []).append(seconds)
        elif rows:
            per_row.setdefault(strategy, []).append(seconds / rows)

    for entry, cells in state.cells.items():
        for cell_id in cells.values():
            measure(entry.strategy, read_result(cell_result_path(run_dir, cell_id)), final=False)
    for cell in finals:
        measure(cell.strategy, _result(run_dir, cell), final=True)
    grid = seeds = 0.0
    for strategy, grid_size in grids.items():
        if strategy not in per_step:
            continue
        step, loading = _mean(per_step[strategy]), _mean(load[strategy])
        grid += grid_size * (loading + planned["carve"] * step + scored_rows * _mean(per_row.get(strategy, [])))
        seeds += FINAL_SEEDS * (loading + planned["full"] * step + _mean(per_eval.get(strategy, [])))
    return {"grid_search": grid, "final_seeds": seeds, "total": grid + seeds}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def write_pick(run_dir: Path, record: dict[str, Any]) -> None:
    write_json_atomic(run_dir / PICK_FILE, record)
