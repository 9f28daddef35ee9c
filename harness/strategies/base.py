"""The base classes and registry of harness.strategies; the package imports every built-in one."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from harness.registry import Registry


@dataclass(frozen=True)
class ModelContext:
    """What a strategy may know about the model it is applied to."""

    head_modules: tuple[str, ...]  # freshly initialised task head; always trains
    peft_task_type: str | None  # e.g. "SEQ_CLS", for peft methods that need it


@dataclass
class Applied:
    """A strategy's answer: the model to train and the parameter names that train."""

    model: Any
    trainable: set[str]
    includes_head: bool = False  # True when the strategy already made the task head trainable (peft)


class Strategy(abc.ABC):
    """Base class: subclasses set `name`, `Options` and implement `apply`."""

    name: ClassVar[str]
    Options: ClassVar[type]
    trains: ClassVar[bool] = True
    # The method's own [training] defaults (a task overrides only what it must), and the learning rates
    # a search tries by default: log-spaced around the default.
    defaults: ClassVar[dict[str, Any]] = {}
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {}  # by model kind (encoder, causal), over `defaults`
    search_grid: ClassVar[tuple[float, ...]] = ()

    @classmethod
    def training_defaults(cls, model_kind: str) -> dict[str, Any]:
        """The [training] defaults for a model of this kind (auto: unknown until loaded)."""
        return {**cls.defaults, **cls.kind_defaults.get(model_kind, {})}

    def __init__(self, options: Any) -> None:
        self.options = options

    @classmethod
    def check_options(cls, options: Any) -> list[tuple[str, str]]:
        """Problems with `options` that need more than type checks: (key, message)."""
        return []

    def load_options(self, device) -> dict[str, Any]:
        """Extra keyword arguments of the model's `from_pretrained`, e.g. a quantisation config."""
        return {}

    @abc.abstractmethod
    def apply(self, model, context: ModelContext) -> Applied:
        """Insert modules if the strategy needs them; say which parameters train."""


STRATEGIES: Registry[type[Strategy]] = Registry("strategy")


def is_head_param(name: str, head_modules: tuple[str, ...]) -> bool:
    return any(name == m or name.startswith(m + ".") or f".{m}." in f".{name}" for m in head_modules)


def freeze_all_but(model, applied: Applied, head_modules: tuple[str, ...]) -> None:
    """Set requires_grad: True exactly for the strategy's trainable names and the task head."""
    head = () if applied.includes_head else head_modules
    for name, param in model.named_parameters():
        param.requires_grad = name in applied.trainable or is_head_param(name, head)
