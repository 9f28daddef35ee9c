"""TensorBoard: per-cell scalars under RUN_DIR/tensorboard/<task>/<strategy>/seed<N> (`--track tensorboard`,
or `--track tensorboard=FOLDER`): the training loss per step, the periodic evaluations, and the cell's
figures (tokens/s, peak memory, the metrics) at its last step, readable by TensorBoard's event reader."""

from __future__ import annotations

from pathlib import Path

from harness.track.base import SINKS, Sink, cell_metrics, cell_series, numbers


@SINKS.register("tensorboard")
class TensorBoardSink(Sink):
    def __init__(self, run_dir: Path, target: str | None, weights: bool = False) -> None:
        super().__init__(run_dir, target, weights)
        self.root = Path(target) if target else self.run_dir / "tensorboard"

    def describe(self) -> str:
        return str(self.root)

    def folder(self, result: dict) -> Path:
        role = (result.get("search") or {}).get("role")
        name = f"seed{result.get('seed')}" + (f"-trial-{result['cell_id']}" if role == "trial" else "")
        return self.root / result["task"] / result["strategy"] / name

    def has_cell(self, cell_id: str) -> bool:
        return any(self.root.glob(f"*/*/*/{cell_id}.logged"))

    def log_cell(self, result: dict, cell_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        folder = self.folder(result)
        for old in folder.glob("events.out.tfevents.*"):  # a rerun of the cell: the newer result wins
            old.unlink()
        series = cell_series(result)
        last = max((step for points in series.values() for step, _ in points), default=0)
        with SummaryWriter(log_dir=str(folder)) as writer:
            for key, points in series.items():
                for step, value in points:
                    writer.add_scalar(key, value, step)
            for key, value in numbers(cell_metrics(result)).items():
                writer.add_scalar(f"figures/{key}", value, last)
        (folder / f"{result['cell_id']}.logged").write_text(result["status"] + "\n", encoding="utf-8")
