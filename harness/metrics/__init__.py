"""Offline metrics registered by name: fn(predictions, references) -> float."""
from __future__ import annotations

from typing import Callable, Sequence

from harness.registry import Registry

Metric = Callable[[Sequence, Sequence], float]
METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("accuracy")
def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of predictions equal to their reference."""
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


@METRICS.register("macro_f1")
def macro_f1(predictions: Sequence, references: Sequence) -> float:
    """F1 averaged over every class seen in references or predictions, unweighted."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(references), list(predictions), average="macro", zero_division=0))
