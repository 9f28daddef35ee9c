"""Step throughput with warm-up steps excluded."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from harness.figures import HIGHER, LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker


@dataclass
class StepRecord:
    """One timed step; the caller may set `tokens` inside the step (e.g. tokens generated)."""

    samples: int
    tokens: int
    seconds: float = 0.0
    real_slots: int = 0  # non-padding positions of the padded input
    total_slots: int = 0  # all positions of the padded input
    head_positions: int | None = None  # positions the output head ran on, where not every token


class ThroughputTracker:
    """Times each step; the first `warmup_steps` are excluded from every figure.

    `synchronize` is called before reading the clock (CUDA work is asynchronous),
    `clock` returns seconds.
    """

    def __init__(
        self,
        warmup_steps: int = 0,
        clock: Callable[[], float] = time.perf_counter,
        synchronize: Callable[[], None] = lambda: None,
    ) -> None:
        self.warmup_steps = warmup_steps
        self.clock = clock
        self.synchronize = synchronize
        self.steps: list[StepRecord] = []

    @contextmanager
    def step(
        self, n_samples: int, n_tokens: int = 0, slots: tuple[int, int] = (0, 0), head_positions: int | None = None
    ):
        record = StepRecord(n_samples, n_tokens, 0.0, *slots, head_positions)
        self.synchronize()
        start = self.clock()
        yield record
        self.synchronize()
        record.seconds = self.clock() - start
        self.steps.append(record)

    def summary(self, prefix: str) -> dict[str, float | int | None]:
        """Figures named `{prefix}_tokens_per_s` etc.; None when no steady-state step was measured."""
        measured = self.steps[self.warmup_steps :]
        seconds = sum(r.seconds for r in measured)
        latencies = sorted(r.seconds for r in measured)
        ok = bool(measured) and seconds > 0
        slots = sum(r.total_slots for r in self.steps)
        return {
            f"{prefix}_padding_efficiency": sum(r.real_slots for r in self.steps) / slots if slots else None,
            f"{prefix}_steps": len(self.steps),
            f"{prefix}_measured_steps": len(measured),
            f"{prefix}_tokens_per_s": sum(r.tokens for r in measured) / seconds if ok else None,
            f"{prefix}_samples_per_s": sum(r.samples for r in measured) / seconds if ok else None,
            f"{prefix}_step_seconds_median": statistics.median(latencies) if ok else None,
            f"{prefix}_step_seconds_p90": latencies[min(len(latencies) - 1, int(0.9 * len(latencies)))] if ok else None,
        }


def _figures(phase: str, aggregate: tuple[str, ...]) -> tuple[Figure, ...]:
    units = (
        ("tokens_per_s", "tokens/s", HIGHER),
        ("padding_efficiency", "share", HIGHER),
        ("samples_per_s", "samples/s", HIGHER),
        ("step_seconds_median", "s", LOWER),
        ("step_seconds_p90", "s", LOWER),
    )
    return tuple(
        Figure(f"{phase}_{name}", unit, ("throughput", f"{phase}_{name}"), better, aggregate=name in aggregate)
        for name, unit, better in units
    )


@register_tracker
class Throughput(Tracker):
    """Steps per phase: the cell reports each training step and each evaluation forward pass with
    `step(n_samples, n_tokens)`. Training excludes its configured warm-up steps; evaluation its first
    batch when it has more than one. Tokens are non-padding tokens."""

    key = "throughput"
    figures = _figures("train", ("tokens_per_s", "samples_per_s", "padding_efficiency")) + _figures(
        "eval", ("tokens_per_s", "padding_efficiency")
    )
    PHASES = ("train", "eval")  # always summarised, so that an untrained cell says "no steps"

    def __init__(self, context: TrackerContext) -> None:
        super().__init__(context)
        self.trackers: dict[str, ThroughputTracker] = {}
        self.current: ThroughputTracker | None = None

    @contextmanager
    def phase(self, name: str):
        synchronize = self.context.synchronize if self.context else (lambda: None)
        self.current = self.trackers.setdefault(name, ThroughputTracker(synchronize=synchronize))
        try:
            yield
        finally:
            self.current = None

    def step(
        self, n_samples: int, n_tokens: int = 0, slots: tuple[int, int] = (0, 0), head_positions: int | None = None
    ):
        """Time one step of the current phase; `slots` are its (non-padding, all) input positions,
        `head_positions` those the output head ran on where not every token."""
        if self.current is None:
            raise RuntimeError("Throughput.step outside a phase")
        return self.current.step(n_samples, n_tokens, slots, head_positions)

    def steps(self, phase: str) -> list[StepRecord]:
        return self.trackers[phase].steps if phase in self.trackers else []

    def summary(self) -> dict:
        figures: dict = {}
        for name in self.PHASES:
            tracker = self.trackers.get(name, ThroughputTracker())
            if name == "train":
                training = self.context.training if self.context else None
                tracker.warmup_steps = training.measure_warmup_steps if training else 0
            else:
                tracker.warmup_steps = 1 if len(tracker.steps) > 1 else 0
            figures.update(tracker.summary(name))
        note = "tokens are non-padding tokens; warm-up steps excluded; padding efficiency over every step"
        return {**figures, "unit_note": note}
