"""`tunebench pick TASK`: the race (harness.run.race), the finals, the pick and its cost, as one command."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from harness.report.format import did_not_learn, human_bytes, metric_value
from harness.report.recommend import Constraints, recommend_task
from harness.results.io import cell_result_path, phase_seconds, read_result
from harness.results.significance import LEVEL
from harness.run.executor import Executor, run_matrix
from harness.run.race import (
    FINAL_SEEDS,
    PICK_FILE,
    contenders,
    drop_checkpoint,
    final_cells,
    full_path_scored_rows,
    full_path_seconds,
    planned_steps_of,
    run_race,
    untuned_cell,
    write_pick,
)
from harness.run.search import grid_of
from harness.specs import CellSpec, Matrix
from harness.strategies import STRATEGIES


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.3g} cell-hours ({seconds:,.0f} cell-seconds)"


def pick(
    matrix: Matrix,
    run_dir: Path,
    constraints: Constraints,
    budget_hours: float | None = None,
    stream: TextIO | None = None,
    executor: Executor | None = None,
) -> dict:
    """Race, run the finals, pick; write RUN_DIR/pick.json and return its record (with `answer`, the
    lines the terminal shows). Rungs and finals are ordinary cells, run by `executor` (default: local)."""
    from harness.metrics import higher_is_better
    from harness.results.table import load_aggregates

    stream = stream or sys.stderr
    bases = [c for c in matrix.cells if c.seed == 0 and STRATEGIES.get(c.registered).trains and grid_of(c)]
    if not bases:
        raise ValueError("pick needs at least one strategy that trains and has a learning-rate grid")
    higher = higher_is_better(bases[0].task.primary_metric)
    spent: dict[str, float] = {"race": 0.0, "finals": 0.0}

    def run(cells: list[CellSpec], phase: str) -> None:
        if cells:
            phase_matrix = dataclasses.replace(matrix, cells=tuple(cells))
            for outcome in run_matrix(phase_matrix, run_dir, stream, executor=executor):
                path = cell_result_path(run_dir, outcome.cell.cell_id)
                spent[phase] += phase_seconds(read_result(path)) if path.exists() else 0.0

    budget_s = None if budget_hours is None else budget_hours * 3600
    state = run_race(
        bases,
        lambda cells: run(cells, "race"),
        run_dir,
        constraints.max_memory_bytes,
        budget_s,
    )
    leader, p_values = contenders(state, run_dir, higher)
    record: dict = {"task": bases[0].task.name, "constraints": constraints.describe(), "race": state.record()}
    finals: list[CellSpec] = []
    if state.stopped_by_budget or leader is None:
        record["pick"] = None
        best = {s: state.best(s, higher) for s in {b.strategy for b in bases} if s not in state.excluded}
        shown = sorted(((s, b) for s, b in best.items() if b), key=lambda item: -item[1][1] if higher else item[1][1])
        so_far = "; ".join(f"{s} at {e.rate:g}: {metric_value(v)}" for s, (e, v) in shown) or "nothing finished"
        record["answer"] = [
            f"budget of {budget_hours:g} cell-hours reached during the race: no finals were run",
            f"best so far on validation (not eval): {so_far}",
            "not run: " + (", ".join(state.not_run) or "nothing"),
        ]
    else:
        finals = final_cells(bases, state, leader, p_values, higher) + [untuned_cell(bases[0])]
        run(finals, "finals")
        for cell in finals:  # a full run's checkpoint, once its evaluation on eval is done
            if cell.task.training.resume_from and _ok(run_dir, cell):
                drop_checkpoint(run_dir, cell.task.training.resume_from)
        seeded: list[str] = []  # the strategies given FINAL_SEEDS seeds, in the order they were
        while True:
            aggregates = load_aggregates(run_dir)
            choice = recommend_task(record["task"], aggregates[aggregates["task"] == record["task"]], constraints)
            deciding = [s for s in _deciding(choice, leader, p_values) if s not in seeded]
            more = final_cells(bases, state, leader, p_values, higher, range(1, FINAL_SEEDS), set(deciding))
            if not more:
                break
            ran = {c.seed for c in finals if c.strategy == "none"}
            more += [untuned_cell(bases[0], seed) for seed in sorted({c.seed for c in more} - ran)]
            seeded += [s for s in deciding if any(c.strategy == s for c in more)]
            run(more, "finals")
            finals += more
        record["pick"] = choice.strategy
        record["reason"] = choice.reason
        record["seeded"] = seeded
        record["answer"] = _answer(choice, aggregates, state, p_values, leader, higher, seeded)
    full = None
    if finals:
        grids = {b.strategy: len(grid_of(b)) for b in bases}
        planned = {"carve": state.planned, "full": planned_steps_of(bases[0])}
        full = full_path_seconds(state, run_dir, finals, planned, grids, full_path_scored_rows(bases[0]))
    used = spent["race"] + spent["finals"]
    record["cost"] = {
        "cell_seconds": {**spent, "total": used},
        "full_path_cell_seconds": full,
        "ratio": (used / full["total"]) if full and full["total"] else None,
        "note": "cell-seconds: each cell's load, train and evaluation phases, as its result records them; the "
        "full path (every grid rate trained in full on the carve, then 3 seeds per strategy on every training "
        "row) is estimated from this run's own per-step, load and evaluation times",
    }
    if full:
        record["answer"].append(
            f"cost: {_hours(used)} (race {spent['race']:,.0f} s, finals {spent['finals']:,.0f} s); the full path "
            f"would take about {_hours(full['total'])}: {used / full['total']:.2f}x"
        )
    write_pick(run_dir, record)
    return record


def _replaced_line(entry, why: dict) -> str:
    if why["why"] == "fell":
        return (
            f"{entry.strategy} at {entry.rate:g} fell on validation from {metric_value(why['was'])} after "
            f"{why['from_steps']} steps to {metric_value(why['score'])} after {why['after_steps']} "
            f"(p = {why['p_value']:.2g}): the next best rate took its place"
        )
    return (
        f"{entry.strategy} at {entry.rate:g} did not learn on validation ({metric_value(why['score'])} after "
        f"{why['after_steps']} steps: {', '.join(why['reasons']) or 'its learning checks failed'}): the next "
        "best rate took its place"
    )


def _ok(run_dir: Path, cell: CellSpec) -> bool:
    path = cell_result_path(run_dir, cell.cell_id)
    return path.exists() and read_result(path)["status"] == "ok"


def _deciding(choice, leader: str | None, p_values: dict[str, float | None]) -> list[str]:
    """The rows the answer rests on, which get FINAL_SEEDS seeds: the pick, and its runner-up (the best
    mean of the others if the pick has the best mean, else the best mean, which the pick was judged
    against) unless the race already told the two apart: the pick led on validation and the runner-up
    fell short of it beyond noise (the paired test on the validation items), so eval and validation
    agree on their order and the runner-up runs once."""
    if choice.strategy is None:
        return []
    runner_up = [s for s in choice.ranked if s != choice.strategy][:1]
    p_value = p_values.get(runner_up[0]) if runner_up else None
    if choice.strategy == leader and p_value is not None and p_value < LEVEL:
        return [choice.strategy]
    return [choice.strategy] + runner_up


def _answer(choice, aggregates, state, p_values, leader, higher, seeded) -> list[str]:
    """'pick lora (lr 0.003): macro_f1 0.930 ± 0.010 over 3 seeds; ...' and the lines that support it."""
    rows = aggregates.set_index("strategy")
    lines = []
    if choice.strategy is None:
        lines.append(f"no pick: {choice.reason}")
    else:
        row = rows.loc[choice.strategy]
        found = state.best(choice.strategy, higher)
        rate = f" (lr {found[0].rate:g})" if found else ""
        lines.append(
            f"pick {choice.strategy}{rate}: {row['primary_metric']} "
            f"{metric_value(row['primary_value_mean'], row['primary_value_std'])} over {int(row['n'])} seed(s), "
            f"{human_bytes(row.get('peak_memory_bytes_mean'))} peak memory"
        )
        lines.append(choice.reason)
    for strategy in sorted(set(rows.index) - {"none"}):
        row = rows.loc[strategy]
        if did_not_learn(row):
            found = state.best(strategy, higher)
            rate = (
                f" at the rate the race chose ({found[0].rate:g}, best on validation after "
                f"{max(b for b, v in state.scores[found[0]].items() if v is not None)} of {state.planned} steps)"
                if found
                else ""
            )
            lines.append(f"{strategy} did not learn{rate}: {row.get('learning_reasons')}")
    for entry, why in sorted(state.replaced.items(), key=lambda item: (item[0].strategy, item[0].rate)):
        lines.append(_replaced_line(entry, why))
    for strategy in sorted({e.strategy for e in state.scores} - set(state.excluded)):
        if all(e in state.replaced for e in state.scores if e.strategy == strategy):
            lines.append(f"{strategy}: no rate learned on validation at the full budget (every rate of its grid tried)")
    for strategy, why in sorted(state.excluded.items()):
        lines.append(f"{strategy} left the race: {why}")
    contending = [s for s, p in p_values.items() if p is None or p >= LEVEL]
    lines.append(
        f"race: leader on validation {leader}; within validation noise of it: {', '.join(sorted(contending)) or 'none'}"
    )
    lines.append(
        f"finals: {', '.join(seeded) or 'none'} {FINAL_SEEDS} seeds on eval (each the pick, or its runner-up "
        "where the race did not separate them, at some point); others 1 seed"
    )
    return lines


__all__ = ["PICK_FILE", "pick"]
