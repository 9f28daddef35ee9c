"""`none`: the untuned model, evaluated as the baseline row."""

from __future__ import annotations

from dataclasses import dataclass

from harness.strategies.base import STRATEGIES, Applied, ModelContext, Strategy


@STRATEGIES.register("none")
class NoTuning(Strategy):
    name = "none"
    trains = False

    @dataclass(frozen=True)
    class Options:
        pass

    def apply(self, model, context: ModelContext) -> Applied:
        return Applied(model, trainable=set())
