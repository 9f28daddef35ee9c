"""Scenarios, registered by name: data -> model head -> batches -> predictions -> metric inputs."""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

from harness.registry import Registry


@dataclass
class Batch:
    """Model inputs for one step plus what throughput counts."""

    inputs: dict[str, Any]
    n_samples: int
    n_tokens: int  # non-padding tokens

    def on(self, device) -> dict[str, Any]:
        """The inputs moved to `device`."""
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in self.inputs.items()}


@dataclass
class Evaluation:
    """What a scenario hands to the metrics, plus figures about the data."""

    predictions: list
    references: list
    reference_figures: dict[str, float]  # e.g. the majority-class rate


class Scenario(abc.ABC):
    """One task kind. Subclasses declare their fields and metrics and implement the hooks."""

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]  # canonical data fields read from each row
    metrics: ClassVar[tuple[str, ...]]  # metric names that apply
    peft_task_type: ClassVar[str | None] = None

    def __init__(self, task, tokenizer, train_rows: list[dict], eval_rows: list[dict]) -> None:
        self.task = task
        self.tokenizer = tokenizer
        self.train_rows = train_rows
        self.eval_rows = eval_rows

    @abc.abstractmethod
    def load_model(self, source: str) -> tuple[Any, tuple[str, ...]]:
        """The model with its task head, and the names of freshly initialised head modules."""

    @abc.abstractmethod
    def train_batches(self, batch_size: int, generator) -> Iterator[Batch]:
        """One epoch of shuffled training batches (shuffled with `generator`)."""

    @abc.abstractmethod
    def evaluate(self, model, batch_size: int, device, on_batch) -> Evaluation:
        """Predictions for the evaluation rows; `on_batch(batch)` is a context manager per forward pass."""


SCENARIOS: Registry[type[Scenario]] = Registry("scenario")


def new_head_modules(loading_info: dict) -> tuple[str, ...]:
    """Modules whose parameters were missing from the checkpoint, i.e. freshly initialised."""
    return tuple(sorted({key.rsplit(".", 1)[0] for key in loading_info.get("missing_keys", ())}))


from harness.scenarios import classification  # noqa: E402,F401  (registration)
