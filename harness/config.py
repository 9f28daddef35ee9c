"""TOML task and suite files -> frozen, validated specs, and the cells they expand to.

Layers, lowest first: spec defaults < the task's tables < the strategy's
``[strategies.NAME.training]`` < the built-in profile < the task's
``[profiles.NAME]``. Every problem in every file is collected and raised as
one ConfigError naming file, line and dotted key.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from harness.schema import Collector, ConfigError, KeyLines, Problem, build, field, to_plain
from harness.registry import did_you_mean

DEFAULT_STRATEGIES = ("none", "full", "frozen-lower", "adapter", "lora")

# Built-in profiles: `smoke` proves the pipeline runs, `default` is the task as
# written, `full` lifts the task's sample caps.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {"data": {"max_train_samples": 32, "max_eval_samples": 16},
              "training": {"epochs": 2, "max_steps": 3, "measure_warmup_steps": 1},
              "generation": {"max_new_tokens": 16}},
    "default": {},
    "full": {"data": {"max_train_samples": None, "max_eval_samples": None}},
}


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


# ---------------------------------------------------------------- file reading

def _read_toml(path: Path, problems: list[Problem]) -> tuple[dict | None, KeyLines | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(str(path), None, "", f"cannot read file: {exc.strerror}"))
        return None, None
    try:
        return tomllib.loads(text), KeyLines(text)
    except tomllib.TOMLDecodeError as exc:
        message, _, where = str(exc).partition(" (at line ")
        line = int(where.split(",")[0].rstrip(")")) if where[:1].isdigit() else None
        problems.append(Problem(str(path), line, "", f"TOML syntax error: {message}"))
        return None, None


def _merge(base: dict, overlay: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import user modules that register strategies, scenarios or metrics."""
    for module in modules:
        importlib.import_module(module)


# ---------------------------------------------------------------- tasks

_TASK_TABLES = ("task", "scenario", "model", "data", "metric", "training", "generation", "lm_eval",
                "strategies", "profiles")
_SPEC_TABLES = ("task", "scenario", "model", "data", "metric", "training", "generation", "lm_eval")


def _registries():
    from harness.metrics import METRICS
    from harness.scenarios import SCENARIOS
    from harness.strategies import STRATEGIES
    return SCENARIOS, STRATEGIES, METRICS


def _check_refs(path: Path, layered: dict, out: Collector) -> None:
    """Checks that need registries or the file system. They read the raw tables, so that a
    mistake elsewhere in a table does not hide these; type errors are reported by `build`."""
    from harness.metrics import EVALUATE_PREFIX

    scenarios, _, metrics = _registries()
    info, data, metric, model = (layered.get(k) or {} for k in ("task", "data", "metric", "model"))
    scenario = None
    if isinstance(name := info.get("scenario"), str):
        if name in scenarios:
            scenario = scenarios.get(name)
            if scenario.needs_domain and not info.get("domain"):
                out.add("task.domain", f"scenario {name!r} needs the domain named, e.g. domain = \"medical\"")
        else:
            out.add("task.scenario", str(_lookup_error(scenarios, name)))
    names = metric.get("names")
    for i, name in enumerate(names if isinstance(names, list) else []):
        if not isinstance(name, str) or name.startswith(EVALUATE_PREFIX):
            continue
        if name not in metrics:
            out.add(f"metric.names[{i}]", str(_lookup_error(metrics, name)) +
                    f"; or {EVALUATE_PREFIX}NAME for the evaluate library")
        elif scenario is not None and name not in scenario.metrics:
            out.add(f"metric.names[{i}]", f"metric {name!r} does not apply to scenario "
                                          f"{scenario.name!r}; use one of {', '.join(scenario.metrics)}")
    for key in ("train", "eval"):
        if isinstance(relative := data.get(key), str) and not (path.parent / relative).is_file():
            out.add(f"data.{key}", f"file not found: {(path.parent / relative).resolve()}")
    fields = data.get("fields")
    for name in fields if isinstance(fields, dict) and scenario is not None else ():
        if name not in scenario.fields:
            out.add(f"data.fields.{name}", f"unknown field{did_you_mean(name, list(scenario.fields))}; "
                                           f"scenario {scenario.name!r} reads: {', '.join(scenario.fields)}")
    if isinstance(include := (layered.get("lm_eval") or {}).get("include_path"), str) \
            and not (path.parent / include).is_dir():
        out.add("lm_eval.include_path", f"folder not found: {(path.parent / include).resolve()}")
    if isinstance(source := model.get("source"), str):
        from harness.models import resolve_source
        try:
            gguf = model.get("gguf_file")
            resolve_source(source, path.parent, gguf if isinstance(gguf, str) else None)
        except ValueError as exc:
            out.add("model.source", str(exc))


