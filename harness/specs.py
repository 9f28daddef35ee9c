"""Frozen, validated specs: what a task file, a suite file and a cell resolve to.

Every field is documented; `min`/`max` bounds and `problems()` cross-field rules are
checked by harness.schema.build when a file is loaded (harness.config).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from dataclasses import field as dataclass_field
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
        "auto", help="architecture family; auto reads it from the model config"
    )
    gguf_file: str | None = field(None, help="GGUF file inside the source folder; converted once and cached")
    max_length: int = field(128, min=8, help="tokens; longer inputs are truncated")
    revision: str | None = field(None, help="hub revision, only for hub ids")
    trust_remote_code: bool = field(
        False, help="run Python code shipped with the model (config auto_map); needs a pinned revision"
    )
    allow_pickle: bool = field(
        False, help="load pickle-based checkpoints (.bin, .pt); they can run arbitrary code when loaded"
    )

    def problems(self) -> list[tuple[str, str]]:
        if self.trust_remote_code and not self.revision:
            return [("trust_remote_code", "needs model.revision pinned to a commit, so the code that runs is fixed")]
        return []


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


def _share_or_count(key: str, value: float) -> list[tuple[str, str]]:
    """Rows held out, as a share (0 < x < 1) or a whole count (>= 1)."""
    if value <= 0 or (value >= 1 and value != int(value)):
        return [(key, f"must be a share between 0 and 1 or a whole count, got {value!r}")]
    return []


@dataclass(frozen=True)
class SplitSpec:
    eval: float = field(min=0.0, help="rows held out for evaluation: a share (0 < x < 1) or a count (>= 1)")
    seed: int = field(0, help="seed of the split; independent of the cell seed, so every cell sees the same rows")
    stratify: bool = field(True, help="keep the label proportions on both sides (needs a label field)")

    def problems(self) -> list[tuple[str, str]]:
        return _share_or_count("eval", self.eval)


@dataclass(frozen=True)
class DataSpec:
    train: str | None = field(
        None,
        help="training data: a file or folder relative to the task file, or "
        "package:IMPORT_NAME/PATH inside an installed package (#MEMBER for a zip)",
    )
    eval: str | None = field(None, help="evaluation data, as train; or leave it out and carve it with split")
    split: SplitSpec | None = field(
        None, help="carve the evaluation rows out of train: { eval = 0.2, seed = 0, stratify = true }"
    )
    format: Literal["auto", "csv", "tsv", "jsonl", "json", "parquet", "folders"] = field(
        "auto",
        help="file format; auto reads it from the name (.bz2, .gz, .zip compression allowed); "
        "folders: one sub-folder of text files per label",
    )
    encoding_errors: Literal["strict", "replace"] = field(
        "strict", help="strict: text that is not UTF-8 is an error; replace: bad bytes become U+FFFD"
    )
    transforms: tuple[dict[str, Any], ...] = field((), help="[[data.transforms]] applied in order to the source rows")
    source: str | None = field(None, help="where the data comes from, e.g. 'SMS Spam Collection (UCI)'")
    citation: str | None = field(None, help="how to cite it, e.g. 'Almeida & Hidalgo 2011'")
    licence: str | None = field(None, help="its licence, e.g. 'CC BY 4.0'")
    hub: str | None = field(None, help="datasets hub id, used when train/eval files are not given")
    hub_config: str | None = field(None, help="hub dataset configuration name")
    train_split: str = field("train", help="hub split used for training")
    eval_split: str = field("test", help="hub split used for evaluation")
    fields: dict[str, str] = field(
        factory=dict,
        help="scenario field -> column name in the data (a nested path such as input.1.content is allowed)",
    )
    max_train_samples: int | None = field(None, min=1, help="use at most this many training rows")
    max_eval_samples: int | None = field(None, min=1, help="use at most this many evaluation rows")
    checks: dict[str, str] = field(
        factory=dict,
        help='the data check: { CHECK = "warn" } reports a check as a warning instead of refusing the data, '
        "where you know your data is like that (checks: see harness/data/checks.py; the result records it)",
    )
    validation: float | None = field(
        None,
        help="a learning-rate search trial (set by [search]): hold out this share (0 < x < 1) or count of the "
        "training rows, train on the rest, evaluate on them; the eval data is never read",
    )
    score_on: Literal["validation", "eval"] = field(
        "validation",
        help="with validation: score on the carve (a search trial, eval never read) or on eval (trained "
        "without the carve, as the trials were: pick's finals)",
    )

    @property
    def is_trial(self) -> bool:
        """Trained on train minus the validation carve and scored on that carve: the eval data is never read."""
        return self.validation is not None and self.score_on == "validation"

    def problems(self) -> list[tuple[str, str]]:
        from harness.data.checks import relax_problems

        if relaxing := relax_problems(self.checks):
            return relaxing
        if self.validation is not None and (problem := _share_or_count("validation", self.validation)):
            return problem
        if self.score_on == "eval" and self.validation is None:
            return [("score_on", "'eval' scores a model trained without the validation carve: set validation")]
        if self.train is not None and self.is_trial:  # a trial needs no eval split
            return []
        if self.train is not None and self.eval is not None and self.split is not None:
            return [("split", "give either an 'eval' file or a 'split' of train, not both")]
        if self.train is not None and (self.eval is not None or self.split is not None):
            return []
        if self.hub is None:
            return [("train", "give 'train' and 'eval' files, a 'train' file and a 'split', or a 'hub' dataset id")]
        if self.split is not None:
            return [("split", "split carves a local train file; hub data uses train_split and eval_split")]
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
    stop_after_steps: int | None = field(
        None,
        min=1,
        help="stop after this many steps while the learning-rate schedule stays planned over all of them, and "
        "save a checkpoint that resume_from continues (a prefix of the full run: pick's race rungs)",
    )
    resume_from: str | None = field(
        None,
        help="the id of a cell in this run folder whose checkpoint (stop_after_steps) this cell continues, "
        "on its rows and schedule; one that finished its schedule is evaluated as it stands",
    )
    batch_size: int = field(16, min=1, help="training examples per step")
    eval_batch_size: int = field(32, min=1, help="examples per evaluation forward pass")
    group_by_length: bool = field(
        False,
        help="training batches of similar-length rows (less padding), from seeded, shuffled length buckets as "
        "transformers' group_by_length; off by default: where length goes with the label (spam) a batch loses "
        "its label mix and PEFT methods at their searched rates collapse",
    )
    packing: bool = field(
        True,
        help="classification on encoders and causal LMs: lay each training batch's rows end to end in fewer "
        "rows, each row attending only to itself, so a step computes on its tokens rather than on padding; "
        "the batch's rows are the same, so what is learned is too",
    )
    learning_rate: float = field(1e-4, min=0.0, help="AdamW peak learning rate")
    weight_decay: float = field(0.0, min=0.0, help="AdamW decoupled weight decay")
    optimizer: Literal["adamw", "adamw8bit", "galore_adamw"] = field(
        "adamw",
        help="adamw; adamw8bit (8-bit state, bitsandbytes); galore_adamw (GaLore low-rank gradient projection); "
        "the last two need tunebench[quantize]",
    )
    galore_rank: int = field(128, min=1, help="galore_adamw: rank of the projected gradients")
    galore_update_proj_gap: int = field(200, min=1, help="galore_adamw: steps between projection refreshes (SVD)")
    galore_scale: float = field(0.25, min=0.0, help="galore_adamw: scale of the projected-back update")
    galore_target_modules: tuple[str, ...] | None = field(
        None, help="galore_adamw: linear modules to project (name substrings); default: every one in the blocks"
    )
    lr_warmup_ratio: float = field(0.06, min=0.0, max=1.0, help="fraction of steps with linear LR warm-up")
    max_grad_norm: float = field(1.0, min=0.0, help="gradient clipping norm; 0 disables")
    measure_warmup_steps: int = field(2, min=0, help="first steps excluded from throughput figures")
    save_weights: bool = field(True, help="save the tuned (trainable) weights in the cell folder")
    max_tokens: int | None = field(None, min=1, help="budget: stop after this many (non-padding) training tokens")
    max_seconds: float | None = field(None, min=0.0, help="budget: stop after this much training wall time (s)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", help="autocast dtype for forward passes; auto: bf16 where the device supports it (CUDA), else fp32"
    )
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
class ForgettingSpec:
    """General text a causal LM should not forget while it tunes: its loss after tuning is compared
    with the untuned model's (the `none` row) on the same texts."""

    text: str = field(help="a file, folder or package:IMPORT/PATH of general text (not the task's data)")
    format: Literal["auto", "csv", "tsv", "jsonl", "json", "parquet", "folders"] = field(
        "auto", help="file format; auto from the name"
    )
    column: str = field("text", help="the column (or nested path) holding each text")
    samples: int = field(32, min=1, help="texts scored: the first ones, in file order")
    max_length: int = field(128, min=8, help="tokens per text at most")


