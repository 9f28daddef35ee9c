"""Run each cell in its own process; a crash, kill or out-of-memory loses that cell only."""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psutil

from harness.data import warm_cache
from harness.models import prepare_models
from harness.results.io import cell_result_path, read_result, write_json_atomic, write_result
from harness.run.cell import TRACEBACK_LINES, failed_result
from harness.run.eta import Eta
from harness.run.launch import CellProcess, launch, wait_until_warm, warm_up
from harness.run.progress import ProgressDisplay
from harness.specs import CellSpec, Matrix

POLL_S = 0.2


@dataclass
class Outcome:
    cell: CellSpec
    status: str
    seconds: float
    skipped: bool = False


def _tail(path: Path, lines: int = TRACEBACK_LINES) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _watch(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:  # finished already
        return None


def _tree_rss(process: psutil.Process | None) -> int:
    if process is None:
        return 0
    try:
        members = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in members)
    except psutil.Error:
        return 0


def _kill(child: CellProcess) -> None:
    """Kill the cell's whole session (it and anything it started) and reap it."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:  # gone already, or a warm cell killed before it made its session
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
    child.wait()


def run_one(cell: CellSpec, run_dir: Path, matrix: Matrix) -> str:
    """Run `cell` in a child process and make sure a result file exists afterwards; returns its status."""
    cell_dir = run_dir / "cells" / cell.cell_id
    cell_dir.mkdir(parents=True, exist_ok=True)
    log_path = cell_dir / "log.txt"
    request = {
        "task_path": str(cell.task.path),
        "cell_id": cell.cell_id,
        "resolved": cell.resolved(),
        "plugins": list(matrix.plugins),
        "selection": cell.selection,
        "price_per_device_hour": matrix.price_per_device_hour,
    }
    request_path = cell_dir / "request.json"
    write_json_atomic(request_path, request)
    result_path = cell_result_path(run_dir, cell.cell_id)
    result_path.unlink(missing_ok=True)  # a stale failure from an earlier attempt
    limit_bytes = matrix.cell_memory_limit_mb * 2**20 if matrix.cell_memory_limit_mb else None
    started = time.monotonic()
    verdict: tuple[str, str, str] | None = None  # (status, error type, message) decided here
    child = launch(run_dir, request_path, log_path)
    try:
        watched = _watch(child.pid)
        while child.poll() is None:
            time.sleep(POLL_S)
            if limit_bytes and (rss := _tree_rss(watched)) > limit_bytes:
                verdict = (
                    "oom",
                    "OutOfMemory",
                    f"resident set {rss / 2**20:.0f} MiB exceeded the cell limit "
                    f"of {matrix.cell_memory_limit_mb} MiB; killed",
                )
            elif matrix.cell_timeout_s and time.monotonic() - started > matrix.cell_timeout_s:
                verdict = ("timeout", "Timeout", f"ran longer than {matrix.cell_timeout_s:g} s; killed")
            if verdict:
                _kill(child)
    except BaseException:  # Ctrl-C or an error here: the cell's own session must not outlive us
        _kill(child)
        raise
    code = child.wait()
    if verdict is None and result_path.exists():
        return read_result(result_path)["status"]
    if verdict is None:
        if code < 0:
            name = signal.Signals(-code).name
            hint = " (the kernel's out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
            verdict = ("killed", "Killed", f"cell process killed by {name}{hint}")
        else:
            verdict = ("failed", "ProcessExit", f"cell process exited with status {code} without a result")
    result_path.unlink(missing_ok=True)
    write_result(run_dir, failed_result(cell, *verdict, _tail(log_path)))
    return verdict[0]


def _name(cell: CellSpec) -> tuple[str, str, str]:
    """What a cell's recorded time may stand in for when its own config has none; a trial (a search or a
    race rung, on other rows and budgets) stands for nothing recorded."""
    return (cell.task.name, cell.strategy, "trial" if cell.is_trial else cell.profile)


def _eta_text(eta: Eta, pending: list[CellSpec]) -> str:
    """'ETA 12m30s' from the pending cells' own estimates (harness.run.eta); 'done' when none is left."""
    if not pending:
        return "done"
    seconds, unknown = eta.remaining([(cell.config_digest, _name(cell)) for cell in pending])
    if unknown == len(pending):
        return "ETA unknown"
    return f"ETA {_duration(seconds)}" + (f" (+{unknown} cell(s) not yet estimable)" if unknown else "")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _slot(task: str, strategy: str, seed: int, trial: tuple | None) -> tuple:
    """What one result stands for in the tables: a (task, strategy, seed), or a search trial of one at its
    (learning rate, step cap, rung): a race's rungs are trials of one rate stopped at several steps."""
    return (task, strategy, seed, trial)


