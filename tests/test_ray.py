"""The Ray executor on a local Ray instance: same cells and figures as the local executor, retries on a
lost worker, an error recorded once, resume. (tests/test_ray_cluster.py: two nodes.)"""

from __future__ import annotations

import io
import signal
import threading
import time

import psutil
import pytest

from harness.config import load_matrix
from harness.results.io import read_results
from harness.run.executor import Executor, run_matrix
from harness.run.ray_executor import LOCAL_INSTANCE_CONFIG, RayExecutor
from tests.helpers import ROOT, TWO_RATES, running_phase, write_reviews, write_split_task, write_task

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(ROOT))  # Ray workers start with the driver's environment
        ray.init(
            num_cpus=2,
            object_store_memory=100 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
            _system_config=LOCAL_INSTANCE_CONFIG,  # as the executor starts a local instance: cells at niceness 0
        )
        yield
        ray.shutdown()


def _figures(folder):
    return {r["cell_id"]: (r["status"], r["metrics"]) for r in read_results(folder)}


def test_ray_gives_the_same_cells_and_metrics_as_the_local_executor(local_ray, tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "same", tiny_bert_dir)], strategies=("none", "full", "lora"))
    run_matrix(matrix, tmp_path / "local", io.StringIO())
    run_matrix(matrix, tmp_path / "ray", io.StringIO(), executor=RayExecutor(cpus_per_cell=2))
    local, remote = _figures(tmp_path / "local"), _figures(tmp_path / "ray")
    assert local.keys() == remote.keys() and len(local) == 3
    for cell_id, (status, metrics) in local.items():
        assert remote[cell_id][0] == status == "ok"
        assert remote[cell_id][1] == pytest.approx(metrics, rel=1e-6)
    records = [r["executor"] for r in read_results(tmp_path / "ray")]
    assert all(r["name"] == "ray" and r["attempt"] == 1 and r["cells_on_node"] == 1 for r in records)
    assert all(r["niceness"] == 0 for r in records)  # Ray's default of 15 would let any other process slow them
    assert all(r.get("executor") is None for r in read_results(tmp_path / "local"))


def test_a_cell_whose_worker_is_killed_is_retried_and_completes(local_ray, tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    body = "\n[profiles.default.training]\nepochs = 60\n"  # long enough to be killed mid-run
    matrix = load_matrix([write_task(tmp_path, "killed", tiny_bert_dir, body=body)], strategies=("full",))
    killed: list[int] = []

    def kill_first_cell():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for process in psutil.process_iter(["cmdline", "name"]):
                if "ray::CellHost" not in " ".join(process.info["cmdline"] or []) + (process.info["name"] or ""):
                    continue
                try:  # the cell host running the cell: a cell process runs under it (forked or spawned)
                    below = process.children(recursive=True)
                    running = [p for p in below if "forkserver" in " ".join(p.parent().cmdline())]
                    running += [p for p in below if "harness.run.worker" in " ".join(p.cmdline())]
                except psutil.Error:
                    continue
                if running:
                    while running_phase(tmp_path / "run") != "train" and time.monotonic() < deadline:
                        time.sleep(0.05)  # mid-run: the cell is training (a state, not a delay)
                    process.send_signal(signal.SIGKILL)
                    killed.append(process.pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_first_cell)
    killer.start()
    outcomes = run_matrix(matrix, tmp_path / "run", io.StringIO(), executor=RayExecutor(cpus_per_cell=2))
    killer.join()
    assert killed, "no Ray worker was found to kill"
    (result,) = read_results(tmp_path / "run")
    assert [o.status for o in outcomes] == ["ok"] and result["status"] == "ok"
    assert result["executor"]["attempt"] == 2 and result["executor"]["worker_pid"] != killed[0]


def test_a_cell_that_raises_is_recorded_as_failed_exactly_once(local_ray, tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    body = "\n[strategies.frozen-lower]\nlayers = 9\n"  # the tiny BERT has 4 blocks: apply() raises
    matrix = load_matrix([write_task(tmp_path, "raises", tiny_bert_dir, body=body)], strategies=("frozen-lower",))
    outcomes = run_matrix(matrix, tmp_path / "run", io.StringIO(), executor=RayExecutor(cpus_per_cell=2))
    (result,) = read_results(tmp_path / "run")
    assert [o.status for o in outcomes] == ["failed"] and result["error"]["type"] == "ValueError"
    assert "frozen-lower.layers=9" in result["error"]["message"] and result["executor"]["attempt"] == 1


class Recording(Executor):
    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def run(self, cells, run_dir, matrix):
        self.asked.extend(cell.cell_id for cell in cells)
        yield from self.inner.run(cells, run_dir, matrix)


def test_an_interrupted_ray_run_resumes_without_rerunning_finished_cells(
    local_ray, tmp_path, tiny_bert_dir, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "resume", tiny_bert_dir)], strategies=("none", "lora", "adapter"))
    first = Recording(RayExecutor(cpus_per_cell=2))
    with pytest.raises(KeyboardInterrupt):
        for index, _ in enumerate(first.run(list(matrix.cells), tmp_path / "run", matrix)):
            if index == 0:
                raise KeyboardInterrupt  # Ctrl-C after the first cell: the rest are cancelled
    done = {r["cell_id"] for r in read_results(tmp_path / "run") if r["status"] == "ok"}
    assert done
    second = Recording(RayExecutor(cpus_per_cell=2))
    outcomes = run_matrix(matrix, tmp_path / "run", io.StringIO(), executor=second)
    assert set(second.asked) == {c.cell_id for c in matrix.cells} - done
    assert [o.status for o in outcomes] == ["ok"] * 3, [r["error"] for r in read_results(tmp_path / "run")]


def test_pick_runs_its_race_and_finals_as_ray_cells(local_ray, tmp_path, tiny_bert_dir, monkeypatch, capsys):
    """`pick --executor ray`: every rung and final is an ordinary cell on Ray (its result records the
    executor), and the answer is the same kind as the local one."""
    from harness.cli import main

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_split_task(tmp_path, tiny_bert_dir, write_reviews(tmp_path), strategies_body=TWO_RATES)
    assert main(["pick", str(task), "--strategies", "lora", "--executor", "ray", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().out.startswith("pick lora (lr ")
    results = read_results(tmp_path / "run")
    roles = {(r.get("search") or {}).get("role") for r in results}
    assert len(results) >= 6 and {"trial"} <= roles, roles  # the race's rungs and the finals
    assert all(r["status"] == "ok" and r["executor"]["name"] == "ray" for r in results)


def test_ray_cells_take_a_gpu_each_where_the_cluster_has_gpus():
    """Unset, gpus_per_cell is one per cell on a cluster with GPUs (so that `--executor ray` on a GPU machine
    uses every GPU, one cell each) and none without; a set value is kept."""
    auto, cpu_only = RayExecutor(), RayExecutor(gpus_per_cell=0.0)
    assert auto.gpus({"CPU": 16.0, "GPU": 8.0}) == 1.0 and auto.gpus({"CPU": 16.0}) == 0.0
    assert cpu_only.gpus({"CPU": 16.0, "GPU": 8.0}) == 0.0
    assert RayExecutor(gpus_per_cell=0.5).gpus({"GPU": 1.0}) == 0.5
    # Slots: the scarcer of CPUs and GPUs over what a cell asks for.
    assert auto._slots({"CPU": 16.0, "GPU": 8.0}, 1.0) == 8 and auto._slots({"CPU": 2.0}, 0.0) == 2
    assert RayExecutor(cpus_per_cell=4.0)._slots({"CPU": 16.0, "GPU": 8.0}, 1.0) == 4
