"""`lora`: low-rank adapters through peft."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.schema import field
from harness.strategies import quantize
from harness.strategies.base import STRATEGIES, Applied, ModelContext, Strategy


def wrap_with_peft(model, peft_config) -> Applied:
    """Apply a peft config; peft decides what trains: its adapters and a trainable copy of the
    head (modules_to_save), while the original head stays frozen."""
    from peft import get_peft_model

    peft_model = get_peft_model(model, peft_config)
    return Applied(peft_model, {n for n, p in peft_model.named_parameters() if p.requires_grad}, includes_head=True)


@STRATEGIES.register("lora")
class LoRA(quantize.QuantizableBase, Strategy):
    """Low-rank updates of the target projections, through peft; the base weights stay frozen (and, with
    `quantize`, stored in 4 or 8 bits: QLoRA)."""

    name = "lora"
    # chosen by the recorded search, tasks/suites/search.toml (README: Learning rates)
    defaults = {"learning_rate": 1e-2}
    kind_defaults = {"encoder": {"learning_rate": 3e-3}, "causal": {"learning_rate": 1e-2}}
    search_grid = (3e-4, 1e-3, 3e-3, 1e-2)

    @dataclass(frozen=True)
    class Options(quantize.QuantizedBaseOptions):
        r: int = field(8, min=1, help="rank of the update matrices")
        alpha: int = field(16, min=1, help="scaling numerator: updates are scaled by alpha / r")
        dropout: float = field(0.0, min=0.0, max=1.0, help="dropout on the LoRA input")
        target_modules: tuple[str, ...] | None = field(
            None, help="module names to adapt; default: peft's for the architecture"
        )
        bias: Literal["none", "all", "lora_only"] = field("none", help="which biases train")
        use_dora: bool = field(False, help="weight-decomposed LoRA (DoRA)")

    def apply(self, model, context: ModelContext) -> Applied:
        from peft import LoraConfig

        model = quantize.prepare(model, self.options)
        config = LoraConfig(
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=list(self.options.target_modules) if self.options.target_modules else None,
            bias=self.options.bias,
            use_dora=self.options.use_dora,
            task_type=context.peft_task_type,
            modules_to_save=list(context.head_modules) or None,
        )
        return wrap_with_peft(model, config)
