"""The Ray executor (`--executor ray`, `pip install 'tunebench[ray]'`): cells run on cell hosts, Ray actors.

A cell host is a Ray actor that holds one cell slot (the resources the suite asks for per cell) on one
node for the run. When it starts, its cell server imports torch, transformers and peft once (see
harness.run.launch); every cell the slot runs is then a fresh process forked from that server, under the
same timeout and memory limit as the local executor's, so memory figures stay per cell. (Plain Ray tasks
land on whichever idle worker Ray picks, and Ray starts and reclaims workers as it likes: in the smoke
suite cells waited ~5 s for a fresh worker's server, two or three times per run.) Hosts are spread over
the nodes; the driver hands each free host the next cell. On the driver's own node the cell writes
straight into the run folder; on any other node it writes into a temporary folder there, the call
returns the cell's files (result, per-item results, weights, log) and the driver writes them into the
run folder, so the folder needs no shared file system. Losing a host's process or node restarts the host
(on another node if need be) and retries the cell there (`max_retries` per cell); a Python exception
inside the cell is an ordinary failed result, recorded once and never retried.

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
from harness.run.launch import wait_until_warm, warm_up
from harness.specs import CellSpec, Matrix, RaySpec

# A local instance this executor starts: no prestarted task workers, which cell hosts (actors, each in a
# worker process of its own) would never use, while they took CPU from the hosts warming up.
# Ray starts its workers at niceness 15, where anything else on the machine slows a cell more than it slows
# a local one: cells on a local instance run at 0, as the local executor's do (on a cluster, start the nodes
# with RAY_worker_niceness=0; each result records the niceness its cell ran at).
LOCAL_INSTANCE_CONFIG = {"enable_worker_prestart": False, "worker_niceness": 0}


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


class CellHost:
    """A Ray actor holding one cell slot for the run: its cell server warms up as the actor starts, while
    the driver prepares data and models, and forks each cell the slot runs."""

    def __init__(self) -> None:
        _warm_worker()

    def ready(self) -> bool:
        return True

    def run(self, cell: CellSpec, matrix: Matrix, load, working_dir: str | None, driver: tuple[str, str]) -> dict:
        return _remote_cell(cell, matrix, load, working_dir, driver)


def _remote_cell(cell: CellSpec, matrix: Matrix, load, working_dir: str | None, driver: tuple[str, str]) -> dict:
    """Runs on a cell host: the cell in a child process; returns its files. On the driver's own node the
    cell writes straight into the run folder (`driver` is its node id and run folder); elsewhere into a
    temporary folder, whose files travel back."""
    ray = _import_ray()
    node = ray.get_runtime_context().get_node_id()
    load.enter.remote(node, cell.cell_id)  # not awaited: the cell starts at once
    _warm_worker()  # at once: the host warmed its server when it started
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
            "niceness": os.nice(0),
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
    gpus_per_cell: float | None = None  # None: 1 where the cluster has GPUs, else 0 (see gpus())
    memory_per_cell_mb: int | None = None
    num_cpus: int | None = None  # a local instance's size (default: every CPU)
    runtime_env: dict[str, Any] | None = None  # e.g. {"working_dir": "tasks"} to ship task files and data

    name = "ray"

    _started: bool = dataclasses.field(default=False, init=False, repr=False)  # this executor started Ray
    _hosts: list = dataclasses.field(default_factory=list, init=False, repr=False)  # cell hosts, one per slot

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
                **({} if self.address else {"_system_config": LOCAL_INSTANCE_CONFIG}),
            )
            self._started = True
        return ray

    def gpus(self, resources: dict[str, float]) -> float:
        """GPUs per cell: as set, or one per cell when the cluster (`ray.cluster_resources()`) has any, so
        that `--executor ray` on a GPU machine runs one cell per GPU without further settings."""
        if self.gpus_per_cell is not None:
            return self.gpus_per_cell
        return 1.0 if resources.get("GPU", 0) >= 1 else 0.0

    def _host_options(self, gpus: float) -> dict[str, Any]:
        options: dict[str, Any] = {
            "num_cpus": self.cpus_per_cell,
            "num_gpus": gpus,
            "max_restarts": -1,  # a host whose process or node is lost comes back (elsewhere if need be) ...
            "max_task_retries": self.max_retries,  # ... and retries its cell, at most this often per cell
            "scheduling_strategy": "SPREAD",  # slots over every node
        }
        if self.memory_per_cell_mb:
            options["memory"] = self.memory_per_cell_mb * 2**20
        return options

    def _slots(self, resources: dict[str, float], gpus: float) -> int:
        """Cells the cluster can run at once with each cell's resources (at most 64)."""
        slots = [64]
        if self.cpus_per_cell > 0:
            slots.append(int(resources.get("CPU", 0) // self.cpus_per_cell))
        if gpus > 0:
            slots.append(int(resources.get("GPU", 0) // gpus))
        return max(1, min(slots))

    def prepare(self) -> None:
        """Connect and start a cell host per slot now: their cell servers warm up while the driver
        prepares data and models."""
        ray = self._connect()
        if not self._hosts:
            resources = ray.cluster_resources()
            gpus = self.gpus(resources)
            host = ray.remote(**self._host_options(gpus))(CellHost)
            self._hosts = [host.remote() for _ in range(self._slots(resources, gpus))]

    def run(self, cells: list[CellSpec], run_dir: Path, matrix: Matrix) -> Iterator[tuple[CellSpec, str]]:
        ray = self._connect()
        self.prepare()  # at once when the runner prepared this executor
        hosts, self._hosts = self._hosts, []
        driver = (ray.get_runtime_context().get_node_id(), str(Path(run_dir).resolve()))
        # This run's own: a named one shared between runs could be one the last run's end is tearing down.
        load = ray.remote(NodeLoad).options(num_cpus=0).remote()
        ray.get(load.ready.remote())  # up before any cell: a call queued to a starting actor dies with its caller
        working_dir = (self.runtime_env or {}).get("working_dir")
        queue, free = list(cells), list(hosts[: len(cells)])
        for spare in hosts[len(cells) :]:
            ray.kill(spare)
        pending: dict[Any, tuple[CellSpec, Any]] = {}
        try:
            while queue or pending:
                while queue and free:
                    host = free.pop(0)
                    cell = queue.pop(0)
                    pending[host.run.remote(cell, matrix, load, working_dir, driver)] = (cell, host)
                if not pending:  # every host is gone for good: nothing can run the rest
                    cell = queue.pop(0)
                    write_result(run_dir, failed_result(cell, "killed", "RayActorError", "no cell host left", []))
                    yield cell, "killed"
                    continue
                ready, _ = ray.wait(list(pending), num_returns=1)
                cell, host = pending.pop(ready[0])
                try:
                    payload = ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # lost more often than max_retries allows
                    if not isinstance(exc, ray.exceptions.RayActorError):
                        free.append(host)
                    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    write_result(run_dir, failed_result(cell, "killed", type(exc).__name__, message, []))
                    yield cell, "killed"
                    continue
                free.append(host)
                yield cell, _store(run_dir, cell, payload)
        finally:
            for host in hosts:  # Ctrl-C or an error: killing a host ends its running cell too
                ray.kill(host)
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
