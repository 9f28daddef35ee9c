"""What a cell cost: device-hours (wall time of its phases x the devices it held), their price where one is
given ([suite] price_per_device_hour or `run --price-per-hour`), and the energy its devices drew where the
hardware exposes an energy counter: NVIDIA GPUs through NVML (the counter codecarbon reads too), CPUs
through RAPL package counters (/sys/class/powercap; the whole package, so other processes' draw is in
it). Where neither counter exists the energy is recorded as not measurable here, never as 0 kWh."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from harness.figures import LOWER, Figure
from harness.measure.tracker import Tracker, TrackerContext, register_tracker

RAPL = Path("/sys/class/powercap")
JOULES_PER_KWH = 3.6e6
NO_PRICE = "no price given ([suite] price_per_device_hour or run --price-per-hour)"


def _rapl_reader(root: Path | None = None) -> tuple[Callable[[], float], str] | None:
    """Joules since the first reading, over the CPU packages (intel-rapl:N, not their sub-domains)."""
    root = root or RAPL
    packages = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1) if root.is_dir() else []
    try:
        ranges = [int((p / "max_energy_range_uj").read_text()) for p in packages]
        [int((p / "energy_uj").read_text()) for p in packages]  # readable (root-only on many kernels)
    except (OSError, ValueError):
        return None
    if not packages:
        return None
    last = [0] * len(packages)
    total = [0.0]
    first = [True]

    def read() -> float:
        for i, package in enumerate(packages):
            now = int((package / "energy_uj").read_text())
            if not first[0]:
                total[0] += (now - last[i]) % (ranges[i] + 1)  # the counter wraps at its range
            last[i] = now
        first[0] = False
        return total[0] / 1e6

    return read, f"RAPL package counters ({len(packages)} package(s); the whole CPU, other processes included)"


def _nvml_reader(index: int) -> tuple[Callable[[], float], str] | None:
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:  # no library, no driver, or a GPU without the counter
        return None
    return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3), f"NVML energy counter of GPU {index}"


def energy_reader(device) -> tuple[Callable[[], float] | None, str]:
    """(joules-so-far reader, what it reads) for `device`; (None, why not) where nothing can be read."""
    if device.type == "cuda":
        found = _nvml_reader(device.index or 0)
        why = "not measurable here: no NVML energy counter for this GPU (install nvidia-ml-py)"
    else:
        found = _rapl_reader()
        why = f"not measurable here: no readable RAPL energy counters under {RAPL}"
    return (found[0], found[1]) if found else (None, why)


@register_tracker
class Cost(Tracker):
    key = "cost"
    figures = (
        Figure("device_hours", "device-h", ("cost", "device_hours"), LOWER, label="device time"),
        Figure("cost", "price units", ("cost", "cost"), LOWER, label="cost", show=True),
        Figure("energy_kwh", "kWh", ("cost", "energy_kwh"), LOWER, label="energy"),
    )

    def __init__(self, context: TrackerContext | None, clock=time.perf_counter) -> None:
        super().__init__(context)
        self.clock = clock
        self.seconds = 0.0
        self.joules = 0.0
        self.read, self.energy_source = energy_reader(context.device) if context else (None, "no device")

    @contextlib.contextmanager
    def phase(self, name: str):
        start = self.clock()
        before = self.read() if self.read else 0.0
        try:
            yield
        finally:
            self.seconds += self.clock() - start
            if self.read:
                self.joules += self.read() - before

    def summary(self) -> dict:
        price = self.context.price_per_device_hour if self.context else None
        devices = 1  # a cell holds one device: one GPU, or on CPU the machine
        hours = self.seconds * devices / 3600
        return {
            "device_hours": hours,
            "devices": devices,
            "price_per_device_hour": price,
            "cost": price * hours if price is not None else None,
            "cost_note": None if price is not None else NO_PRICE,
            "energy_kwh": self.joules / JOULES_PER_KWH if self.read else None,
            "energy_source": self.energy_source,
        }