def set_aside_stale(matrix: Matrix, run_dir: Path, stream: TextIO) -> None:
    """Move results of an earlier config of the same (task, strategy, seed, trial) to RUN_DIR/stale/, so that
    tables never mix two configs of one cell; nothing is deleted."""
    wanted = {
        _slot(
            c.task.name,
            c.strategy,
            c.seed,
            (c.task.training.learning_rate, c.task.training.max_steps, c.task.training.stop_after_steps)
            if c.is_trial
            else None,
        ): c.cell_id
        for c in matrix.cells
    }
    moved = 0
    for path in sorted((run_dir / "cells").glob("*.json")):
        result = read_result(path)
        search = result.get("search") or {}
        trial = (
            (search.get("learning_rate"), search.get("max_steps"), search.get("stop_after_steps"))
            if search.get("role") == "trial"
            else None
        )
        key = _slot(result["task"], result["strategy"], result["seed"], trial)
        if key in wanted and wanted[key] != result["cell_id"]:
            stale = run_dir / "stale"
            stale.mkdir(exist_ok=True)
            path.rename(stale / path.name)
            if (folder := path.with_suffix("")).is_dir():
                folder.rename(stale / folder.name)
            moved += 1
    if moved:
        print(f"moved {moved} result(s) of an earlier config to {run_dir / 'stale'}", file=stream)


Runner = Callable[[CellSpec, Path, Matrix], str]


class Executor(abc.ABC):
    """Runs cells and reports each one's status as it finishes; the run folder, resume, the progress
    line and the summary are the caller's (run_matrix), whichever executor runs the cells. Every
    cell's result file is in RUN_DIR/cells/ once `run` has yielded it."""

    name = "base"

    def prepare(self) -> None:
        """Called before the runner prepares data and models for the cells, so that slow start-up
        (a warm cell server, a cluster connection) overlaps with it. By default there is none."""
        return None

    def ready(self) -> None:
        """Called just before the first cell, once data and models are prepared: wait out what `prepare`
        started, so that the first cell's time (and the ETA built on it) holds that cell alone."""
        return None

    @abc.abstractmethod
    def run(self, cells: list[CellSpec], run_dir: Path, matrix: Matrix) -> Iterator[tuple[CellSpec, str]]:
        """Run `cells`, yielding (cell, status) as each finishes, its result file written."""


class LocalExecutor(Executor):
    """The embedded default: one cell at a time, each in its own child process on this machine."""

    name = "local"

    def __init__(self, runner: Runner = run_one) -> None:
        self.runner = runner

    def prepare(self) -> None:
        warm_up()  # the cell server imports torch while the data and models are prepared

    def ready(self) -> None:
        wait_until_warm()  # so that the first cell's start-up figure is its own, as every other's

    def run(self, cells: list[CellSpec], run_dir: Path, matrix: Matrix) -> Iterator[tuple[CellSpec, str]]:
        self.ready()  # at once when run_matrix has already waited
        for cell in cells:
            yield cell, self.runner(cell, run_dir, matrix)


def run_matrix(
    matrix: Matrix,
    run_dir: Path,
    stream: TextIO | None = None,
    runner: Runner = run_one,
    executor: Executor | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> list[Outcome]:
    """Run every cell not already finished ok in `run_dir` (through `executor`, default: local with
    `runner`), printing a line per finished cell with the run's ETA (harness.run.eta) and, on a terminal,
    the running cell's progress under it (harness.run.progress). `on_result` gets each finished cell's
    result once it is written (e.g. harness.track's publisher)."""
    stream = stream or sys.stderr
    executor = executor or LocalExecutor(runner)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_aside_stale(matrix, run_dir, stream)
    outcomes: list[Outcome] = []
    todo = []
    for cell in matrix.cells:
        path = cell_result_path(run_dir, cell.cell_id)
        if path.exists() and read_result(path)["status"] == "ok":
            outcomes.append(Outcome(cell, "ok", 0.0, skipped=True))
        else:
            todo.append(cell)
    total = len(matrix.cells)
    if todo:
        executor.prepare()
    warm_cache([cell.task for cell in todo])  # parse each task's source once, here, not in every cell
    prepare_models([cell.task for cell in todo], stream)  # and de-quantise GGUF models before any cell
    if outcomes:
        print(f"resuming: {len(outcomes)} of {total} cells already done in {run_dir}", file=stream)
    if todo:
        executor.ready()
    timed: list[float] = []
    last = time.monotonic()  # from here, each cell's time is its own
    eta = Eta()
    pending = {cell.cell_id: cell for cell in todo}
    if todo and (first := _eta_text(eta, todo)) != "ETA unknown":
        print(f"before the first cell: {first}, from recorded times", file=stream)
    finished = executor.run(todo, run_dir, matrix) if todo else iter(())
    with ProgressDisplay(stream, [(c.label, run_dir / "cells" / c.cell_id) for c in todo]) as display:
        for index, (cell, status) in enumerate(finished, start=len(outcomes) + 1):
            now = time.monotonic()
            timed.append(now - last)  # with parallel executors: the time since the previous cell finished
            last = now
            outcomes.append(Outcome(cell, status, timed[-1]))
            pending.pop(cell.cell_id, None)
            result_path = cell_result_path(run_dir, cell.cell_id)
            result = read_result(result_path) if result_path.exists() else None
            eta.finished(cell.config_digest, cell.task.name, timed[-1], result)
            display.finished(
                cell.label,
                f"[{index:>{len(str(total))}}/{total}] {status:<7} {cell.label:<40} {_duration(timed[-1]):>7}  "
                f"{_eta_text(eta, list(pending.values()))}",
            )
            if on_result is not None and result is not None:
                on_result(result)
    return outcomes
