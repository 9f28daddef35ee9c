"""MLflow: each run folder a parent run, each cell a nested run (`--track mlflow[=TRACKING_URI]`).

With no URI the store is embedded: SQLite at `mlflow.db` beside the run folder (so the runs under
`reports/` share one store), artifacts in `mlartifacts/` beside it; nothing needs to be started and
nothing leaves the machine. With a URI, any tracking server (`http://host:5000`) or store.

A cell's run holds: params (task, scenario, strategy, seed, profile, model, the resolved training
settings and strategy options, data source and digests), metrics (every figure `load_results` has,
the metrics, the training loss per step and the periodic evaluations as step series), tags (cell id,
status, git commit, device, learned, search role, the run folder) and artifacts (the result JSON, the
per-item file, the weights with --track-weights). The parent gets the HTML report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.track.base import SINKS, Sink, cell_metrics, cell_series

EXPERIMENT = "tunebench"
RUN_DIR_TAG, CELL_TAG = "tunebench.run_dir", "tunebench.cell_id"
PARAM_LIMIT = 6000  # characters MLflow keeps of a param value


def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(f"{prefix}.{key}", inner))
        return out
    return {prefix: value}


def cell_params(result: dict) -> dict[str, str]:
    """What a cell's nested run records as params."""
    config = result.get("config") or {}
    task = config.get("task") or {}
    data = result.get("data") or {}
    params: dict[str, Any] = {
        "task": result["task"],
        "scenario": result.get("scenario"),
        "strategy": result["strategy"],
        "seed": result.get("seed"),
        "profile": result.get("profile"),
        "model": (task.get("model") or {}).get("source"),
        "data.source": data.get("source"),
        "data.train": data.get("train"),
        "data.train_sha256": data.get("train_sha256"),
        "data.eval_sha256": data.get("eval_sha256"),
        "data_sha256": config.get("data_sha256"),
    }
    params.update(_flat("training", task.get("training") or {}))
    params.update(_flat("option", config.get("options") or {}))
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else str(v))[:PARAM_LIMIT] for k, v in params.items()}


def cell_tags(result: dict, run_dir: Path) -> dict[str, str]:
    provenance = result.get("provenance") or {}
    learning = result.get("learning") or {}
    tags = {
        CELL_TAG: result["cell_id"],
        RUN_DIR_TAG: str(run_dir.resolve()),
        "status": result["status"],
        "git_commit": provenance.get("git_commit"),
        "device": provenance.get("device_name") or provenance.get("device"),
        "search_role": (result.get("search") or {}).get("role") or "final",
        "branch": provenance.get("git_branch"),
        "mlflow.runName": f"{result['task']}/{result['strategy']}/seed{result.get('seed')}",
    }
    if "learned" in learning:
        tags["learned"] = str(learning["learned"]).lower()
    return {k: str(v) for k, v in tags.items() if v is not None}