def _lookup_error(registry, name: str) -> Exception:
    try:
        registry.get(name)
    except KeyError as exc:
        return exc
    raise AssertionError(name)


def _only_tables(raw: dict, out: Collector) -> dict:
    """`raw` without values that should be tables but are not (each one reported)."""
    def keep(value: Any, key: str, depth: int) -> Any:
        if not isinstance(value, dict):
            out.add(key, f"expected a table, got {type(value).__name__} ({value!r})")
            return None
        if depth == 0:
            return value
        kept = {k: keep(v, f"{key}.{k}", depth - 1) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v is not None}

    depth = {**{table: 0 for table in _SPEC_TABLES}, "strategies": 1, "profiles": 2}
    cleaned = {k: keep(v, k, depth[k]) if k in depth else v for k, v in raw.items()}
    for name, table in (cleaned.get("strategies") or {}).items():
        if "training" in table and not isinstance(table["training"], dict):
            out.add(f"strategies.{name}.training", "expected a table")
            table.pop("training")
    return {k: v for k, v in cleaned.items() if v is not None}


def _layered(raw: dict, strategy: str | None, profile: str) -> dict:
    layered = {k: raw.get(k, {}) for k in _SPEC_TABLES}
    if strategy is not None:
        layered["training"] = _merge(layered["training"], raw.get("strategies", {}).get(strategy, {}).get("training", {}))
    layered = _merge(layered, PROFILES[profile])
    return _merge(layered, raw.get("profiles", {}).get(profile, {}))


def _build_task(path: Path, layered: dict, out: Collector) -> TaskSpec | None:
    parts: dict[str, Any] = {}
    for table, cls in (("task", TaskInfo), ("model", ModelSpec), ("data", DataSpec), ("metric", MetricSpec),
                       ("training", TrainingSpec), ("generation", GenerationSpec)):
        parts[table] = build(cls, layered[table], table, out)
    lm_eval = build(LmEvalSpec, layered["lm_eval"], "lm_eval", out) if layered["lm_eval"] else None
    scenario_options = _build_scenario_options(layered, out)
    before = len(out.problems)
    _check_refs(path, layered, out)
    if any(v is None for v in parts.values()) or scenario_options is None or len(out.problems) > before \
            or (layered["lm_eval"] and lm_eval is None):
        return None
    return TaskSpec(path=path.resolve(), scenario=scenario_options, lm_eval=lm_eval, **parts)


def _build_scenario_options(layered: dict, out: Collector) -> Any:
    scenarios, _, _ = _registries()
    name = layered["task"].get("scenario")
    if not isinstance(name, str) or name not in scenarios:
        return None  # reported by _check_refs
    cls = scenarios.get(name)
    options = build(cls.Options, layered["scenario"], "scenario", out)
    if options is not None:
        for key, message in cls.check_options(options):
            out.add(f"scenario.{key}", message)
    return options


def _build_options(raw: dict, strategy: str, out: Collector) -> Any:
    _, strategies, _ = _registries()
    key = f"strategies.{strategy}"
    if strategy not in strategies:
        out.add(key, str(_lookup_error(strategies, strategy)))
        return None
    cls = strategies.get(strategy)
    table = {k: v for k, v in raw.get("strategies", {}).get(strategy, {}).items() if k != "training"}
    options = build(cls.Options, table, key, out)
    if options is not None:
        for sub, message in cls.check_options(options):
            out.add(f"{key}.{sub}", message)
    return options


