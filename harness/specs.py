"""Frozen, validated specs: what a task file, a suite file and a cell resolve to.

Every field is documented; `min`/`max` bounds and `problems()` cross-field rules are
checked by harness.schema.build when a file is loaded (harness.config).
"""
from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.schema import field, to_plain

DEFAULT_STRATEGIES = ("none", "full", "frozen-lower", "adapter", "lora")


@dataclass(frozen=True)
class TaskInfo:
    name: str = field(help="unique task name; used in cell ids and reports")
    scenario: str = field(help="registered scenario name, e.g. classification")
    description: str = field("", help="one line shown in listings and reports")
    domain: str | None = field(None, help="application domain, e.g. medical or legal")


@dataclass(frozen=True)
class ModelSpec:
    source: str = field(help="'package:IMPORT_NAME/SUBDIR', a local folder (relative to the task file) or a hub id")
    kind: Literal["auto", "encoder", "causal", "seq2seq"] = field(
        "auto", help="architecture family; auto reads it from the model config")
    gguf_file: str | None = field(None, help="GGUF file inside the source folder; converted once and cached")
    max_length: int = field(128, min=8, help="tokens; longer inputs are truncated")
    revision: str | None = field(None, help="hub revision, only for hub ids")


@dataclass(frozen=True)
class GenerationSpec:
    max_new_tokens: int = field(48, min=1, help="tokens generated per example at most")
    do_sample: bool = field(False, help="sample instead of greedy decoding")
    temperature: float = field(1.0, min=0.0, help="sampling temperature (do_sample only)")
    top_p: float = field(1.0, min=0.0, max=1.0, help="nucleus sampling mass (do_sample only)")
    stop: tuple[str, ...] = field((), help="strings that end a generation; the output is cut before them")
    keep_examples: int = field(5, min=0, help="generated examples stored in the result for reports")


@dataclass(frozen=True)
class LmEvalSpec:
    tasks: tuple[str, ...] = field(help="lm-eval task names, registered or in include_path")
    include_path: str | None = field(None, help="folder of lm-eval task YAMLs, relative to the task file")
    limit: int | None = field(None, min=1, help="examples per lm-eval task at most")
    num_fewshot: int | None = field(None, min=0, help="few-shot examples; default: the task's own")
    batch_size: int = field(8, min=1, help="lm-eval batch size")


@dataclass(frozen=True)
class DataSpec:
    train: str | None = field(None, help="local jsonl/csv/parquet file, relative to the task file")
    eval: str | None = field(None, help="local jsonl/csv/parquet file, relative to the task file")
    hub: str | None = field(None, help="datasets hub id, used when train/eval files are not given")
    hub_config: str | None = field(None, help="hub dataset configuration name")
    train_split: str = field("train", help="hub split used for training")
    eval_split: str = field("test", help="hub split used for evaluation")
    fields: dict[str, str] = field(factory=dict, help="scenario field -> column name in the data")
    max_train_samples: int | None = field(None, min=1, help="use at most this many training rows")
    max_eval_samples: int | None = field(None, min=1, help="use at most this many evaluation rows")

    def problems(self) -> list[tuple[str, str]]:
        if self.hub is None and (self.train is None or self.eval is None):
            return [("train", "give both 'train' and 'eval' files, or a 'hub' dataset id")]
        return []


