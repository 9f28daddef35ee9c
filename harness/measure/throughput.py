"""Step throughput with warm-up steps excluded."""
from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable


@dataclass
class StepRecord:
    """One timed step; the caller may set `tokens` inside the step (e.g. tokens generated)."""

    samples: int
    tokens: int
    seconds: float = 0.0


class ThroughputTracker:
    """Times each step; the first `warmup_steps` are excluded from every figure.

    `synchronize` is called before reading the clock (CUDA work is asynchronous),
    `clock` returns seconds.
    """

    def __init__(self, warmup_steps: int = 0, clock: Callable[[], float] = time.perf_counter,
                 synchronize: Callable[[], None] = lambda: None) -> None:
        self.warmup_steps = warmup_steps
        self.clock = clock
        self.synchronize = synchronize
        self.steps: list[StepRecord] = []

    @contextmanager
    def step(self, n_samples: int, n_tokens: int = 0):
        record = StepRecord(n_samples, n_tokens)
        self.synchronize()
        start = self.clock()
        yield record
        self.synchronize()
        record.seconds = self.clock() - start
        self.steps.append(record)

    def summary(self, prefix: str) -> dict[str, float | int | None]:
        """Figures named `{prefix}_tokens_per_s` etc.; None when no steady-state step was measured."""
        measured = self.steps[self.warmup_steps:]
        seconds = sum(r.seconds for r in measured)
        latencies = sorted(r.seconds for r in measured)
        ok = bool(measured) and seconds > 0
        return {
            f"{prefix}_steps": len(self.steps),
            f"{prefix}_measured_steps": len(measured),
            f"{prefix}_tokens_per_s": sum(r.tokens for r in measured) / seconds if ok else None,
            f"{prefix}_samples_per_s": sum(r.samples for r in measured) / seconds if ok else None,
            f"{prefix}_step_seconds_median": statistics.median(latencies) if ok else None,
            f"{prefix}_step_seconds_p90": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))] if ok else None,
        }
