"""Trackers: warm-up exclusion, phase memory, parameter counts."""

from __future__ import annotations

import mmap
import time

import torch

from harness.measure import TrackerContext
from harness.measure.memory import MemoryTracker
from harness.measure.params import count_parameters
from harness.measure.throughput import ThroughputTracker


class FakeClock:
    def __init__(self, step_seconds: list[float]) -> None:
        self.times = [0.0]
        for s in step_seconds:
            self.times += [self.times[-1], self.times[-1] + s]
        self.times = self.times[1:]
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.times[self.calls - 1]


def test_warmup_steps_are_excluded():
    tracker = ThroughputTracker(warmup_steps=2, clock=FakeClock([10.0, 5.0, 1.0, 1.0, 2.0]))
    for _ in range(5):
        with tracker.step(n_samples=4, n_tokens=100):
            pass
    summary = tracker.summary("train")
    assert summary["train_steps"] == 5 and summary["train_measured_steps"] == 3
    assert summary["train_tokens_per_s"] == 300 / 4.0
    assert summary["train_samples_per_s"] == 12 / 4.0
    assert summary["train_step_seconds_median"] == 1.0


def test_no_steady_state_step_is_reported_as_unmeasured():
    tracker = ThroughputTracker(warmup_steps=3, clock=FakeClock([1.0]))
    with tracker.step(1, 1):
        pass
    assert tracker.summary("eval")["eval_tokens_per_s"] is None


def test_memory_phase_sees_a_transient_peak():
    tracker = MemoryTracker(TrackerContext(torch.device("cpu")), interval_s=0.005)
    with tracker.phase("small"):
        pass
    with tracker.phase("big"):
        # 64 MiB of fresh pages, touched: straight from mmap, so that no free heap memory left resident by
        # earlier tests (which malloc would hand out first, raising no RSS) can hide the peak
        block = mmap.mmap(-1, 64 * 2**20)
        block.write(b"\1" * len(block))
        time.sleep(0.05)  # ten sampling intervals: a busy machine can delay the sampler past a shorter peak
        block.close()
    assert tracker.phases["big"]["peak_rss_bytes"] >= tracker.phases["small"]["peak_rss_bytes"] + 48 * 2**20


def test_shared_parameters_are_counted_once():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
    model[1].weight = model[0].weight
    model[0].bias.requires_grad = False
    assert count_parameters(model) == {"total": 16 + 4 + 4, "trainable": 16 + 4, "trainable_percent": 100 * 20 / 24}
