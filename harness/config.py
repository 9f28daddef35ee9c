"""TOML task and suite files -> frozen, validated specs, and the cells they expand to.

Layers, lowest first: spec defaults < the strategy's own training defaults
(``Strategy.defaults``) < the task's tables < the task's ``[strategies.NAME.training]`` <
the built-in profile < the task's ``[profiles.NAME]`` < the cell's overrides (a suite's
budget, a search trial's learning rate and validation carve). Every problem in every file is collected and raised as
one ConfigError naming file, line and dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.registry import did_you_mean
from harness.results.gate import GateSpec
from harness.schema import Collector, ConfigError, KeyLines, Problem, build
from harness.specs import (
    DEFAULT_STRATEGIES,
    CellSpec,
    DataSpec,
    ForgettingSpec,
    GenerationSpec,
    LmEvalSpec,
    Matrix,  # noqa: F401
    MetricSpec,
    ModelSpec,
    SearchSpec,
    SuiteInfo,
    TaskInfo,
    TaskSpec,
    TrainingSpec,
)

# Built-in profiles: `smoke` proves the pipeline runs, `default` is the task as
# written, `full` lifts the task's sample caps.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {
        "data": {"max_train_samples": 16, "max_eval_samples": 4},
        "training": {
            "epochs": 1,
            "max_steps": 2,
            "batch_size": 4,
            "eval_batch_size": 8,
            "measure_warmup_steps": 1,
            "save_weights": False,
        },
        "generation": {"max_new_tokens": 8},
    },
    "default": {},
    "full": {"data": {"max_train_samples": None, "max_eval_samples": None}},
}


# ---------------------------------------------------------------- file reading


def _read_toml(path: Path, problems: list[Problem]) -> tuple[dict | None, KeyLines | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(str(path), None, "", f"cannot read file: {exc.strerror}"))
        return None, None
    except UnicodeDecodeError:
        problems.append(Problem(str(path), None, "", "not a UTF-8 text file (a TOML task or suite file was expected)"))
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


PLUGIN_GROUP = "tunebench.plugins"  # entry points of installed packages, loaded by every command and cell


def load_plugins(modules: tuple[str, ...] | list[str]) -> None:
    """Import the installed `tunebench.plugins` entry points, then user modules (`--plugin`, a suite's
    `plugins`); they register strategies, scenarios, metrics or trackers. ImportError names the module."""
    from importlib.metadata import entry_points

    for point in entry_points(group=PLUGIN_GROUP):
        try:
            point.load()
        except Exception as exc:  # a broken installed plugin: say which one, in one line
            raise ImportError(
                f"entry point {point.name} = {point.value!r} ({PLUGIN_GROUP}): {type(exc).__name__}: {exc}"
            ) from None
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"{module}: {exc}") from None


# ---------------------------------------------------------------- tasks

_TASK_TABLES = (
    "task",
    "scenario",
    "model",
    "data",
    "metric",
    "training",
    "generation",
    "lm_eval",
    "forgetting",
    "search",
    "strategies",
    "profiles",
)
_SPEC_TABLES = ("task", "scenario", "model", "data", "metric", "training", "generation", "lm_eval", "forgetting")


def _registries():
    from harness.metrics import METRICS
    from harness.scenarios import SCENARIOS
    from harness.strategies import STRATEGIES

    return SCENARIOS, STRATEGIES, METRICS


def _check_refs(path: Path, layered: dict, out: Collector) -> None:
    """Checks that need registries or the file system. They read the raw tables, so that a
    mistake elsewhere in a table does not hide these; type errors are reported by `build`."""
    from harness.metrics import EVALUATE_PREFIX, metrics_needing

    scenarios, _, metrics = _registries()
    info, data, metric, model = (layered.get(k) or {} for k in ("task", "data", "metric", "model"))
    scenario = None
    if isinstance(name := info.get("scenario"), str):
        if name in scenarios:
            scenario = scenarios.get(name)
            if scenario.needs_domain and not info.get("domain"):
                out.add("task.domain", f'scenario {name!r} needs the domain named, e.g. domain = "medical"')
        else:
            out.add("task.scenario", str(_lookup_error(scenarios, name)))
    names = metric.get("names")
    for i, name in enumerate(names if isinstance(names, list) else []):
        if not isinstance(name, str) or name.startswith(EVALUATE_PREFIX):
            continue
        if name not in metrics:
            out.add(
                f"metric.names[{i}]",
                str(_lookup_error(metrics, name)) + f"; or {EVALUATE_PREFIX}NAME for the evaluate library",
            )
        elif scenario is not None and name not in (usable := metrics_needing(scenario.provides)):
            needs = ", ".join(sorted(metrics.get(name).needs - scenario.provides))
            out.add(
                f"metric.names[{i}]",
                f"metric {name!r} needs {needs}, which scenario {scenario.name!r} "
                f"does not provide; use one of {', '.join(usable)}",
            )
        # metrics that apply only under some scenario options are checked by _check_fit
    _check_data(path, data, out)
    if isinstance(forgetting := layered.get("forgetting"), dict):
        _check_data(path, forgetting, out, "forgetting", ("text",))
    fields = data.get("fields")
    for name in fields if isinstance(fields, dict) and scenario is not None else ():
        assert scenario is not None  # for the type checker: the loop runs only with a scenario
        if name not in scenario.fields:
            out.add(
                f"data.fields.{name}",
                f"unknown field{did_you_mean(name, list(scenario.fields))}; "
                f"scenario {scenario.name!r} reads: {', '.join(scenario.fields)}",
            )
    if (
        isinstance(include := (layered.get("lm_eval") or {}).get("include_path"), str)
        and not (path.parent / include).is_dir()
    ):
        out.add("lm_eval.include_path", f"folder not found: {(path.parent / include).resolve()}")
    if isinstance(source := model.get("source"), str):
        from harness.models import check_model_folder, resolve_source

        try:
            gguf = model.get("gguf_file")
            folder = resolve_source(source, path.parent, gguf if isinstance(gguf, str) else None)
            if not isinstance(gguf, str) and Path(folder).is_dir():
                allowed = (model.get("trust_remote_code") is True, model.get("allow_pickle") is True)
                check_model_folder(Path(folder), *allowed)
        except ValueError as exc:
            out.add("model.source", str(exc))


def _check_data(path: Path, data: dict, out: Collector, table: str = "data", keys=("train", "eval")) -> None:
    """Data files exist (locally or in an installed package) and transforms are known, with valid options."""
    from harness.data.readers import detect_format
    from harness.data.sources import resolve_data
    from harness.data.transforms import transform_options

    for key in keys:
        if isinstance(reference := data.get(key), str):
            try:
                location = resolve_data(reference, path.parent)
                declared = data.get("format", "auto")
                detect_format(location, declared if isinstance(declared, str) else "auto")
            except ValueError as exc:
                out.add(f"{table}.{key}", str(exc))
    transforms = data.get("transforms")
    for i, spec in enumerate(transforms if isinstance(transforms, list) else []):
        transform_options(spec, f"data.transforms[{i}]", out)


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

    depth = {**{table: 0 for table in _SPEC_TABLES}, "search": 0, "strategies": 1, "profiles": 2}
    cleaned = {k: keep(v, k, depth[k]) if k in depth else v for k, v in raw.items()}
    for name, table in (cleaned.get("strategies") or {}).items():
        if "training" in table and not isinstance(table["training"], dict):
            out.add(f"strategies.{name}.training", "expected a table")
            table.pop("training")
    return {k: v for k, v in cleaned.items() if v is not None}


def nested(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Dotted override keys ("training.max_steps") as tables to merge."""
    tables: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        table, _, name = key.partition(".")
        tables.setdefault(table, {})[name] = value
    return tables


