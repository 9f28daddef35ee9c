"""The Ray executor (`--executor ray`, `pip install 'tunebench[ray]'`): each cell is a Ray task.

A task runs on a Ray worker with the resources the suite asks for per cell, and inside it the cell runs
exactly as the local executor runs it: in its own process (forked from the worker's warm server, see
harness.run.launch, so a reused worker starts cells as fast as the local executor does), under the same
timeout and memory limit. With TUNEBENCH_CELL_START=spawn each task gets a fresh worker process instead
(`max_calls=1`). On the driver's own node the cell writes straight into the run folder; on any other node
it writes into a temporary folder there, the task returns the cell's files (result, per-item results,
weights, log) and the driver writes them into the run folder, so the folder needs no shared file system.
Losing the worker or the node retries the task (`max_retries`); a Python exception inside the cell is an
ordinary failed result, recorded once and never retried.

Each result records which node (and GPUs) ran it and the most cells that ran on that node at once
during its run (`executor.cells_on_node`); throughput from a crowded node is flagged in the tables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results.io import cell_result_path, read_result, write_result
from harness.run.cell import failed_result
from harness.run.executor import Executor, run_one
from harness.run.launch import start_mode, wait_until_warm, warm_up
from harness.specs import CellSpec, Matrix, RaySpec


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError("ray: --executor ray needs it: pip install 'tunebench[ray]'") from None
    return ray


class NodeLoad:
    """A Ray actor counting the cells running on each node, and the most that ran beside each cell."""

    def __init__(self) -> None:
        self.running: dict[str, set[str]] = {}
        self.peak: dict[str, int] = {}
        self.attempts: dict[str, int] = {}

    def ready(self) -> bool:
        return True

    def enter(self, node: str, cell_id: str) -> None:
        """Count this attempt of the cell (a retried cell comes back: attempt 2, 3, ...)."""
        for members in self.running.values():
            members.discard(cell_id)  # a lost attempt never left
        members = self.running.setdefault(node, set())
        members.add(cell_id)
        self.peak[cell_id] = 0
        for member in members:
            self.peak[member] = max(self.peak.get(member, 0), len(members))
        self.attempts[cell_id] = self.attempts.get(cell_id, 0) + 1

    def leave(self, node: str, cell_id: str) -> tuple[int, int]:
        """(the most cells that ran on the node at once during this attempt, itself included; the attempt)."""
        self.running.get(node, set()).discard(cell_id)
        return self.peak.pop(cell_id, 1), self.attempts.get(cell_id, 1)


def _rebased(cell: CellSpec, working_dir: str | None) -> CellSpec:
    """The cell with its task file found in this worker's copy of the runtime_env working_dir, where the
    driver's path does not exist on this node; its relative data paths then resolve inside that copy."""
    if working_dir is None or cell.task.path.exists():
        return cell
    try:
        relative = cell.task.path.relative_to(working_dir)
    except ValueError:
        return cell  # not under the shipped folder: the cell's own check will report missing data
    return dataclasses.replace(cell, task=dataclasses.replace(cell.task, path=Path.cwd() / relative))


def _warm_worker() -> None:
    """On a Ray worker before any cell: its cell server is up and done with its imports (once per worker;
    at once when the worker was warmed or ran a cell before)."""
    warm_up()
    wait_until_warm()


def _remote_cell(cell: CellSpec, matrix: Matrix, load, working_dir: str | None, driver: tuple[str, str]) -> dict:
    """Runs on a Ray worker: the cell in a child process; returns its files. On the driver's own node the
    cell writes straight into the run folder (`driver` is its node id and run folder); elsewhere into a
    temporary folder, whose files travel back."""
    ray = _import_ray()
    node = ray.get_runtime_context().get_node_id()
    # Not awaited: a task blocked in ray.get lends its CPUs to other tasks, which would then share the node.
    load.enter.remote(node, cell.cell_id)
    _warm_worker()  # at once when this worker was warmed or ran a cell before
    files = None
    try:
        if node == driver[0] and Path(driver[1]).is_dir():
            status = run_one(_rebased(cell, working_dir), Path(driver[1]), matrix)
        else:
            with tempfile.TemporaryDirectory(prefix="tunebench-cell-") as folder:
                status = run_one(_rebased(cell, working_dir), Path(folder), matrix)
                root = Path(folder) / "cells"
                files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    finally:  # the cell is over: waiting here lends nothing that matters
        peak, attempt = ray.get(load.leave.remote(node, cell.cell_id))
    return {
        "status": status,
        "files": files,
        "executor": {
            "name": "ray",
            "node_id": node,
            "host": socket.gethostname(),
            "gpus": [str(g) for g in ray.get_gpu_ids()],
            "cells_on_node": peak,
            "attempt": attempt,
            "worker_pid": os.getpid(),
        },
    }