@dataclass(frozen=True)
class MetricSpec:
    names: tuple[str, ...] = field(help="registered metric names, computed on the evaluation set")
    primary: str | None = field(None, help="metric used to rank strategies; defaults to the first name")

    def problems(self) -> list[tuple[str, str]]:
        if not self.names:
            return [("names", "must list at least one metric")]
        if self.primary is not None and self.primary not in self.names:
            return [("primary", f"{self.primary!r} is not in metric.names {list(self.names)}")]
        return []


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = field(3, min=1, help="passes over the training set")
    max_steps: int | None = field(None, min=1, help="optimizer steps; stops earlier than epochs if reached")
    batch_size: int = field(16, min=1, help="training examples per step")
    eval_batch_size: int = field(32, min=1, help="examples per evaluation forward pass")
    learning_rate: float = field(1e-4, min=0.0, help="AdamW peak learning rate")
    weight_decay: float = field(0.0, min=0.0, help="AdamW decoupled weight decay")
    lr_warmup_ratio: float = field(0.06, min=0.0, max=1.0, help="fraction of steps with linear LR warm-up")
    max_grad_norm: float = field(1.0, min=0.0, help="gradient clipping norm; 0 disables")
    measure_warmup_steps: int = field(2, min=0, help="first steps excluded from throughput figures")
    save_weights: bool = field(True, help="save the tuned (trainable) weights in the cell folder")
    max_tokens: int | None = field(None, min=1, help="budget: stop after this many (non-padding) training tokens")
    max_seconds: float | None = field(None, min=0.0, help="budget: stop after this much training wall time (s)")
    precision: Literal["fp32", "bf16", "fp16"] = field("fp32", help="autocast dtype for forward passes")
    gradient_checkpointing: bool = field(False, help="recompute activations in the backward pass to save memory")
    target: float | None = field(None, help="primary-metric value whose first reach is recorded (time to target)")
    eval_every_steps: int | None = field(None, min=1, help="evaluate every N steps (needed for target)")
    stop_at_target: bool = field(False, help="stop training once the target is reached")

    def problems(self) -> list[tuple[str, str]]:
        problems = []
        if self.learning_rate <= 0:
            problems.append(("learning_rate", f"must be > 0, got {self.learning_rate!r}"))
        if self.target is not None and self.eval_every_steps is None:
            problems.append(("target", "needs eval_every_steps: the target is checked on periodic evaluation"))
        if self.stop_at_target and self.target is None:
            problems.append(("stop_at_target", "needs a target"))
        return problems


@dataclass(frozen=True)
class TaskSpec:
    """A validated task file."""

    path: Path
    task: TaskInfo
    model: ModelSpec
    data: DataSpec
    metric: MetricSpec
    training: TrainingSpec
    generation: GenerationSpec
    scenario: Any  # the scenario's own Options dataclass, from [scenario]
    lm_eval: LmEvalSpec | None = None

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def primary_metric(self) -> str:
        return self.metric.primary or self.metric.names[0]

    def resolve_path(self, relative: str) -> Path:
        return (self.path.parent / relative).resolve()


@dataclass(frozen=True)
class CellSpec:
    """One unit of work: a task under one strategy and seed, fully resolved."""

    task: TaskSpec
    strategy: str
    options: Any  # the strategy's own Options dataclass
    seed: int
    profile: str

    def resolved(self) -> dict[str, Any]:
        """The resolved config as plain data (what the cell id hashes)."""
        task = to_plain(self.task)
        task["path"] = self.task.path.name
        return {"task": task, "strategy": self.strategy, "options": to_plain(self.options),
                "seed": self.seed, "profile": self.profile, "data_sha256": _data_digest(self.task)}

    @functools.cached_property
    def cell_id(self) -> str:
        blob = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"{self.task.name}/{self.strategy}/seed{self.seed}"


@dataclass(frozen=True)
class SuiteInfo:
    name: str = field(help="suite name")
    tasks: tuple[str, ...] = field(help="task files or folders, relative to the suite file")
    strategies: tuple[str, ...] = field(DEFAULT_STRATEGIES, help="strategy names to run on every task")
    seeds: int = field(1, min=1, help="number of seeds per (task, strategy); seeds are 0..n-1")
    profile: str = field("default", help="smoke, default or full")
    cell_timeout_s: float | None = field(None, min=1, help="kill a cell that runs longer (seconds)")
    cell_memory_limit_mb: int | None = field(None, min=1, help="kill a cell whose resident set grows past this (MiB)")
    plugins: tuple[str, ...] = field((), help="modules imported first; they may register strategies, scenarios, metrics")


@dataclass(frozen=True)
class Matrix:
    """What a run executes: cells plus the limits that apply to each."""

    cells: tuple[CellSpec, ...]
    cell_timeout_s: float | None = None
    cell_memory_limit_mb: int | None = None
    plugins: tuple[str, ...] = ()


def _data_digest(task: TaskSpec) -> str | None:
    """Digest of the local data files, so that changed data means a new cell id; None for hub data."""
    if task.data.train is None or task.data.eval is None:
        return None
    files = [task.resolve_path(p) for p in (task.data.train, task.data.eval)]
    return _files_digest(tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files))


@functools.lru_cache(maxsize=256)
def _files_digest(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        with open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
