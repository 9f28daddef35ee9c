"""Two Ray nodes simulated in one machine: cells land on both, and the task folder reaches the workers
through runtime_env (the driver's copy is moved away before the cells start)."""

from __future__ import annotations

import io
import shutil

import pytest

from harness.config import load_matrix
from harness.results.io import read_results
from harness.run.executor import run_matrix
from harness.run.ray_executor import RayExecutor
from tests.helpers import ROOT, write_task

ray = pytest.importorskip("ray")


def test_a_matrix_runs_on_both_nodes_of_a_cluster_with_its_task_folder_shipped(tmp_path, tiny_bert_dir, monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    folder = tmp_path / "tasks"
    folder.mkdir()
    shutil.copy(ROOT / "tasks/data/sentiment/train.jsonl", folder / "train.jsonl")
    shutil.copy(ROOT / "tasks/data/sentiment/eval.jsonl", folder / "eval.jsonl")
    task = write_task(folder, "shipped", tiny_bert_dir)
    text = task.read_text().replace(f"{ROOT}/tasks/data/sentiment/train.jsonl", "train.jsonl")
    task.write_text(text.replace(f"{ROOT}/tasks/data/sentiment/eval.jsonl", "eval.jsonl"))  # relative paths
    matrix = load_matrix([task], strategies=("none", "full", "adapter", "lora"))

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "object_store_memory": 80 * 2**20,
            "include_dashboard": False,
            "_system_config": {"worker_niceness": 0},  # what the README asks of a cluster
        },
    )
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    try:
        ray.init(address=cluster.address, runtime_env={"working_dir": str(folder)}, log_to_driver=False)
        moved = tmp_path / "moved-away"
        folder.rename(moved)  # the workers can only find the task and its data in their runtime_env copy
        executor = RayExecutor(cpus_per_cell=1, runtime_env={"working_dir": str(folder)})
        outcomes = run_matrix(matrix, tmp_path / "run", io.StringIO(), executor=executor)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert [o.status for o in outcomes] == ["ok"] * 4, [r["error"] for r in read_results(tmp_path / "run")]
    results = read_results(tmp_path / "run")
    assert len({r["executor"]["node_id"] for r in results}) == 2  # both nodes ran cells
    assert {r["cell_id"] for r in results} == {c.cell_id for c in matrix.cells}
