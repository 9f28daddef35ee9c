"""The base classes and registry of harness.scenarios; the package imports every built-in one."""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.metrics import metrics_needing
from harness.registry import Registry
from harness.scenarios.lengths import grouped_batches, sorted_batches


@dataclass
class Batch:
    """Model inputs for one step plus what throughput counts."""

    inputs: dict[str, Any]
    n_samples: int
    n_tokens: int  # non-padding tokens
    positions: int | None = None  # all input positions, where the attention mask does not count them (packed)
    head_positions: int | None = None  # positions the output head runs on, where not every token (FLOPs)

    @property
    def slots(self) -> tuple[int, int]:
        """(non-padding, all) positions of the input, from its attention mask: padding efficiency."""
        if self.positions is not None:
            return self.n_tokens, self.positions
        mask = self.inputs.get("attention_mask")
        if mask is None or not hasattr(mask, "numel"):
            return self.n_tokens, self.n_tokens
        return int(mask.sum()), int(mask.numel())

    def on(self, device) -> dict[str, Any]:
        """The inputs moved to `device`."""
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in self.inputs.items()}


@dataclass
class Evaluation:
    """What a scenario hands to the metrics, plus figures about the data and model."""

    predictions: list
    references: list
    reference_figures: dict[str, float] = field(default_factory=dict)  # e.g. the majority-class rate
    scores: dict[str, float] = field(default_factory=dict)  # model metrics, e.g. perplexity
    item_scores: dict[str, list[float]] = field(default_factory=dict)  # a model metric item by item (paired tests)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. examples, a confusion matrix
    # the trivial reference a tuned model must beat: (what it is, its prediction for each eval row)
    trivial: tuple[str, list] | None = None


@dataclass(frozen=True)
class NoOptions:
    """A scenario without a [scenario] table."""