def ray_executor(spec: RaySpec | None, address: str | None = None) -> RayExecutor:
    """The executor for a suite's [suite.ray] settings; --ray-address wins over the suite's address."""
    spec = spec or RaySpec()
    return RayExecutor(
        address=address or spec.address,
        max_retries=spec.max_retries,
        cpus_per_cell=spec.cpus_per_cell,
        gpus_per_cell=spec.gpus_per_cell,
        memory_per_cell_mb=spec.memory_per_cell_mb,
        num_cpus=spec.num_cpus,
        runtime_env={"working_dir": spec.working_dir} if spec.working_dir else None,
    )


@dataclass
class RayExecutor(Executor):
    """Cells as Ray tasks; without `address` a local Ray instance sized to this machine is started."""

    address: str | None = None
    max_retries: int = 3
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    memory_per_cell_mb: int | None = None
    num_cpus: int | None = None  # a local instance's size (default: every CPU)
    runtime_env: dict[str, Any] | None = None  # e.g. {"working_dir": "tasks"} to ship task files and data

    name = "ray"

    _started: bool = dataclasses.field(default=False, init=False, repr=False)  # this executor started Ray
    _warming: list = dataclasses.field(default_factory=list, init=False, repr=False)  # warm-up tasks in flight

    def _connect(self):
        ray = _import_ray()
        if not ray.is_initialized():
            ray.init(
                address=self.address,
                num_cpus=None if self.address else self.num_cpus,
                runtime_env=self.runtime_env,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            self._started = True
        return ray

    def _task_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            # Cells are forked fresh from the worker's warm server, so their memory figures are their own
            # and the worker can be reused; spawned cells get a fresh worker each, as before.
            "max_calls": 0 if start_mode() == "warm" else 1,
            "max_retries": self.max_retries,  # worker or node lost
            "retry_exceptions": False,  # an error inside the cell is its result, recorded once
            "num_cpus": self.cpus_per_cell,
            "num_gpus": self.gpus_per_cell,
        }
        if self.memory_per_cell_mb:
            options["memory"] = self.memory_per_cell_mb * 2**20
        return options

    def prepare(self) -> None:
        """Connect now and warm a worker per cell slot, while the driver prepares data and models. (Warming
        every worker as it starts, through runtime_env's worker_process_setup_hook, measured slower on
        two cores: 150.9 s against 130.3 s for the smoke suite.)"""
        ray = self._connect()
        if start_mode() == "warm":
            slots = int(ray.cluster_resources().get("CPU", 1) // max(self.cpus_per_cell, 1e-9)) or 1
            warm = ray.remote(**self._task_options())(_warm_worker)
            self._warming = [warm.remote() for _ in range(min(slots, 64))]

    def run(self, cells: list[CellSpec], run_dir: Path, matrix: Matrix) -> Iterator[tuple[CellSpec, str]]:
        ray = self._connect()
        if self._warming:
            ray.wait(self._warming, num_returns=len(self._warming))  # warmed before any cell takes their slots
            self._warming = []
        driver = (ray.get_runtime_context().get_node_id(), str(Path(run_dir).resolve()))
        # This run's own: a named one shared between runs could be one the last run's end is tearing down.
        load = ray.remote(NodeLoad).options(num_cpus=0).remote()
        ray.get(load.ready.remote())  # up before any cell: a call queued to a starting actor dies with its caller
        task = ray.remote(**self._task_options())(_remote_cell)
        working_dir = (self.runtime_env or {}).get("working_dir")
        pending = {task.remote(cell, matrix, load, working_dir, driver): cell for cell in cells}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ready[0])
                try:
                    payload = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # lost more often than max_retries allows
                    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    write_result(run_dir, failed_result(cell, "killed", type(exc).__name__, message, []))
                    yield cell, "killed"
                    continue
                yield cell, _store(run_dir, cell, payload)
        finally:
            for ref in pending:  # Ctrl-C or an error: no orphaned cells keep running
                ray.cancel(ref, force=True)
            ray.kill(load)
            if self._started:
                ray.shutdown()
                self._started = False


def _store(run_dir: Path, cell: CellSpec, payload: dict[str, Any]) -> str:
    """Write the files a remote cell returned into the run folder, its result last (atomically), with
    the executor's record (a cell on the driver's node wrote its files there itself)."""
    result_name = f"{cell.cell_id}.json"
    if payload["files"] is None:
        result = read_result(cell_result_path(run_dir, cell.cell_id))
        result["executor"] = payload["executor"]
        write_result(run_dir, result)
        return payload["status"]
    for name, data in payload["files"].items():
        if name == result_name:
            continue
        target = Path(run_dir) / "cells" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    result = json.loads(payload["files"][result_name])
    result["executor"] = payload["executor"]
    write_result(run_dir, result)
    return payload["status"]