def _layered(
    raw: dict,
    strategy: str | None,
    profile: str,
    defaults: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict:
    layered = {k: raw.get(k, {}) for k in _SPEC_TABLES}
    if strategy is not None:
        own = raw.get("strategies", {}).get(strategy, {}).get("training", {})
        layered["training"] = _merge(_merge(dict(defaults or {}), layered["training"]), own)
    layered = _merge(layered, PROFILES[profile])
    layered = _merge(layered, raw.get("profiles", {}).get(profile, {}))
    return _merge(layered, nested(overrides or {}))


# The tables every task has, and the spec each builds into.
_REQUIRED_SPECS = (
    ("task", TaskInfo),
    ("model", ModelSpec),
    ("data", DataSpec),
    ("metric", MetricSpec),
    ("training", TrainingSpec),
    ("generation", GenerationSpec),
)


def _build_task(path: Path, layered: dict, out: Collector) -> TaskSpec | None:
    parts: dict[str, Any] = {table: build(cls, layered[table], table, out) for table, cls in _REQUIRED_SPECS}
    lm_eval = build(LmEvalSpec, layered["lm_eval"], "lm_eval", out) if layered["lm_eval"] else None
    forgetting = build(ForgettingSpec, layered["forgetting"], "forgetting", out) if layered["forgetting"] else None
    scenario_options = _build_scenario_options(layered, out)
    before = len(out.problems)
    _check_refs(path, layered, out)
    if (
        any(v is None for v in parts.values())
        or scenario_options is None
        or len(out.problems) > before
        or (layered["lm_eval"] and lm_eval is None)
        or (layered["forgetting"] and forgetting is None)
    ):
        return None
    spec = TaskSpec(path=path.resolve(), scenario=scenario_options, lm_eval=lm_eval, forgetting=forgetting, **parts)
    _check_fit(spec, out)
    return None if len(out.problems) > before else spec


def _check_fit(spec: TaskSpec, out: Collector) -> None:
    """Does the scenario, under its options, fit the model kind and the metrics asked for?"""
    from harness.metrics import metrics_needing
    from harness.models import declared_kind

    scenarios, _, _ = _registries()
    scenario = scenarios.get(spec.task.scenario)
    allowed = scenario.allowed_metrics(spec.scenario)
    for i, name in enumerate(spec.metric.names):
        if name in metrics_needing(scenario.provides) and name not in allowed:
            out.add(f"metric.names[{i}]", f"metric {name!r} does not apply here; use one of {', '.join(allowed)}")
    kind = declared_kind(spec.model, spec.path.parent)
    if kind != "auto" and kind not in scenario.supported_kinds(spec.scenario):
        out.add(
            "model.source",
            f"{kind} models do not fit scenario {scenario.name!r} with these options; "
            f"it takes {' or '.join(scenario.supported_kinds(spec.scenario))} models",
        )
    from harness.run.optimizers import optimizer_problems

    for key, message in optimizer_problems(spec.training):
        out.add(f"training.{key}", message)
    if spec.lm_eval is not None and kind == "encoder":
        out.add("lm_eval", "lm-eval evaluates causal or seq2seq models; this task's model is an encoder")
    if spec.forgetting is not None and (
        kind not in ("auto", "causal") or "model_loss" not in scenario.provided(spec.scenario)
    ):
        out.add("forgetting", "forgetting is measured on causal language models of a generative scenario")


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


def variant_type(raw: dict, strategy: str) -> str:
    """The registered strategy a `[strategies.NAME]` table with `type = "..."` runs; "" when none is named."""
    kind = raw.get("strategies", {}).get(strategy, {}).get("type")
    return kind if isinstance(kind, str) else ""


def _build_options(raw: dict, strategy: str, out: Collector) -> Any:
    """The options of a strategy or of a named variant (`[strategies.lora-r16] type = "lora"`)."""
    _, strategies, _ = _registries()
    key = f"strategies.{strategy}"
    table = raw.get("strategies", {}).get(strategy, {})
    kind = variant_type(raw, strategy)
    if "type" in table and not kind:
        out.add(f"{key}.type", f"expected the name of a strategy, got {table['type']!r}")
        return None
    if kind and kind not in strategies:
        out.add(f"{key}.type", str(_lookup_error(strategies, kind)))
        return None
    if kind and kind in raw.get("strategies", {}) and variant_type(raw, kind):
        out.add(f"{key}.type", f"{kind!r} is itself a variant; name a registered strategy")
        return None
    if not kind and strategy not in strategies:
        out.add(key, str(_lookup_error(strategies, strategy)) + '; or name a variant\'s strategy with type = "..."')
        return None
    cls = strategies.get(kind or strategy)
    table = {k: v for k, v in table.items() if k not in ("training", "type")}
    options = build(cls.Options, table, key, out)
    if options is not None:
        for sub, message in cls.check_options(options):
            out.add(f"{key}.{sub}", message)
    return options


def _kind_or_auto(task: TaskSpec | None) -> str:
    """The task's model kind from its files (no weights loaded); auto where only loading could tell."""
    from harness.models import declared_kind

    if task is None:
        return "auto"
    try:
        return declared_kind(task.model, task.path.parent)
    except (OSError, ValueError):
        return "auto"


def load_task_cells(
    path: Path,
    strategies: tuple[str, ...] | None,
    seeds: tuple[int, ...],
    profile: str,
    problems: list[Problem],
    overrides: Mapping[str, Any] | None = None,
    suite_variants: Mapping[str, Any] | None = None,
) -> list[CellSpec]:
    """Cells for one task file; problems are appended, never raised. `overrides` (dotted keys: a suite's
    budget, a search trial's settings) are laid over every other layer, for every strategy alike;
    `suite_variants` (a suite's `[strategies.NAME]` tables) join the task's own, which win on a shared name."""
    raw, lines = _read_toml(path, problems)
    if raw is None:
        return []
    if suite_variants and isinstance(raw.get("strategies", {}), dict):
        raw["strategies"] = {**copy.deepcopy(dict(suite_variants)), **raw.get("strategies", {})}
    out = Collector(path, lines)
    if "task" not in raw and "suite" in raw:
        out.add("suite", "this is a suite file; a task file was expected here")
    for key in raw:
        if key not in _TASK_TABLES:
            out.add(key, f"unknown table{did_you_mean(key, list(_TASK_TABLES))}; allowed: {', '.join(_TASK_TABLES)}")
    raw = _only_tables(raw, out)
    for name in raw.get("profiles", {}):
        if name not in PROFILES:
            out.add(
                f"profiles.{name}", f"unknown profile{did_you_mean(name, list(PROFILES))}; known: {', '.join(PROFILES)}"
            )
    variants = tuple(name for name in raw.get("strategies", {}) if variant_type(raw, name))
    chosen = strategies if strategies is not None else DEFAULT_STRATEGIES + variants  # a task's variants run too
    cells: list[CellSpec] = []
    base = _build_task(path, _layered(raw, None, profile), out)
    search = build(SearchSpec, raw["search"], "search", out) if "search" in raw else None
    _, registry, _ = _registries()
    model_kind = _kind_or_auto(base)
    for name in dict.fromkeys(chosen + tuple(raw.get("strategies", {}))):
        options = _build_options(raw, name, out)
        if base is None or options is None:
            continue
        before = len(out.problems)
        kind = variant_type(raw, name)
        defaults = registry.get(kind or name).training_defaults(model_kind)
        task = _build_task(path, _layered(raw, name, profile, defaults, overrides), out)
        if task is None or len(out.problems) > before or name not in chosen:
            continue
        laid = tuple(sorted((overrides or {}).items()))
        suite = tuple((suite_variants or {}).items())
        cells.extend(CellSpec(task, name, options, seed, profile, kind, laid, search, variants=suite) for seed in seeds)
    problems.extend(out.problems)
    return cells


def cell_from_resolved(
    resolved: dict[str, Any], task_path: Path, problems: list[Problem], selection: dict | None = None
) -> CellSpec | None:
    """The cell whose `resolved()` config this is, rebuilt without reading its task file (a worker on
    another node may not have it); `task_path` only anchors the task's relative data paths. The caller
    checks the rebuilt cell's id against the one it was sent."""
    scenarios, strategies, _ = _registries()
    out = Collector(task_path, None)
    plain = resolved.get("task") or {}
    parts: dict[str, Any] = {table: build(cls, plain.get(table) or {}, table, out) for table, cls in _REQUIRED_SPECS}
    lm_eval = build(LmEvalSpec, plain["lm_eval"], "lm_eval", out) if plain.get("lm_eval") else None
    forgetting = build(ForgettingSpec, plain["forgetting"], "forgetting", out) if plain.get("forgetting") else None
    scenario_name = (plain.get("task") or {}).get("scenario")
    kind = resolved.get("strategy_type") or resolved.get("strategy")
    if scenario_name not in scenarios or kind not in strategies:
        out.add("", f"unknown scenario {scenario_name!r} or strategy {kind!r} (is a plugin missing?)")
        problems.extend(out.problems)
        return None
    scenario = build(scenarios.get(scenario_name).Options, plain.get("scenario") or {}, "scenario", out)
    options = build(strategies.get(kind).Options, resolved.get("options") or {}, f"strategies.{kind}", out)
    if out.problems or any(v is None for v in parts.values()) or scenario is None or options is None:
        problems.extend(out.problems)
        return None
    task = TaskSpec(path=Path(task_path).resolve(), scenario=scenario, lm_eval=lm_eval, forgetting=forgetting, **parts)
    return CellSpec(
        task,
        resolved["strategy"],
        options,
        int(resolved["seed"]),
        str(resolved["profile"]),
        resolved.get("strategy_type") or "",
        selection=selection,
    )


# ---------------------------------------------------------------- suites and paths


def _task_files(path: Path) -> list[Path]:
    return sorted(p for p in path.glob("*.toml") if p.is_file()) if path.is_dir() else [path]


def _is_suite(path: Path) -> bool:
    try:
        return path.suffix == ".toml" and "suite" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def load_matrix(
    paths: list[str | Path],
    strategies: tuple[str, ...] | None = None,
    seeds: int | None = None,
    profile: str | None = None,
    extra_plugins: tuple[str, ...] = (),
    search: SearchSpec | None = None,
) -> Matrix:
    """Expand task files, suite files and folders into cells, or raise ConfigError.

    Explicit arguments (the command line) win over suite settings. A learning-rate search comes from
    the task's `[search]`, else the suite's, else `search` (--search). `extra_plugins` (from --plugin) are
    imported by the caller; they are recorded so that every cell's process imports them too.
    """
    problems: list[Problem] = []
    if profile is not None and profile not in PROFILES:
        problems.append(
            Problem(
                "<command line>",
                None,
                "--profile",
                f"unknown profile {profile!r}{did_you_mean(profile, list(PROFILES))}; known: {', '.join(PROFILES)}",
            )
        )
        raise ConfigError(problems)
    cells: list[CellSpec] = []
    limits: dict[str, Any] = {}
    plugins: list[str] = list(extra_plugins)
    for path in map(Path, paths):
        if not path.exists():
            problems.append(Problem(str(path), None, "", "no such file or folder"))
            continue
        suite_search = None
        if _is_suite(path):
            loaded = _load_suite(path, problems)
            if loaded is None:
                continue
            suite, suite_search, suite_variants = loaded
            limits = {
                "cell_timeout_s": suite.cell_timeout_s,
                "cell_memory_limit_mb": suite.cell_memory_limit_mb,
                "executor": suite.executor,
                "ray": suite.ray,
                "price_per_device_hour": suite.price_per_device_hour,
                "track": suite.track,
            }
            if suite.ray is not None and suite.ray.working_dir is not None:
                working_dir = (path.parent / suite.ray.working_dir).resolve()
                limits["ray"] = dataclasses.replace(suite.ray, working_dir=str(working_dir))
            try:
                load_plugins(suite.plugins)
            except ImportError as exc:
                problems.append(Problem(str(path), None, "suite.plugins", f"cannot import plugin: {exc}"))
                continue
            plugins.extend(suite.plugins)
            from harness.track import track_problems  # after the plugins: they may register sinks

            for line in track_problems(suite.track):
                problems.append(Problem(str(path), None, "suite.track", line.split(": ", 1)[1]))
            task_paths = [f for t in suite.tasks for f in _task_files(path.parent / t)]
            chosen: tuple[str, ...] | None = strategies or suite.strategies
            n_seeds, prof = seeds or suite.seeds, profile or suite.profile
            budget = {f"training.{k}": v for k, v in suite.budget.training().items()} if suite.budget else {}
        else:
            task_paths = _task_files(path)
            chosen, n_seeds, prof, budget, suite_variants = strategies, seeds or 1, profile or "default", {}, {}
        fallback = suite_search or search
        for task_path in task_paths:
            for cell in load_task_cells(
                task_path, chosen, tuple(range(n_seeds)), prof, problems, budget, suite_variants
            ):
                cells.append(cell if cell.search or not fallback else dataclasses.replace(cell, search=fallback))
    owners: dict[str, Path] = {}
    unique: dict[str, CellSpec] = {}
    for cell in cells:
        owner = owners.setdefault(cell.task.name, cell.task.path)
        if owner != cell.task.path:
            problem = Problem(
                str(cell.task.path), None, "task.name", f"task name {cell.task.name!r} is already used by {owner}"
            )
            if problem not in problems:
                problems.append(problem)
        unique.setdefault(cell.cell_id, cell)
    if problems:
        raise ConfigError(problems)
    if not unique:
        raise ConfigError([Problem(", ".join(map(str, paths)), None, "", "no task files found")])
    _check_memory(list(unique.values()), limits.get("cell_memory_limit_mb"))
    return Matrix(tuple(unique.values()), plugins=tuple(plugins), **limits)


def _check_memory(cells: list[CellSpec], limit_mb: int | None) -> None:
    """Refuse, before anything is allocated, cells whose pre-flight memory estimate exceeds the cell memory
    limit or this machine's memory: absurd lengths or batch sizes are caught here, naming the keys."""
    import psutil

    from harness.measure.preflight import cell_estimate
    from harness.report.format import human_bytes

    limit = limit_mb * 2**20 if limit_mb else psutil.virtual_memory().total
    where = f"the cell memory limit ({limit_mb} MiB)" if limit_mb else f"this machine's memory ({human_bytes(limit)})"
    problems, seen = [], set()
    for cell in cells:
        if (cell.task.path, cell.strategy) in seen:
            continue
        seen.add((cell.task.path, cell.strategy))
        found = cell_estimate(cell)
        if found is None or found.total_bytes <= limit:
            continue
        training = cell.task.training
        problems.append(
            Problem(
                str(cell.task.path),
                None,
                "model.max_length",
                f"{cell.strategy}: pre-flight memory estimate {human_bytes(found.total_bytes)} exceeds {where} "
                f"(max_length = {cell.task.model.max_length}, batch_size = {training.batch_size}, "
                f"activations {human_bytes(found.activations_bytes)}); lower model.max_length or training.batch_size",
            )
        )
    if problems:
        raise ConfigError(problems)


SUITE_TABLES = ("suite", "search", "gate", "strategies")


def load_gate(path: Path) -> GateSpec | None:
    """The `[gate]` of a suite file (None without one), or ConfigError naming file, line and key."""
    problems: list[Problem] = []
    raw, lines = _read_toml(path, problems)
    if raw is None:
        raise ConfigError(problems)
    if "gate" not in raw:
        return None
    out = Collector(path, lines)
    gate = build(GateSpec, raw["gate"], "gate", out)
    if out.problems:
        raise ConfigError(out.problems)
    return gate


def _load_suite(path: Path, problems: list[Problem]) -> tuple[SuiteInfo, SearchSpec | None, dict] | None:
    """The suite, its search, and its named variants (`[strategies.NAME]` with `type`: rows every task of
    the suite gets, unless a task defines a strategy of that name itself)."""
    raw, lines = _read_toml(path, problems)
    if raw is None:
        return None
    out = Collector(path, lines)
    variants = raw.get("strategies", {}) if isinstance(raw.get("strategies"), dict) else {}
    if "strategies" in raw and not isinstance(raw["strategies"], dict):
        out.add("strategies", "expected tables [strategies.NAME] of named variants")
    for name, table in variants.items():
        if not isinstance(table, dict) or not variant_type(raw, name):
            out.add(f"strategies.{name}.type", 'a suite defines named variants only: give each type = "STRATEGY"')
        else:
            _build_options(raw, name, out)  # the variant's options, checked here against the suite file
    for key in raw:
        if key not in SUITE_TABLES:
            out.add(
                key,
                f"unknown table{did_you_mean(key, list(SUITE_TABLES))}; "
                f"a suite file holds [suite], [search], [gate], [strategies.NAME]",
            )
    suite = build(SuiteInfo, raw.get("suite", {}), "suite", out)
    search = build(SearchSpec, raw["search"], "search", out) if "search" in raw else None
    if "gate" in raw:
        build(GateSpec, raw["gate"], "gate", out)  # checked here; `compare` reads it with load_gate
    if suite is not None:
        if suite.profile not in PROFILES:
            out.add("suite.profile", f"unknown profile {suite.profile!r}{did_you_mean(suite.profile, list(PROFILES))}")
        for i, task in enumerate(suite.tasks):
            if not (path.parent / task).exists():
                out.add(f"suite.tasks[{i}]", f"no such file or folder: {(path.parent / task).resolve()}")
    problems.extend(out.problems)
    return (suite, search, variants) if suite is not None and not out.problems else None
