"""A plugin as a user would write one: loaded with `--plugin tests.toy_plugins`, no edit to harness/."""

from __future__ import annotations

from contextlib import contextmanager

from harness.figures import Figure
from harness.measure import Tracker, register_tracker
from harness.metrics import CORRECT, register_metric


@register_metric("toy_agreement", needs=("labels",), per_item=CORRECT)
def toy_agreement(predictions, references) -> float:
    """Share of items whose predicted label equals the reference, in percent (a toy: accuracy x 100)."""
    return 100.0 * sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


@register_tracker
class PhaseCounter(Tracker):
    """Counts the phases a cell went through (load, train, eval): 2 for an untrained cell, 3 otherwise."""

    key = "toy"
    figures = (Figure("toy_phases", "phases", ("toy", "phases"), show=True),)

    def __init__(self, context) -> None:
        super().__init__(context)
        self.names: list[str] = []

    @contextmanager
    def phase(self, name: str):
        self.names.append(name)
        yield

    def summary(self) -> dict:
        return {"phases": len(self.names), "names": self.names}