@SINKS.register("mlflow")
class MlflowSink(Sink):
    def __init__(self, run_dir: Path, target: str | None, weights: bool = False) -> None:
        super().__init__(run_dir, target, weights)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")  # the publisher retries; fail fast
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        store = self.run_dir.resolve().parent
        self.uri = target or f"sqlite:///{store / 'mlflow.db'}"
        self.artifacts = _artifact_root(self.uri)
        self._client = None
        self._parent: str | None = None

    def describe(self) -> str:
        return self.uri

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(EXPERIMENT, artifact_location=self.artifacts)

    def _runs(self, extra: str = "") -> list:
        where = f"tags.`{RUN_DIR_TAG}` = '{self.run_dir.resolve()}'" + extra
        return self.client.search_runs([self._experiment()], filter_string=where, max_results=10000)

    def parent(self) -> str:
        """The parent run of this run folder: found by its tag (a resumed run or a replay reuses it)."""
        if self._parent is None:
            found = [r for r in self._runs(" and tags.role = 'matrix'")]
            if found:
                self._parent = found[0].info.run_id
            else:
                tags = {RUN_DIR_TAG: str(self.run_dir.resolve()), "role": "matrix", "mlflow.runName": self.run_dir.name}
                self._parent = self.client.create_run(self._experiment(), tags=tags).info.run_id
        return self._parent

    def start(self, info: dict[str, Any]) -> None:
        parent = self.parent()
        params = {k: str(v)[:PARAM_LIMIT] for k, v in info.items() if v is not None}
        existing = self.client.get_run(parent).data.params
        from mlflow.entities import Param

        new = [Param(k, v) for k, v in params.items() if k not in existing]
        if new:
            self.client.log_batch(parent, params=new)

    def has_cell(self, cell_id: str) -> bool:
        return bool(self._runs(f" and tags.`{CELL_TAG}` = '{cell_id}'"))

    def log_cell(self, result: dict, cell_dir: Path) -> None:
        from mlflow.entities import Metric, Param

        for old in self._runs(f" and tags.`{CELL_TAG}` = '{result['cell_id']}'"):
            self.client.delete_run(old.info.run_id)  # a rerun of the cell (resume): the newer result wins
        tags = {**cell_tags(result, self.run_dir), "mlflow.parentRunId": self.parent()}
        run_id = self.client.create_run(self._experiment(), tags=tags).info.run_id
        stamp = _timestamp(result)
        metrics = [Metric(k, v, stamp, 0) for k, v in cell_metrics(result).items()]
        for key, points in cell_series(result).items():
            metrics.extend(Metric(key, value, stamp, step) for step, value in points)
        params = [Param(k, v) for k, v in cell_params(result).items()]
        for start in range(0, len(params), 100):  # MLflow's limits per batch: 100 params, 1,000 metrics
            self.client.log_batch(run_id, params=params[start : start + 100])
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        result_file = cell_dir.with_suffix(".json")
        if result_file.is_file():
            self.client.log_artifact(run_id, str(result_file))
        items = cell_dir / "items.jsonl.gz"
        if items.is_file():
            self.client.log_artifact(run_id, str(items))
        if self.weights and (cell_dir / "weights").is_dir():
            self.client.log_artifacts(run_id, str(cell_dir / "weights"), "weights")
        self.client.set_terminated(run_id, "FINISHED" if result["status"] == "ok" else "FAILED")

    def finish(self, report: Path | None) -> None:
        parent = self.parent()
        if report is not None and report.is_file():
            self.client.log_artifact(parent, str(report))
        self.client.set_terminated(parent, "FINISHED")


def _timestamp(result: dict) -> int:
    """Milliseconds since the epoch of the cell's finish (MLflow's metric timestamp)."""
    import time

    text = result.get("finished_at")
    try:
        return int(time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S%z")) * 1000) if text else 0
    except ValueError:
        return 0


def _artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store's file (`mlartifacts/`); None for
    a server or another store, whose own setting decides (MLflow's fallback, `./mlruns` in the working
    folder, is never used for a file store)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def store_uri(text: str) -> str:
    """A store named on the command line: a tracking URI as is, an `mlflow.db` file (or a folder holding
    one, such as `reports/`) as its SQLite URI."""
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        path = path / "mlflow.db"
    if not path.is_file():
        raise FileNotFoundError(f"{text}: no MLflow store (neither a tracking URI nor an mlflow.db file)")
    return f"sqlite:///{path.resolve()}"


def export_runs(
    uri: str,
    dest: Path,
    last: int | None = None,
    branch: str | None = None,
    matrix_digest: str | None = None,
    exclude: Path | None = None,
) -> list[Path]:
    """The store's matrix runs as run folders under `dest` (their cells' result files and per-item files,
    downloaded from the artifacts), oldest first: the newest `last` of them, only cells of `branch` where
    given, only runs of `matrix_digest` where given, never the run of the folder `exclude`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    parents = client.search_runs(
        [experiment.experiment_id], "tags.role = 'matrix'", order_by=["attributes.start_time DESC"], max_results=1000
    )
    folders: list[Path] = []
    for parent in parents:
        tags, params = parent.data.tags, parent.data.params
        if exclude is not None and tags.get(RUN_DIR_TAG) == str(Path(exclude).resolve()):
            continue
        if matrix_digest is not None and params.get("matrix_digest") not in (None, matrix_digest):
            continue
        where = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
        if branch is not None:
            where += f" and tags.branch = '{branch}'"
        children = client.search_runs([experiment.experiment_id], where, max_results=10000)
        if not children:
            continue
        folder = dest / parent.info.run_id
        (folder / "cells").mkdir(parents=True, exist_ok=True)
        for child in children:
            cell_id = child.data.tags[CELL_TAG]
            names = {a.path for a in client.list_artifacts(child.info.run_id)}
            if f"{cell_id}.json" in names:
                client.download_artifacts(child.info.run_id, f"{cell_id}.json", str(folder / "cells"))
            if "items.jsonl.gz" in names:
                (folder / "cells" / cell_id).mkdir(exist_ok=True)
                client.download_artifacts(child.info.run_id, "items.jsonl.gz", str(folder / "cells" / cell_id))
        folders.append(folder)
        if last is not None and len(folders) == last:
            break
    return folders[::-1]
