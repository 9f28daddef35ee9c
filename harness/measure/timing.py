"""Wall time per phase."""

from __future__ import annotations

import time
from contextlib import contextmanager

from harness.figures import LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker


@register_tracker
class PhaseTimer(Tracker):
    key = "timing"
    figures = (
        Figure("train_seconds", "s", ("timing", "train_seconds"), LOWER, label="training time"),
        Figure("eval_seconds", "s", ("timing", "eval_seconds"), LOWER, label="evaluation time"),
        Figure("load_seconds", "s", ("timing", "load_seconds"), LOWER, aggregate=False),
    )

    def __init__(self, context: TrackerContext | None = None, clock=time.perf_counter) -> None:
        super().__init__(context)
        self.clock = clock
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        start = self.clock()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self.clock() - start

    def summary(self) -> dict:
        return {f"{name}_seconds": seconds for name, seconds in self.seconds.items()}
