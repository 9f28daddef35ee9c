"""Tracking sinks: a run's results published where ML teams already look (MLflow, TensorBoard, or a
sink a plugin registers with `@SINKS.register("name")`).

A sink reads what the runner has already written, result files only: measuring stays in the trackers
(harness.measure), and a sink that fails cannot lose a result, because every cell's result is on disk
before any sink sees it. `run --track NAME[=TARGET]` (or `[suite] track`) sends each cell as it
finishes; a sink that still fails after its retries is recorded in RUN_DIR/tracking.json and the run
goes on as it would without tracking; `tunebench track RUN_DIR --to NAME[=TARGET]` sends a finished
run folder afterwards (again, or for the first time), skipping cells the store already holds.
"""

from __future__ import annotations

from harness.track import mlflow_sink, tensorboard_sink  # noqa: F401 - they register the built-in sinks
from harness.track.base import SINKS, Sink, numbers, parse_track
from harness.track.publisher import TRACKING_FILE, Publisher, track_problems

__all__ = ["SINKS", "TRACKING_FILE", "Publisher", "Sink", "numbers", "parse_track", "track_problems"]
