"""`full`: every parameter trains."""

from __future__ import annotations

from dataclasses import dataclass

from harness.strategies.base import STRATEGIES, Applied, ModelContext, Strategy


@STRATEGIES.register("full")
class FullFineTuning(Strategy):
    name = "full"
    # every weight moves: smaller steps than adapters and LoRA. From the recorded search (README: Learning rates)
    defaults = {"learning_rate": 3e-4}
    kind_defaults = {"encoder": {"learning_rate": 1e-4}, "causal": {"learning_rate": 3e-4}}
    search_grid = (1e-5, 3e-5, 1e-4, 3e-4)

    @dataclass(frozen=True)
    class Options:
        pass

    def apply(self, model, context: ModelContext) -> Applied:
        return Applied(model, trainable={name for name, _ in model.named_parameters()})
