"""The shipped smoke suite (tasks/suites/smoke.toml: real MiniLM and SmolLM2, 20 cells) under the Ray
executor on a local instance with two CPUs gives the same cells, statuses and metrics as the local
executor. About four minutes on two CPU cores; the tiny-model version is tests/test_ray.py."""

from __future__ import annotations

import io

import pytest

from harness.config import load_matrix
from harness.results.io import read_results
from harness.run.executor import run_matrix
from tests.helpers import ROOT

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # real models, minutes: `make test PYTEST_ARGS="-m slow"`


def test_the_smoke_suite_under_ray_matches_the_local_executor(tmp_path, monkeypatch):
    from harness.run.ray_executor import RayExecutor

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # Ray workers start with the driver's environment
    matrix = load_matrix([ROOT / "tasks/suites/smoke.toml"])
    assert len(matrix.cells) == 20
    run_matrix(matrix, tmp_path / "local", io.StringIO())
    run_matrix(matrix, tmp_path / "ray", io.StringIO(), executor=RayExecutor(num_cpus=2, cpus_per_cell=2))
    local = {r["cell_id"]: r for r in read_results(tmp_path / "local")}
    remote = {r["cell_id"]: r for r in read_results(tmp_path / "ray")}
    assert local.keys() == remote.keys() == {c.cell_id for c in matrix.cells}
    for cell_id, result in local.items():
        assert result["status"] == remote[cell_id]["status"] == "ok", (result["error"], remote[cell_id]["error"])
        assert remote[cell_id]["metrics"] == pytest.approx(result["metrics"], rel=1e-6), result["task"]
        assert remote[cell_id]["executor"]["name"] == "ray" and result.get("executor") is None
