"""Self-contained cells and the executor interface: a cell pickles, its worker needs no task file and
re-checks the cell id, and run_matrix works the same through any executor."""

from __future__ import annotations

import io
import os
import pickle

import pytest

from harness.config import load_matrix
from harness.results.io import read_result, read_results
from harness.run.executor import Executor, run_matrix, run_one
from tests.helpers import ROOT, write_task


def test_a_cell_pickles_whole(tmp_path, tiny_bert_dir):
    cells = load_matrix([write_task(tmp_path, "p", tiny_bert_dir)]).cells
    for cell in cells:
        copy = pickle.loads(pickle.dumps(cell))
        assert (
            copy == cell
            and copy.cell_id == cell.cell_id
            and dict(copy.task.data.fields)
            == {
                "text": "review",
                "label": "sentiment",
            }
        )


def test_the_worker_runs_the_resolved_cell_without_its_task_file(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "gone", tiny_bert_dir)
    matrix = load_matrix([task], strategies=("none",))
    task.unlink()  # a cluster node may not have the task file: the worker gets the resolved config
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "ok"


def test_a_worker_whose_data_differ_refuses_the_cell(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    data = tmp_path / "train.jsonl"
    data.write_text((ROOT / "tasks/data/sentiment/train.jsonl").read_text())
    task = write_task(tmp_path, "moved", tiny_bert_dir)
    task.write_text(task.read_text().replace(f"{ROOT}/tasks/data/sentiment/train.jsonl", str(data)))
    matrix = load_matrix([task], strategies=("none",))
    data.write_text(data.read_text().replace("good", "bad", 1))  # the data changed under the cell
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "failed"
    result = read_result(tmp_path / "run" / "cells" / f"{matrix.cells[0].cell_id}.json")
    assert "exited with status 3" in result["error"]["message"]
    assert any("does not resolve to the same config here" in line for line in result["error"]["traceback_tail"])


class Backwards(Executor):
    """A stand-in for a parallel executor: finishes the cells in reverse order."""

    name = "backwards"

    def run(self, cells, run_dir, matrix):
        for cell in reversed(cells):
            yield cell, run_one(cell, run_dir, matrix)


def test_run_matrix_is_the_same_whichever_executor_runs_the_cells(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "e", tiny_bert_dir)], strategies=("none", "lora"))
    stream = io.StringIO()
    outcomes = run_matrix(matrix, tmp_path / "run", stream, executor=Backwards())
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert [o.cell.strategy for o in outcomes] == ["lora", "none"]
    assert "[2/2] ok" in stream.getvalue()
    resumed = run_matrix(matrix, tmp_path / "run", io.StringIO(), executor=Backwards())
    assert all(o.skipped for o in resumed) and len(read_results(tmp_path / "run")) == 2


def test_warm_and_spawned_cells_give_the_same_metrics_and_record_their_start(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "modes", tiny_bert_dir)], strategies=("none", "full"))
    results = {}
    for mode in ("warm", "spawn"):
        monkeypatch.setenv("TUNEBENCH_CELL_START", mode)
        run_matrix(matrix, tmp_path / mode, io.StringIO())
        results[mode] = {r["cell_id"]: r for r in read_results(tmp_path / mode)}
    assert results["warm"].keys() == results["spawn"].keys() and len(results["warm"]) == 2
    for cell_id, warm in results["warm"].items():
        spawned = results["spawn"][cell_id]
        assert warm["status"] == spawned["status"] == "ok" and warm["metrics"] == spawned["metrics"]
        assert warm["startup"]["mode"] == "warm" and spawned["startup"]["mode"] == "spawn"
        for startup in (warm["startup"], spawned["startup"]):  # which start is faster: benchmarks/test_cell_startup.py
            assert 0 <= startup["launch_to_cell_s"] <= startup["launch_to_first_step_s"]
            expected = startup["launch_to_first_step_s"] - startup["load_s"]
            assert startup["spawn_to_first_step_s"] == pytest.approx(expected) and startup["load_s"] > 0


def test_a_script_without_a_main_guard_runs_its_matrix_once(tmp_path, tiny_bert_dir):
    """A forked cell is not told the runner's __main__, so an unguarded script is not run again per cell."""
    import subprocess
    import sys

    task = write_task(tmp_path, "script", tiny_bert_dir)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import io\n"
        "from harness.config import load_matrix\n"
        "from harness.run.executor import run_matrix\n"
        "from pathlib import Path\n"
        f"outcomes = run_matrix(load_matrix([{str(task)!r}], strategies=('none',)), Path({str(tmp_path / 'run')!r}), "
        "io.StringIO())\n"
        "print('ran', [o.status for o in outcomes])\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # the suite's own temporary folders and cache
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["ran ['ok']"]


def test_a_bad_start_mode_is_a_one_line_error(monkeypatch):
    from harness.run.launch import start_mode

    monkeypatch.setenv("TUNEBENCH_CELL_START", "thread")
    with pytest.raises(ValueError, match="TUNEBENCH_CELL_START: 'thread' is not one of warm, spawn"):
        start_mode()
