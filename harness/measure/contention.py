"""Was the CPU shared while a phase ran? Per phase: this process's CPU time against wall time x its
threads (how busy the cell kept what it asked for), and the CPU time every other process on the machine
used meanwhile, as a share of the machine's capacity. A cell whose train or eval phase saw other work
above CONTENDED_SHARE is marked: its throughput was measured under contention (the tables and the
report say so). GPU sharing is not measured here."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

from harness.figures import LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker

CONTENDED_SHARE = 0.15  # other processes used more than 15% of the machine's CPU time during the phase
TIMED_PHASES = ("train", "eval")
# CPU times tick every 10 ms, and the machine's and the process's counters tick apart: over a phase shorter
# than this, a few ticks of rounding alone can exceed the threshold (seen: a 0.1 s evaluation of a tiny
# model on a quiet machine read as contended), so such a phase is recorded but not judged.
MIN_JUDGED_S = 0.5


def _busy_seconds() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def others_share(seconds: float = 2.0) -> float:
    """The share of the machine's CPU that other processes used over `seconds` (this one excluded)."""
    me = psutil.Process()
    own, busy = sum(me.cpu_times()[:2]), _busy_seconds()
    time.sleep(seconds)
    other = max(0.0, _busy_seconds() - busy - (sum(me.cpu_times()[:2]) - own))
    return other / (seconds * (psutil.cpu_count() or 1))


def wait_for_quiet(wait_s: float, sample=others_share) -> float | None:
    """Wait up to `wait_s` for other processes to leave the CPU below CONTENDED_SHARE; None once quiet,
    else the share still in use when giving up."""
    deadline = time.monotonic() + wait_s
    while True:
        share = sample()
        if share <= CONTENDED_SHARE:
            return None
        if time.monotonic() >= deadline:
            return share


@register_tracker
class Contention(Tracker):
    key = "contention"
    figures = (
        Figure("train_other_cpu_share", "share", ("contention", "phases", "train", "other_cpu_share"), LOWER),
        Figure("eval_other_cpu_share", "share", ("contention", "phases", "eval", "other_cpu_share"), LOWER),
    )

    def __init__(self, context: TrackerContext | None, cpus: int | None = None) -> None:
        super().__init__(context)
        self.cpus = cpus or psutil.cpu_count() or 1
        self.phases: dict[str, dict] = {}
        self.process = psutil.Process()

    @contextlib.contextmanager
    def phase(self, name: str):
        import torch

        own, busy, wall = self._own_seconds(), _busy_seconds(), time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - wall
            own = self._own_seconds() - own
            other = max(0.0, _busy_seconds() - busy - own)
            threads = torch.get_num_threads()
            self.phases[name] = {
                "wall_seconds": wall,
                "own_cpu_seconds": own,
                "threads": threads,
                "own_utilisation": own / (wall * threads) if wall > 0 else None,
                "other_cpu_share": other / (wall * self.cpus) if wall > 0 else None,
                "load_average_1m": os.getloadavg()[0],
            }

    def _own_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def summary(self) -> dict:
        timed = [name for name in TIMED_PHASES if name in self.phases]
        judged = [name for name in timed if self.phases[name]["wall_seconds"] >= MIN_JUDGED_S]
        contended = sorted(name for name in judged if self.phases[name]["other_cpu_share"] > CONTENDED_SHARE)
        return {
            "phases": self.phases,
            "cpus": self.cpus,
            "contended_phases": contended,
            "contended": bool(contended),
            "too_short_to_judge": sorted(set(timed) - set(judged)),  # under MIN_JUDGED_S of wall time
            "threshold": CONTENDED_SHARE,
        }