def load_task_cells(path: Path, strategies: tuple[str, ...] | None, seeds: tuple[int, ...],
                    profile: str, problems: list[Problem]) -> list[CellSpec]:
    """Cells for one task file; problems are appended, never raised."""
    raw, lines = _read_toml(path, problems)
    if raw is None:
        return []
    out = Collector(path, lines)
    if "task" not in raw and "suite" in raw:
        out.add("suite", "this is a suite file; a task file was expected here")
    for key in raw:
        if key not in _TASK_TABLES:
            out.add(key, f"unknown table{did_you_mean(key, list(_TASK_TABLES))}; allowed: {', '.join(_TASK_TABLES)}")
    for name in raw.get("profiles", {}):
        if name not in PROFILES:
            out.add(f"profiles.{name}", f"unknown profile{did_you_mean(name, list(PROFILES))}; known: {', '.join(PROFILES)}")
    raw = _only_tables(raw, out)
    chosen = strategies if strategies is not None else DEFAULT_STRATEGIES
    cells: list[CellSpec] = []
    base = _build_task(path, _layered(raw, None, profile), out)
    for name in dict.fromkeys(chosen + tuple(raw.get("strategies", {}))):
        options = _build_options(raw, name, out)
        if base is None or options is None:
            continue
        before = len(out.problems)
        task = _build_task(path, _layered(raw, name, profile), out)
        if task is None or len(out.problems) > before or name not in chosen:
            continue
        cells.extend(CellSpec(task, name, options, seed, profile) for seed in seeds)
    problems.extend(out.problems)
    return cells


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


# ---------------------------------------------------------------- suites and paths

def _task_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.toml") if p.is_file()) if path.is_dir() else [path]


def _is_suite(path: Path) -> bool:
    try:
        return path.suffix == ".toml" and "suite" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def load_matrix(paths: list[str | Path], strategies: tuple[str, ...] | None = None,
                seeds: int | None = None, profile: str | None = None) -> Matrix:
    """Expand task files, suite files and folders into cells, or raise ConfigError.

    Explicit arguments (the command line) win over suite settings.
    """
    problems: list[Problem] = []
    if profile is not None and profile not in PROFILES:
        problems.append(Problem("<command line>", None, "--profile",
                                f"unknown profile {profile!r}{did_you_mean(profile, list(PROFILES))}; known: {', '.join(PROFILES)}"))
        raise ConfigError(problems)
    cells: list[CellSpec] = []
    limits: dict[str, Any] = {}
    plugins: list[str] = []
    for path in map(Path, paths):
        if not path.exists():
            problems.append(Problem(str(path), None, "", "no such file or folder"))
            continue
        if _is_suite(path):
            suite = _load_suite(path, problems)
            if suite is None:
                continue
            limits = {"cell_timeout_s": suite.cell_timeout_s, "cell_memory_limit_mb": suite.cell_memory_limit_mb}
            try:
                load_plugins(suite.plugins)
            except ImportError as exc:
                problems.append(Problem(str(path), None, "suite.plugins", f"cannot import plugin: {exc}"))
                continue
            plugins.extend(suite.plugins)
            task_paths = [f for t in suite.tasks for f in _task_files(path.parent / t)]
            chosen, n_seeds, prof = strategies or suite.strategies, seeds or suite.seeds, profile or suite.profile
        else:
            task_paths = _task_files(path)
            chosen, n_seeds, prof = strategies, seeds or 1, profile or "default"
        for task_path in task_paths:
            cells.extend(load_task_cells(task_path, chosen, tuple(range(n_seeds)), prof, problems))
    owners: dict[str, Path] = {}
    unique: dict[str, CellSpec] = {}
    for cell in cells:
        owner = owners.setdefault(cell.task.name, cell.task.path)
        if owner != cell.task.path:
            problem = Problem(str(cell.task.path), None, "task.name",
                              f"task name {cell.task.name!r} is already used by {owner}")
            if problem not in problems:
                problems.append(problem)
        unique.setdefault(cell.cell_id, cell)
    if problems:
        raise ConfigError(problems)
    if not unique:
        raise ConfigError([Problem(", ".join(map(str, paths)), None, "", "no task files found")])
    return Matrix(tuple(unique.values()), plugins=tuple(plugins), **limits)


def _load_suite(path: Path, problems: list[Problem]) -> SuiteInfo | None:
    raw, lines = _read_toml(path, problems)
    if raw is None:
        return None
    out = Collector(path, lines)
    for key in raw:
        if key != "suite":
            out.add(key, f"unknown table{did_you_mean(key, ['suite'])}; a suite file holds [suite]")
    suite = build(SuiteInfo, raw.get("suite", {}), "suite", out)
    if suite is not None:
        if suite.profile not in PROFILES:
            out.add("suite.profile", f"unknown profile {suite.profile!r}{did_you_mean(suite.profile, list(PROFILES))}")
        for i, task in enumerate(suite.tasks):
            if not (path.parent / task).exists():
                out.add(f"suite.tasks[{i}]", f"no such file or folder: {(path.parent / task).resolve()}")
    problems.extend(out.problems)
    return suite if not out.problems else None