@dataclass(frozen=True)
class SearchSpec:
    """A learning-rate search per (task, strategy): trials score on a validation carve of the training rows
    (never the eval split), and the final cell trains with the best value and is evaluated once on eval."""

    learning_rates: tuple[float, ...] = field((), help="the grid; default: each strategy's own (log-spaced)")
    trials: int | None = field(
        None, min=1, help="a budgeted Optuna (TPE) search of this many trials over the grid's range instead"
    )
    validation: float = field(0.2, help="share (0 < x < 1) or count of the training rows held out to score trials")
    score_rows: int = field(
        2000,
        min=1,
        help="carve rows a trial scores at most, a fixed subset (the task's data.max_eval_samples, if lower, stands)",
    )
    seed: int = field(0, help="training seed of the trials")
    strategies: tuple[str, ...] = field((), help="strategies searched; default: every one that trains")

    def problems(self) -> list[tuple[str, str]]:
        values = enumerate(self.learning_rates)
        rates = [(f"learning_rates[{i}]", f"must be > 0, got {v!r}") for i, v in values if v <= 0]
        return _share_or_count("validation", self.validation) + rates


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
    forgetting: ForgettingSpec | None = None

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
    strategy: str  # the row's name: a registered strategy, or a named variant of one
    options: Any  # the strategy's own Options dataclass
    seed: int
    profile: str
    strategy_type: str = ""  # the registered strategy a variant runs (`type = "lora"`); "" for the name itself
    # dotted keys laid over every other layer, e.g. a suite's budget ("training.max_steps") or a search
    # trial's ("training.learning_rate", "data.validation"); the worker re-resolves the cell with them
    overrides: tuple[tuple[str, Any], ...] = ()
    search: SearchSpec | None = dataclass_field(default=None, compare=False)  # a search to run for this cell
    selection: dict[str, Any] | None = dataclass_field(default=None, compare=False)  # what a finished search chose
    # the suite's named variants ([strategies.NAME] of a suite file), for re-resolving from the task file
    variants: tuple[tuple[str, Any], ...] = dataclass_field(default=(), compare=False)

    @property
    def is_trial(self) -> bool:
        """A learning-rate search trial: trained on train minus a validation carve, scored on that carve."""
        return self.task.data.is_trial

    @property
    def registered(self) -> str:
        """The registered strategy this cell runs."""
        return self.strategy_type or self.strategy

    def resolved(self) -> dict[str, Any]:
        """The resolved config as plain data (what the cell id hashes); a copy of what the first call found,
        so that it holds after the task folder moved (a Ray working_dir)."""
        return copy.deepcopy(self._resolved)

    @functools.cached_property
    def _resolved(self) -> dict[str, Any]:
        task = to_plain(self.task)
        task["path"] = self.task.path.name
        if self.is_trial:  # a trial never reads the eval split, so its id does not depend on it
            task["data"]["eval"] = None
        variant = {"strategy_type": self.strategy_type} if self.strategy_type else {}  # plain names keep their ids
        return {
            "task": task,
            "strategy": self.strategy,
            **variant,
            "options": to_plain(self.options),
            "seed": self.seed,
            "profile": self.profile,
            "data_sha256": _data_digest(self.task),
        }

    @functools.cached_property
    def config_digest(self) -> str:
        """A digest of the resolved config without the seed: equal for the seeds of one row."""
        from harness.results.variants import config_digest

        return config_digest(self.resolved())

    @functools.cached_property
    def cell_id(self) -> str:
        from harness.results.variants import identity

        blob = json.dumps(identity(self.resolved(), seed=True), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        trial = f"/trial lr={self.task.training.learning_rate:g}" if self.is_trial else ""
        return f"{self.task.name}/{self.strategy}/seed{self.seed}{trial}"


@dataclass(frozen=True)
class BudgetSpec:
    """One training budget for every cell of a suite, whatever its task or strategy says."""

    tokens: int | None = field(None, min=1, help="training tokens (non-padding) per cell")
    steps: int | None = field(None, min=1, help="optimizer steps per cell")
    seconds: float | None = field(None, min=0.0, help="training wall time per cell, steps only (s)")

    def problems(self) -> list[tuple[str, str]]:
        given = [name for name in ("tokens", "steps", "seconds") if getattr(self, name) is not None]
        return [] if len(given) == 1 else [("", f"name exactly one of tokens, steps, seconds; got {len(given)}")]

    def training(self) -> dict[str, Any]:
        """The [training] keys it sets, on top of every other layer."""
        key = {"tokens": "max_tokens", "steps": "max_steps", "seconds": "max_seconds"}
        return {key[name]: getattr(self, name) for name in key if getattr(self, name) is not None}


@dataclass(frozen=True)
class RaySpec:
    """How cells run on Ray (`executor = "ray"`): where, with what resources per cell, how often retried."""

    address: str | None = field(
        None, help="a running cluster, e.g. ray://head:10001 or auto; default: a local instance"
    )
    cpus_per_cell: float = field(1.0, min=0.0, help="CPUs reserved per cell (torch in the cell uses as many threads)")
    gpus_per_cell: float | None = field(
        None, min=0.0, help="GPUs per cell; default: 1 where the cluster has GPUs (a cell per GPU, in parallel), else 0"
    )
    memory_per_cell_mb: int | None = field(None, min=1, help="memory reserved per cell (MiB), for Ray's scheduler")
    max_retries: int = field(3, min=0, help="retries when a cell's worker or node is lost (never for errors)")
    num_cpus: int | None = field(None, min=1, help="CPUs of a local instance (default: every CPU)")
    working_dir: str | None = field(
        None, help="a folder (relative to the suite file) shipped to every worker through Ray's runtime_env"
    )


@dataclass(frozen=True)
class SuiteInfo:
    name: str = field(help="suite name")
    tasks: tuple[str, ...] = field(help="task files or folders, relative to the suite file")
    strategies: tuple[str, ...] = field(DEFAULT_STRATEGIES, help="strategy names to run on every task")
    seeds: int = field(1, min=1, help="number of seeds per (task, strategy); seeds are 0..n-1")
    profile: str = field("default", help="smoke, default or full")
    cell_timeout_s: float | None = field(None, min=1, help="kill a cell that runs longer (seconds)")
    cell_memory_limit_mb: int | None = field(None, min=1, help="kill a cell whose resident set grows past this (MiB)")
    plugins: tuple[str, ...] = field(
        (), help="modules imported first; they may register strategies, scenarios, metrics"
    )
    budget: BudgetSpec | None = field(
        None, help="an equal training budget for every strategy: tokens, steps or seconds"
    )
    executor: Literal["local", "ray"] = field("local", help="what runs the cells: local processes, or Ray tasks")
    price_per_device_hour: float | None = field(
        None, min=0.0, help="price of one device-hour (a GPU, or on CPU the machine): each cell records its cost"
    )
    ray: RaySpec | None = field(None, help="Ray settings: address, cpus_per_cell, gpus_per_cell, max_retries, ...")
    track: tuple[str, ...] = field(
        (), help='tracking sinks each cell is sent to as it finishes: "mlflow", "mlflow=URI", "tensorboard"'
    )


@dataclass(frozen=True)
class Matrix:
    """What a run executes: cells plus the limits that apply to each."""

    cells: tuple[CellSpec, ...]
    cell_timeout_s: float | None = None
    cell_memory_limit_mb: int | None = None
    plugins: tuple[str, ...] = ()
    executor: str = "local"
    ray: RaySpec | None = None
    price_per_device_hour: float | None = None
    track: tuple[str, ...] = ()


def _data_digest(task: TaskSpec) -> str | None:
    """Digest of the local data files (or folders), so that changed data means a new cell id; None for hub data."""
    from harness.data.sources import digest, resolve_data

    if task.data.train is None:
        return None
    evaluation = None if task.data.is_trial else task.data.eval  # a trial never reads eval
    refs = [ref for ref in (task.data.train, evaluation) if ref is not None]
    return digest([resolve_data(ref, task.path.parent) for ref in refs])