class Scenario(abc.ABC):
    """One task kind. Subclasses declare their fields and metrics and implement the hooks."""

    name: ClassVar[str]
    fields: ClassVar[tuple[str, ...]]  # canonical data fields a row may carry
    provides: ClassVar[frozenset[str]]  # what it hands to metrics (harness.metrics.NEEDS); it takes any metric
    # that needs no more
    kinds: ClassVar[tuple[str, ...]]  # model kinds it supports: encoder, causal, seq2seq
    needs_domain: ClassVar[bool] = False  # the task file must say which domain (task.domain)
    packing: Any = None  # set by prepare_training where training batches are packed (harness.scenarios.packing)

    Options: ClassVar[type] = NoOptions  # the task file's [scenario] table, as a frozen dataclass

    @classmethod
    def check_options(cls, options: Any) -> list[tuple[str, str]]:
        return []

    @classmethod
    def data_notes(cls, options: Any, train_rows: list[dict]) -> list[str]:
        """What the training rows decide under these options, in words (`validate` and `list` print it)."""
        return []

    # ------------------------------------------------------------ the data check (harness.data.checks)

    over_length: ClassVar[str] = "truncated"  # what happens to a row longer than model.max_length

    @classmethod
    def field_roles(cls, options: Any) -> dict[str, str]:
        """What each required field holds, for the data check: "label", "target" (what the model learns to
        produce) or "text" (model input)."""
        roles = {"label": "label", "target": "target", "answer": "target", "answers": "target"}
        return {name: roles.get(name, "text") for name in cls.required_fields(options)}

    @classmethod
    def row_problems(cls, options: Any, row: dict) -> list[tuple[str, str, str, str]]:
        """(field, check, what is wrong, the fix) for one row, beyond empty fields: none by default."""
        return []

    @classmethod
    def input_key(cls, options: Any, row: dict) -> str:
        """The row's model input as one string: an eval row whose input a training row has is a duplicate."""
        texts = [f for f, role in cls.field_roles(options).items() if role == "text"]
        return "\n".join(str(row.get(f, "")) for f in texts)

    @classmethod
    def required_fields(cls, options: Any) -> tuple[str, ...]:
        """Fields every row must have under these options."""
        return cls.fields

    @classmethod
    def provided(cls, options: Any) -> frozenset[str]:
        """What it hands to metrics under these options."""
        return cls.provides

    @classmethod
    def allowed_metrics(cls, options: Any) -> tuple[str, ...]:
        """Registered metric names that apply under these options: those whose needs it provides."""
        return metrics_needing(cls.provided(options))

    @classmethod
    def supported_kinds(cls, options: Any) -> tuple[str, ...]:
        """Model kinds that work under these options."""
        return cls.kinds

    @classmethod
    def create(cls, task, tokenizer, kind: str, train_rows: list[dict], eval_rows: list[dict]) -> Scenario:
        """The scenario object for one cell (a registered entry may pick an implementation here)."""
        return cls(task, tokenizer, kind, train_rows, eval_rows)

    def __init__(self, task, tokenizer, kind: str, train_rows: list[dict], eval_rows: list[dict]) -> None:
        if kind not in self.kinds:
            raise ValueError(
                f"scenario {self.name!r} does not support {kind} models; use one of {', '.join(self.kinds)}"
            )
        self.task = task
        self.options = task.scenario
        self.tokenizer = tokenizer
        self.kind = kind
        self.train_rows = train_rows
        self.eval_rows = eval_rows

    @property
    def peft_task_type(self) -> str | None:
        """peft's task type for this scenario and model kind (some methods need it)."""
        return None

    @abc.abstractmethod
    def load_model(self, source: str, **options: Any) -> tuple[Any, tuple[str, ...]]:
        """The model with its task head, and the names of freshly initialised head modules. `options` are
        more keyword arguments of `from_pretrained`, from the strategy (e.g. a quantisation config)."""

    @abc.abstractmethod
    def training_batch(self, rows: list[dict]) -> Batch:
        """Model inputs with labels for these training rows."""

    def prepare_training(self, model) -> dict[str, Any]:
        """Called once the strategy has made the model, before any training batch is built: a scenario
        may fit its training batches to the model. Returns what it decided, for the cell's result."""
        return {"packed": False, "why_not_packed": f"{self.name} does not pack its training batches"}

    def largest_training_input(self, batch_size: int, seed: int, epochs: int) -> tuple[int, ...]:
        """The shape of the largest input tensor among the training batches, for the memory estimate made
        before training: the batches are built as training will build them (same seed, same order, every
        planned epoch), which costs tokenising the training rows once per epoch."""
        import torch

        generator = torch.Generator().manual_seed(seed)  # as harness.run.train seeds its batches
        largest: tuple[int, ...] = (0, 0)
        for _ in range(epochs):
            for batch in self.train_batches(batch_size, generator):
                shape = tuple(batch.inputs["input_ids"].shape)
                if math.prod(shape) > math.prod(largest):
                    largest = shape
        return largest

    def training_loss(self, model, inputs: dict):
        """The loss to minimise on one batch of model inputs (with labels): by default the model's own."""
        return model(**inputs).loss

    def row_lengths(self, rows: list[dict]) -> list[int]:
        """Non-padding tokens of each row as a training batch holds it: what length grouping sorts by.
        A scenario may count faster; the counts only order rows."""
        return [self.training_batch([row]).n_tokens for row in rows]

    def full_lengths(self, rows: list[dict]) -> list[int]:
        """Tokens each row would take were nothing cut (the data card compares them with max_length)."""
        return self.row_lengths(rows)

    @functools.cached_property
    def train_lengths(self) -> list[int]:
        return self.row_lengths(self.train_rows)

    def train_batches(self, batch_size: int, generator) -> Iterator[Batch]:
        """One epoch of training batches, rows shuffled with `generator`; with [training] group_by_length
        rows of similar length share a batch (harness.scenarios.lengths); where prepare_training chose
        packing, each batch is packed (harness.scenarios.packing)."""
        import torch

        order = torch.randperm(len(self.train_rows), generator=generator).tolist()
        if self.task.training.group_by_length:
            batches = grouped_batches(order, self.train_lengths, batch_size, generator)
        else:
            batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        for indices in batches:
            batch = self.training_batch([self.train_rows[i] for i in indices])
            yield batch if self.packing is None else self.packing.pack_batch(batch)

    def eval_batches(self, batch_size: int, lengths: list[int] | None = None) -> list[list[int]]:
        """Evaluation batches as row indices, longest rows first (by `lengths`, default `row_lengths`), so
        that a batch pads little; callers put results back in row order. Sorting cannot change what is
        learned, and a row's prediction does not depend on its batch-mates (beyond float rounding)."""
        return sorted_batches(self.row_lengths(self.eval_rows) if lengths is None else lengths, batch_size)

    @abc.abstractmethod
    def evaluate(self, model, batch_size: int, device, on_batch) -> Evaluation:
        """Predictions for the evaluation rows; `on_batch(batch)` is a context manager per forward pass,
        whose value may be told the tokens produced (`record.tokens = n`)."""


SCENARIOS: Registry[type[Scenario]] = Registry("scenario")


def new_head_modules(loading_info: dict) -> tuple[str, ...]:
    """Modules whose parameters were missing from the checkpoint, i.e. freshly initialised."""
    return tuple(sorted({key.rsplit(".", 1)[0] for key in loading_info.get("missing_keys", ())}))
