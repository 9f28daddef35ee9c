"""'Which strategy should I pick?': one strategy per task under memory and metric constraints, with a reason.

Candidates are the strategies with at least one ok cell, except `none` (the untuned baseline).
--max-memory drops those whose mean peak memory is above it, --min-metric those whose mean
primary metric misses it, and a strategy that did not learn (some ok cell failed the learning
checks, `harness.results.learning`) is dropped too, unless every candidate left failed them: then
the pick is made among those and says so. Then --prefer decides: accuracy (the default) takes the
best mean and, among strategies within noise of it, the one needing the least memory; memory takes
the least peak memory; speed the most training tokens/s. With one seed, "within noise" is the
paired test on the eval items (eval-sampling noise only), and the reason says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.metrics import higher_is_better
from harness.report.format import (
    did_not_learn,
    eval_noise_only,
    human_bytes,
    metric_value,
    missing,
    number,
    strategy_sort_key,
)
from harness.results.aggregate import best_index, tied_with

PREFERENCES = ("accuracy", "memory", "speed")
BASELINE_STRATEGY = "none"


@dataclass(frozen=True)
class Constraints:
    """What the user asks for; None means no limit."""

    max_memory_bytes: int | None = None
    min_metric: float | None = None
    prefer: str = "accuracy"

    def __post_init__(self):
        if self.prefer not in PREFERENCES:
            raise ValueError(f"prefer must be one of {', '.join(PREFERENCES)}, got {self.prefer!r}")

    def describe(self) -> str:
        parts = [f"prefer {self.prefer}"]
        if self.max_memory_bytes is not None:
            parts.append(f"peak memory at most {human_bytes(self.max_memory_bytes)} ({self.max_memory_bytes:,} bytes)")
        if self.min_metric is not None:
            parts.append(
                f"primary metric at least {number(self.min_metric)} "
                f"(at most, for lower-is-better metrics such as perplexity)"
            )
        return ", ".join(parts)


@dataclass(frozen=True)
class Recommendation:
    """The pick for one task (strategy None when nothing meets the constraints) and why."""

    task: str
    strategy: str | None
    reason: str
    excluded: dict[str, tuple[str, str]] = field(default_factory=dict)  # strategy -> (constraint, its figure)


def _exclusion(row, constraints: Constraints, higher: bool) -> tuple[str, str] | None:
    """Why this strategy cannot be picked, as (constraint, figure), or None."""
    if int(row["n"]) == 0:
        return "failed", row["failed_statuses"] or "failed"
    memory = row.get("peak_memory_bytes_mean")
    if constraints.max_memory_bytes is not None:
        if missing(memory):
            return "unmeasured", "peak memory not measured"
        if memory > constraints.max_memory_bytes:
            return "memory", human_bytes(memory)
    if constraints.min_metric is not None:
        value = row["primary_value_mean"]
        if (value < constraints.min_metric) if higher else (value > constraints.min_metric):
            return "metric", number(value)
    return None


def _exclusion_text(excluded: dict[str, tuple[str, str]], constraints: Constraints, metric: str) -> str:
    """'full (1.22 GiB) and lora (921 MiB) are excluded because their peak memory exceeds --max-memory 800 MiB'."""
    verbs = {
        "memory": f"peak memory exceeds --max-memory {human_bytes(constraints.max_memory_bytes)}",
        "metric": f"{metric} misses --min-metric {number(constraints.min_metric)}",
        "failed": "cells all failed",
        "unmeasured": "peak memory was not measured",
        "not learned": "cells failed the learning checks",
    }
    clauses, ordered = [], sorted(excluded.items(), key=lambda item: strategy_sort_key(item[0]))
    for kind, verb in verbs.items():
        names = [f"{s} ({figure})" for s, (k, figure) in ordered if k == kind]
        if names:
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            clauses.append(
                f"{listed} {'is' if len(names) == 1 else 'are'} excluded because "
                f"{'its' if len(names) == 1 else 'their'} {verb}"
            )
    return "; ".join(clauses)


def _pick(eligible, prefer: str, higher: bool):
    """The chosen row and a clause saying why it wins."""
    metric = eligible["primary_metric"].iloc[0]  # eligible rows all have ok cells
    values = eligible["primary_value_mean"]
    best_accuracy = eligible.loc[best_index(eligible[values.notna()], higher)]
    memory = eligible["peak_memory_bytes_mean"].fillna(float("inf"))
    if prefer == "memory":
        row = eligible.loc[memory.idxmin()]
        return row, (
            f"it needs the least peak memory ({human_bytes(row['peak_memory_bytes_mean'])}) "
            f"and reaches {metric} {metric_value(row['primary_value_mean'])}" + _versus_best(row, best_accuracy, metric)
        )
    if prefer == "speed":
        speed = eligible["train_tokens_per_s_mean"].dropna()
        if not speed.empty:
            row = eligible.loc[speed.idxmax()]
            return row, (
                f"it trains fastest ({number(row['train_tokens_per_s_mean'])} tokens/s) "
                f"and reaches {metric} {metric_value(row['primary_value_mean'])}"
                + _versus_best(row, best_accuracy, metric)
            )
    tied = eligible[[tied_with(best_accuracy, r) for _, r in eligible.iterrows()]]
    row = tied.loc[memory[tied.index].idxmin()] if len(tied) else best_accuracy
    if row["strategy"] != best_accuracy["strategy"]:
        scope = (
            f"eval noise (p = {row['noise_p_value']:.2g}; one seed: seed noise unknown)"
            if eval_noise_only(row) and row["noise_vs_best"] and not missing(row.get("noise_p_value"))
            else "noise"
        )
        clause = (
            f"its {metric} ({metric_value(row['primary_value_mean'], row['primary_value_std'])}) is within "
            f"{scope} of the best, {best_accuracy['strategy']} "
            f"({metric_value(best_accuracy['primary_value_mean'], best_accuracy['primary_value_std'])}), "
            f"and it needs less peak memory ({human_bytes(row['peak_memory_bytes_mean'])} against "
            f"{human_bytes(best_accuracy['peak_memory_bytes_mean'])})"
        )
    else:
        others = sorted((s for s in tied["strategy"] if s != row["strategy"]), key=strategy_sort_key)
        clause = f"it has the best {metric} ({metric_value(row['primary_value_mean'], row['primary_value_std'])})"
        if others:
            listed = others[0] if len(others) == 1 else ", ".join(others[:-1]) + " and " + others[-1]
            clause += (
                f", tied within noise with {listed}, and needs the least peak memory of those "
                f"({human_bytes(row['peak_memory_bytes_mean'])})"
            )
    return row, clause + ("" if prefer == "accuracy" else " (no training throughput was measured)")


def _versus_best(row, best_accuracy, metric: str) -> str:
    if row["primary_value_mean"] == best_accuracy["primary_value_mean"]:
        return f", the best {metric} of the strategies that qualify"
    return (
        f" (best {metric} that qualifies: {best_accuracy['strategy']} with "
        f"{metric_value(best_accuracy['primary_value_mean'])})"
    )


def recommend_task(task: str, group, constraints: Constraints) -> Recommendation:
    """The recommendation for one task from its aggregate rows."""
    candidates = group[group["strategy"] != BASELINE_STRATEGY]
    measured = group.loc[group["n"] > 0, "primary_metric"].dropna()
    metric = measured.iloc[0] if len(measured) else group["primary_metric"].iloc[0]
    higher = higher_is_better(metric)
    reasons = {row["strategy"]: _exclusion(row, constraints, higher) for _, row in candidates.iterrows()}
    excluded = {strategy: why for strategy, why in reasons.items() if why}
    eligible = candidates[~candidates["strategy"].isin(list(excluded))]
    not_learned = {
        row["strategy"]: ("not learned", row.get("learning_reasons") or "checks failed")
        for _, row in eligible.iterrows()
        if did_not_learn(row)
    }
    warning = ""
    if not_learned and len(not_learned) == len(eligible):  # every candidate left failed: say so, pick anyway
        warning = (
            " Warning: no strategy learned on this task (every candidate failed the learning checks), "
            "so this pick did not learn either; see each row's reasons before trusting any of them."
        )
    else:
        excluded.update(not_learned)
        eligible = eligible[~eligible["strategy"].isin(list(not_learned))]
    excluded_text = _exclusion_text(excluded, constraints, metric)
    if eligible.empty:
        reason = "No strategy meets the constraints" + (f": {excluded_text}." if excluded_text else ".")
        return Recommendation(task, None, reason, excluded)
    row, clause = _pick(eligible, constraints.prefer, higher)
    reason = f"Pick {row['strategy']}: {clause}" + (f"; {excluded_text}" if excluded_text else "") + "." + warning
    caveat = group["not_comparable"].iloc[0] if "not_comparable" in group else ""
    if caveat:
        reason += f" Caution, not comparable: {caveat}."
    return Recommendation(task, row["strategy"], reason, excluded)


def recommend(aggregates, constraints: Constraints) -> list[Recommendation]:
    """One recommendation per task, in task order."""
    return [recommend_task(task, group, constraints) for task, group in aggregates.groupby("task", sort=True)]


def recommendation_lines(aggregates, constraints: Constraints) -> list[str]:
    """The terminal answer: the constraints, then one line per task."""
    lines = [f"constraints: {constraints.describe()}"]
    for item in recommend(aggregates, constraints):
        lines.append(f"{item.task}: {item.strategy or '(none fits)'} - {item.reason}")
    return lines
