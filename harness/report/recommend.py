"""'Which strategy should I pick?': one strategy per task under memory and metric constraints, with a reason.

Candidates are the strategies with at least one ok cell, except `none` (the untuned baseline).
--max-memory drops those whose mean peak memory is above it, --min-metric those whose mean
primary metric misses it, and a strategy that did not learn (some ok cell failed the learning
checks, `harness.results.learning`) is dropped too, unless every candidate left failed them: then
the pick is made among those and says so. Then --prefer decides:

- accuracy (the default): the rows within noise of the best mean tie, and a tie is the verdict
  ("full, lora and frozen-lower tie on accuracy; among them lora uses the least peak memory"): it is
  broken on memory, never on the third decimal. With one seed, "within noise" is the paired test on
  the eval items (eval-sampling noise only), and the reason says so; a single-seed row against rows
  of several seeds is judged by their prediction interval (`harness.results.aggregate`), so it never
  wins only because it has fewer seeds. Where more seeds could separate a tie (or tell rows whose
  noise is unknown apart), the answer names the cheapest next run.
- memory: the least peak memory.
- speed: the most training tokens/s, but only on throughput measured on a quiet machine: if some
  candidate's cells ran under contention, it refuses and names the cells to re-run, unless
  --allow-contended, and then it says what the ranking rests on.
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
from harness.results.aggregate import UNKNOWN, best_index, tied_with

PREFERENCES = ("accuracy", "memory", "speed")
BASELINE_STRATEGY = "none"


@dataclass(frozen=True)
class Constraints:
    """What the user asks for; None means no limit."""

    max_memory_bytes: int | None = None
    min_metric: float | None = None
    prefer: str = "accuracy"
    allow_contended: bool = False  # --prefer speed may rank on throughput measured under contention

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
        if self.allow_contended:
            parts.append("throughput measured under contention allowed")
        return ", ".join(parts)


@dataclass(frozen=True)
class Recommendation:
    """The pick for one task (strategy None when nothing meets the constraints) and why."""

    task: str
    strategy: str | None
    reason: str
    excluded: dict[str, tuple[str, str]] = field(default_factory=dict)  # strategy -> (constraint, its figure)
    ranked: tuple[str, ...] = ()  # the strategies it chose among, best primary mean first


def _ranked(eligible, higher: bool) -> tuple[str, ...]:
    """The eligible strategies by primary mean, best first (exact ties as `best_index` breaks them); rows
    without a mean last."""
    rows = eligible[eligible["primary_value_mean"].notna()]
    order = []
    while len(rows):
        best = best_index(rows, higher)
        order.append(rows.loc[best, "strategy"])
        rows = rows.drop(index=best)
    return tuple(order) + tuple(eligible.loc[eligible["primary_value_mean"].isna(), "strategy"])


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
            clauses.append(
                f"{_listed(names)} {'is' if len(names) == 1 else 'are'} excluded because "
                f"{'its' if len(names) == 1 else 'their'} {verb}"
            )
    return "; ".join(clauses)


def _saving_clause(row, excluded: dict[str, tuple[str, str]], constraints: Constraints) -> str:
    """' It fits --max-memory 600 MiB through its 4-bit NF4 base (peak 410 MiB); lora exceeds it.' for a
    pick that saves memory under a memory limit; '' otherwise."""
    saving = row.get("memory_saving")
    if constraints.max_memory_bytes is None or missing(saving) or not saving:
        return ""
    over = sorted((s for s, (kind, _) in excluded.items() if kind == "memory"), key=strategy_sort_key)
    peak = row.get("peak_memory_bytes_mean")
    text = f" It fits --max-memory {human_bytes(constraints.max_memory_bytes)} through its {saving}"
    text += f" (peak {human_bytes(peak)})" if not missing(peak) else ""
    if over:
        text += f"; {_listed(over)} {'exceeds' if len(over) == 1 else 'exceed'} it"
    return text + "."


def _listed(names: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _contended_cells(rows) -> list[str]:
    """'lora seed 0' for every cell of `rows` whose throughput was measured under contention."""
    return [
        f"{row['strategy']} seed {seed}"
        for _, row in rows.iterrows()
        for seed in str(row.get("contended_seeds") or "").split(",")
        if seed
    ]


def _tie_scope(tied, best_accuracy) -> str:
    """What noise the tie accounts for: 'eval noise only, seed noise unknown: p = 0.41 against full' or
    'noise over seeds'."""
    others = tied[tied["strategy"] != best_accuracy["strategy"]]
    if len(others) and all(eval_noise_only(row) for _, row in others.iterrows()):
        p_values = [
            f"p = {row['noise_p_value']:.2g} for {row['strategy']}"
            for _, row in others.iterrows()
            if not missing(row.get("noise_p_value"))
        ]
        return (
            f"paired test on the eval items of one seed{': ' + ', '.join(p_values) if p_values else ''}; "
            "seed noise unknown"
        )
    return "within noise over seeds"


def _next_seeds(rows, purpose: str) -> str:
    """'; cheapest next step: run 2 more seeds of frozen-lower (`--seeds 3`) to separate them' for the rows
    with fewer seeds than the most any has (at least 3); '' when every row has that many."""
    target = max(3, int(rows["n"].max()))
    short = sorted(
        ((row["strategy"], target - int(row["n"])) for _, row in rows.iterrows() if int(row["n"]) < target),
        key=lambda item: strategy_sort_key(item[0]),
    )
    if not short:
        return ""
    runs = _listed([f"{more} more seed{'s' if more > 1 else ''} of {name}" for name, more in short])
    return f"; cheapest next step: run {runs} (`--seeds {target}` with `--strategies`) {purpose}"


def _pick(eligible, constraints: Constraints, higher: bool):
    """The chosen row (None when the ranking is refused) and a clause saying why it wins, or why not."""
    prefer = constraints.prefer
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
            contended = _contended_cells(eligible.loc[speed.index])
            if contended and not constraints.allow_contended:
                return None, (
                    f"refusing to rank on training speed: the throughput of {_listed(contended)} was measured "
                    f"under contention (other processes used the CPU, or other cells shared the node), so it "
                    f"understates the method; re-run those cells on a quiet machine (`tunebench run ... "
                    f"--exclusive`), or pass --allow-contended to rank on these figures anyway"
                )
            row = eligible.loc[speed.idxmax()]
            caution = (
                f" (caution: ranked with --allow-contended on throughput measured under contention for "
                f"{_listed(contended)})"
                if contended
                else ""
            )
            return row, (
                f"it trains fastest ({number(row['train_tokens_per_s_mean'])} tokens/s) "
                f"and reaches {metric} {metric_value(row['primary_value_mean'])}"
                + _versus_best(row, best_accuracy, metric)
                + caution
            )
    tied = eligible[[tied_with(best_accuracy, r) for _, r in eligible.iterrows()]]
    row = tied.loc[memory[tied.index].idxmin()] if len(tied) else best_accuracy
    if len(tied) > 1:
        by_value = sorted(
            tied.iterrows(),
            key=lambda item: -item[1]["primary_value_mean"] if higher else item[1]["primary_value_mean"],
        )
        values_text = ", ".join(
            f"{r['strategy']} {metric_value(r['primary_value_mean'], r['primary_value_std'])}" for _, r in by_value
        )
        clause = (
            f"{_listed([r['strategy'] for _, r in by_value])} tie on {metric} ({values_text}; "
            f"{_tie_scope(tied, best_accuracy)}); among them {row['strategy']} uses the least peak memory "
            f"({human_bytes(row['peak_memory_bytes_mean'])})"
        )
    else:
        clause = f"it has the best {metric} ({metric_value(row['primary_value_mean'], row['primary_value_std'])})"
    unknown = eligible[eligible["noise_vs_best"] == UNKNOWN]
    if len(unknown):
        clause += (
            f"; against {_listed(sorted(unknown['strategy'], key=strategy_sort_key))} the noise is unknown "
            f"(single seeds without per-item results)"
        )
    if len(tied) > 1 or len(unknown):
        clause += _next_seeds(eligible.loc[[*tied.index, *unknown.index]], "to separate them")
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
    row, clause = _pick(eligible, constraints, higher)
    ranked = _ranked(eligible, higher)
    if row is None:
        return Recommendation(task, None, clause[0].upper() + clause[1:] + ".", excluded, ranked)
    reason = f"Pick {row['strategy']}: {clause}" + (f"; {excluded_text}" if excluded_text else "") + "."
    reason += _saving_clause(row, excluded, constraints) + warning
    caveat = group["not_comparable"].iloc[0] if "not_comparable" in group else ""
    if caveat:
        reason += f" Caution, not comparable: {caveat}."
    return Recommendation(task, row["strategy"], reason, excluded, ranked)


def recommend(aggregates, constraints: Constraints) -> list[Recommendation]:
    """One recommendation per task, in task order."""
    return [recommend_task(task, group, constraints) for task, group in aggregates.groupby("task", sort=True)]


def recommendation_lines(aggregates, constraints: Constraints) -> list[str]:
    """The terminal answer: the constraints, then one line per task."""
    lines = [f"constraints: {constraints.describe()}"]
    for item in recommend(aggregates, constraints):
        lines.append(f"{item.task}: {item.strategy or '(none fits)'} - {item.reason}")
    return lines
