"""Cells are what they are: cells of one (task, strategy) whose configs differ beyond the seed are never
pooled as seeds of one row.

That happens when folders of different configs are merged with `--force` (a matrix and the search
run of one of its strategies, say), or when result files are copied together by hand. Each config
then becomes a row of its own, its strategy renamed after the settings that tell them apart
(`adapter-learning_rate=0.001`, `adapter-learning_rate=0.003`), as a named variant would be. Search
trials are left alone: they are scored on validation rows and never enter the aggregate rows.
"""

from __future__ import annotations

import hashlib
import json

LABELLED_SETTINGS = 2  # more differing settings than this: the variant is named by a digest of its config


# Settings added after results existed, with their defaults: at the default they are left out of a cell's
# identity, so a cell keeps the id it had before they existed (its results, baselines and recorded times
# still match); set to anything else, they make a config of their own.
LATER_DEFAULTS: dict[tuple[str, ...], object] = {
    ("task", "training", "optimizer"): "adamw",
    ("task", "training", "galore_rank"): 128,
    ("task", "training", "galore_update_proj_gap"): 200,
    ("task", "training", "galore_scale"): 0.25,
    ("task", "training", "galore_target_modules"): None,
    ("options", "quantize"): "none",
    ("options", "compute_dtype"): "auto",
    ("options", "double_quant"): True,
    ("task", "training", "stop_after_steps"): None,
    ("task", "training", "resume_from"): None,
    ("task", "data", "score_on"): "validation",
}


def _without(tree: dict, path: tuple[str, ...], default: object) -> dict:
    """`tree` without the leaf at `path` when it holds `default` (copies along the path only)."""
    head, *rest = path
    if head not in tree:
        return tree
    if not rest:
        return {k: v for k, v in tree.items() if k != head} if tree[head] == default else tree
    inner = tree[head]
    return {**tree, head: _without(inner, tuple(rest), default)} if isinstance(inner, dict) else tree


def identity(config: dict | None, seed: bool = False) -> dict:
    """What of a cell's config decides its result: without the seed (unless `seed`: a cell's id), without
    the data check's levels (`task.data.checks`: they refuse or warn, the rows a cell uses are the same),
    and without later settings at their defaults (LATER_DEFAULTS). Without `seed`, a row's identity, it
    also leaves out `training.resume_from`: a run continued from a checkpoint of the same config is the
    run made in one go (pick's seed-0 final and its fresh seeds are one row)."""
    out = {k: v for k, v in (config or {}).items() if seed or k != "seed"}
    task = out.get("task")
    if isinstance(task, dict) and isinstance(task.get("data"), dict) and "checks" in task["data"]:
        out["task"] = {**task, "data": {k: v for k, v in task["data"].items() if k != "checks"}}
    for path, default in LATER_DEFAULTS.items():
        out = _without(out, path, default)
    if not seed:
        resumed = ((out.get("task") or {}).get("training") or {}).get("resume_from")
        out = _without(out, ("task", "training", "resume_from"), resumed)
    return out


def config_key(result: dict) -> str:
    """The cell's config without its seed, as canonical JSON: equal for the seeds of one row."""
    return json.dumps(identity(result.get("config")), sort_keys=True, default=str)


def config_digest(config: dict) -> str:
    """A short digest of a cell's config without its seed (the key of the recorded times, harness.run.eta)."""
    return hashlib.sha256(config_key({"config": config}).encode()).hexdigest()[:16]


def _leaves(value, prefix: str = "") -> dict[str, str]:
    if isinstance(value, dict):
        leaves: dict[str, str] = {}
        for key, inner in value.items():
            leaves.update(_leaves(inner, f"{prefix}.{key}" if prefix else str(key)))
        return leaves
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def differing_settings(configs: list[dict]) -> list[str]:
    """The dotted config paths whose values are not the same in every one of `configs`."""
    flat = [_leaves(c) for c in configs]
    paths = sorted(set().union(*flat))
    return [p for p in paths if len({f.get(p, "<absent>") for f in flat}) > 1]


def _value_text(text: str) -> str:
    value = json.loads(text) if text != "<absent>" else "unset"
    return f"{value:g}" if isinstance(value, float) else str(value)


def variant_names(results: list[dict]) -> dict[str, str]:
    """cell_id -> the row name for every non-trial cell whose (task, strategy) holds more than one config;
    cells of a single config keep their strategy name (and are not listed)."""
    groups: dict[tuple[str, str], dict[str, list[dict]]] = {}
    for result in results:
        if (result.get("search") or {}).get("role") == "trial":
            continue
        groups.setdefault((result["task"], result["strategy"]), {}).setdefault(config_key(result), []).append(result)
    names: dict[str, str] = {}
    for (_, strategy), by_config in groups.items():
        if len(by_config) < 2:
            continue
        configs = {key: identity(cells[0].get("config")) for key, cells in by_config.items()}
        paths = differing_settings(list(configs.values()))
        for key, cells in by_config.items():
            leaves = _leaves(configs[key])
            if 0 < len(paths) <= LABELLED_SETTINGS:
                label = ",".join(f"{p.rsplit('.', 1)[-1]}={_value_text(leaves.get(p, '<absent>'))}" for p in paths)
            else:
                label = "config=" + hashlib.sha256(key.encode()).hexdigest()[:8]
            for cell in cells:
                names[cell["cell_id"]] = f"{strategy}-{label}"
    return names


def kept_apart(results: list[dict]) -> list[str]:
    """One line per (task, strategy) whose cells hold several configs: what differs, and the rows made."""
    names = variant_names(results)
    rows: dict[tuple[str, str], set[str]] = {}
    for result in results:
        if result["cell_id"] in names:
            rows.setdefault((result["task"], result["strategy"]), set()).add(names[result["cell_id"]])
    return [
        f"{task}/{strategy}: cells of different configs kept apart as {', '.join(sorted(variants))}"
        for (task, strategy), variants in sorted(rows.items())
    ]
