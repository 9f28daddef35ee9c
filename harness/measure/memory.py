"""Peak memory per phase: CUDA allocator peaks where CUDA is used, else sampled resident set."""

from __future__ import annotations

import resource
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:  # imports torch; the results layer reads this module without torch
    from harness.measure.breakdown import MemoryBreakdown

from harness.figures import LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker


def process_peak_rss_bytes() -> int:
    """Peak resident set of this process over its lifetime (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@register_tracker
class MemoryTracker(Tracker):
    """`with tracker.phase("train"):` records that phase's peak.

    On CPU the resident set is sampled every `interval_s` seconds in a thread
    (plus at entry and exit); on CUDA the allocator's own peaks are reset at entry.
    The sampler costs the timed steps little: on 2 CPU cores, MiniLM training steps of ~0.44 s
    took a median 0.7% and 0.9% longer with it at 20 ms in two runs of 12 paired trials (single
    trials from -3% to +4%: the machine's own drift), no more than at 50 ms;
    `benchmarks/sampler_cost.py` measures it again.
    A `breakdown` (harness.measure.breakdown), when the cell attaches one, splits the training peak.
    """

    key = "memory"
    figures = (Figure("peak_memory_bytes", "bytes", ("memory", "peak_bytes"), LOWER, label="peak memory"),)

    def __init__(self, context: TrackerContext, interval_s: float = 0.02) -> None:
        super().__init__(context)
        self.device = context.device
        self.interval_s = interval_s
        self.phases: dict[str, dict[str, int]] = {}
        self.breakdown: MemoryBreakdown | None = (
            None  # set by the cell when training: a MemoryBreakdown watching the optimizer
        )
        self._process = psutil.Process()

    @contextmanager
    def phase(self, name: str):
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield
            torch.cuda.synchronize(self.device)
            self.phases[name] = {
                "cuda_max_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
                "cuda_max_reserved_bytes": torch.cuda.max_memory_reserved(self.device),
            }
            return
        peak = self._process.memory_info().rss
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(self.interval_s):
                peak = max(peak, self._process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            yield
        finally:
            stop.set()
            sampler.join()
            peak = max(peak, self._process.memory_info().rss)
            self.phases[name] = {"peak_rss_bytes": peak}

    def phase_peak(self, name: str) -> int | None:
        """The headline peak of one phase: CUDA max allocated, else the sampled resident set."""
        phase = self.phases.get(name)
        if phase is None:
            return None
        return phase.get("cuda_max_allocated_bytes", phase.get("peak_rss_bytes"))

    def peak_bytes(self) -> int:
        """The cell's headline peak: CUDA max allocated over phases, else the process's peak RSS."""
        if self.device.type == "cuda":
            return max((p["cuda_max_allocated_bytes"] for p in self.phases.values()), default=0)
        return process_peak_rss_bytes()

    def summary(self) -> dict:
        return {
            "peak_bytes": self.peak_bytes(),
            "phases": self.phases,
            "kind": "cuda_max_allocated" if self.device.type == "cuda" else "process_peak_rss",
            "breakdown": self.breakdown.summary(self.phase_peak("train")) if self.breakdown else None,
        }
