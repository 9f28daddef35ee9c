"""`peft`: any PEFT method by name, its config table passed through to peft."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harness.registry import did_you_mean
from harness.schema import field
from harness.strategies import quantize
from harness.strategies.base import STRATEGIES, Applied, ModelContext, Strategy
from harness.strategies.lora import wrap_with_peft


def _config_classes() -> dict[str, type]:
    from peft import PEFT_TYPE_TO_CONFIG_MAPPING

    return {str(getattr(k, "value", k)): v for k, v in PEFT_TYPE_TO_CONFIG_MAPPING.items()}


@STRATEGIES.register("peft")
class PeftMethod(quantize.QuantizableBase, Strategy):
    name = "peft"
    defaults = {"learning_rate": 1e-3}  # most peft methods train few weights
    search_grid = (1e-4, 1e-3, 1e-2, 3e-2)

    @dataclass(frozen=True)
    class Options(quantize.QuantizedBaseOptions):
        method: str = field(help="peft method name, e.g. IA3, PREFIX_TUNING, PROMPT_TUNING, ADALORA, LORA")
        config: dict[str, Any] = field(factory=dict, help="keyword arguments of the method's peft config class")

    @classmethod
    def check_options(cls, options) -> list[tuple[str, str]]:
        return super().check_options(options) + cls._config_problems(options)

    @staticmethod
    def _config_problems(options) -> list[tuple[str, str]]:
        classes = _config_classes()
        if options.method not in classes:
            return [
                (
                    "method",
                    f"unknown peft method {options.method!r}"
                    f"{did_you_mean(options.method, list(classes))}; known: {', '.join(sorted(classes))}",
                )
            ]
        fields = {f.name for f in dataclasses.fields(classes[options.method])}
        return [
            (
                f"config.{key}",
                f"not a field of peft's {classes[options.method].__name__}{did_you_mean(key, sorted(fields))}",
            )
            for key in options.config
            if key not in fields
        ]

    def apply(self, model, context: ModelContext) -> Applied:
        model = quantize.prepare(model, self.options)
        config_class = _config_classes()[self.options.method]
        arguments = {"task_type": context.peft_task_type, **self.options.config}
        if context.head_modules and "modules_to_save" in {f.name for f in dataclasses.fields(config_class)}:
            arguments.setdefault("modules_to_save", list(context.head_modules))
        return wrap_with_peft(model, config_class(**arguments))
