"""The tracker protocol (as optimum-benchmark's trackers): a measurement is a context manager per phase
plus a summary, and declares its figures once.

A tracker class sets `key` (where its summary goes in the cell result) and `figures` (what of that
summary is a figure: name, unit, better direction, aggregation; see harness.figures), implements
`phase(name)` and `summary()`, and is registered with `@register_tracker`. The cell creates every
registered tracker, enters all of them around each phase (load, train, eval, lm_eval), and writes
each summary under its key. Plugins register trackers the same way.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.figures import Figure, register_figures
from harness.registry import Registry

# Keys of the cell result that are not trackers'; a tracker may not take one.
RESERVED_KEYS = frozenset(
    {
        "schema_version",
        "cell_id",
        "task",
        "scenario",
        "domain",
        "strategy",
        "seed",
        "profile",
        "primary_metric",
        "config",
        "status",
        "error",
        "metrics",
        "primary_value",
        "reference",
        "model_kind",
        "params",
        "training",
        "weights",
        "items",
        "forgetting",
        "search",
        "executor",
        "preflight",
        "efficiency",
        "data",
        "provenance",
        "finished_at",
        "examples",
        "confusion_matrix",
    }
)


@dataclass(frozen=True)
class TrackerContext:
    """What a tracker may know about the cell it measures."""

    device: Any  # torch.device
    synchronize: Callable[[], None] = lambda: None  # waits for queued device work (CUDA is asynchronous)
    training: Any = None  # the cell's TrainingSpec
    price_per_device_hour: float | None = None  # the run's, for the cell's cost


class Tracker(abc.ABC):
    key: ClassVar[str]
    figures: ClassVar[tuple[Figure, ...]] = ()

    def __init__(self, context: TrackerContext | None) -> None:
        self.context = context

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Measure one phase of the cell; phases do not nest."""
        yield

    @abc.abstractmethod
    def summary(self) -> dict:
        """What the cell result keeps under `key` (JSON-able; the figures are read from it)."""


TRACKERS: Registry[type[Tracker]] = Registry("tracker")


def register_tracker(cls: type[Tracker]) -> type[Tracker]:
    """Class decorator: register a tracker and its figures."""
    if cls.key in RESERVED_KEYS:
        raise ValueError(f"tracker {cls.__name__}: key {cls.key!r} is a cell-result key of its own; pick another")
    TRACKERS.register(cls.key)(cls)
    register_figures(*cls.figures)
    return cls


@contextlib.contextmanager
def phase(trackers: Iterable[Tracker], name: str) -> Iterator[None]:
    """Enter every tracker's phase, in registration order (the first is outermost)."""
    with contextlib.ExitStack() as stack:
        for tracker in trackers:
            stack.enter_context(tracker.phase(name))
        yield
