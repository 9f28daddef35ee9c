"""How long a cell took to start working: from the runner's request to launch it (TUNEBENCH_LAUNCHED_AT,
set by harness.run.launch) to the start of its first training step, or of evaluation when it does not
train, less its load phase (the model, tokenizer and data, which are the task's own cost). What is left is
the harness's: process start, imports, seeding, the peak-FLOP/s measurement and setting up."""

from __future__ import annotations

import contextlib
import os
import time

from harness.figures import LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker

LAUNCHED_AT = "TUNEBENCH_LAUNCHED_AT"  # set by the launcher: when the cell was asked for (time.time())
CELL_START = "TUNEBENCH_CELL_START"  # how it was started: warm or spawn


@register_tracker
class Startup(Tracker):
    key = "startup"
    figures = (Figure("spawn_to_first_step_s", "s", ("startup", "spawn_to_first_step_s"), LOWER),)

    def __init__(self, context: TrackerContext | None) -> None:
        super().__init__(context)
        self.created = time.time()
        self.load_seconds = 0.0
        self.first_work: float | None = None

    @contextlib.contextmanager
    def phase(self, name: str):
        if name != "load" and self.first_work is None:
            self.first_work = time.time()
        started = time.perf_counter()
        try:
            yield
        finally:
            if name == "load":
                self.load_seconds += time.perf_counter() - started

    def summary(self) -> dict:
        launched = os.environ.get(LAUNCHED_AT)
        if launched is None or self.first_work is None:
            return {"not_measured": f"the cell was not launched by a runner ({LAUNCHED_AT} is not set)"}
        to_first = self.first_work - float(launched)
        return {
            "mode": os.environ.get(CELL_START),
            "launch_to_cell_s": self.created - float(launched),
            "launch_to_first_step_s": to_first,
            "load_s": self.load_seconds,
            "spawn_to_first_step_s": to_first - self.load_seconds,
        }
