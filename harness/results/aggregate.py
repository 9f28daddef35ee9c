"""Per-(task, strategy) aggregates over seeds, and the noise rule that decides ties.

Statistics over the ok cells of a group: mean, sample standard deviation (ddof=1) and the
half-width of the 95% confidence interval of the mean (Student t, n-1 degrees of freedom).
With one ok cell the standard deviation and the interval are undefined: NaN in frames,
null in JSON, and tables say "single seed: noise unknown".

Noise rule: where both strategies have per-item results on the same evaluation items for at least
two common seeds, a paired test decides (`harness.results.significance`: McNemar on per-item
correctness, a paired bootstrap on per-item scores; within noise when p >= 0.05). Otherwise two
strategies with two or more seeds each are within noise when their 95% intervals overlap. A
single-seed row against a row of two or more seeds is within noise when its value lies inside that
row's 95% prediction interval for one more seed (mean ± t·s·sqrt(1 + 1/n)): the multi-seed row's
spread stands in for the seed noise the single seed cannot show, so a row never wins only because
it has fewer seeds. Two single-seed rows with per-item results are compared by the same paired
test on their seed, which covers the noise of sampling the eval items only (`noise_scope` says so:
the seed-to-seed noise is unknown); without per-item results their noise is unknown, and
`within_noise_of_best` is then null, never true. Equal means always tie. Each aggregate row says
which rule decided its `noise_vs_best` (`noise_test`, `noise_p_value`, `noise_scope`) and lists
the strategies within noise of it (`within_noise_of`), compared pair by pair.

Contention: `contended_seeds` lists the seeds whose throughput was measured while other processes
used the CPU (or other cells shared the node); their speed and time figures understate the method.

Learning: `learned` is False when some ok cell of the group failed the learning checks
(`harness.results.learning`), with the seeds (`not_learned_seeds`), the reasons' codes and sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import harness.measure  # noqa: F401  (registers the built-in trackers' figures)
from harness.figures import FIGURES
from harness.metrics import higher_is_better
from harness.results.items import read_items
from harness.results.significance import MIN_SEEDS, paired_test
from harness.values import missing

GROUP_KEYS = ("task", "strategy")
LEADING_COLUMNS = (
    "task",
    "strategy",
    "scenario",
    "primary_metric",
    "n",
    "n_failed",
    "best",
    "within_noise_of_best",
    "noise_vs_best",
    "noise_test",
    "noise_p_value",
    "noise_scope",
    "within_noise_of",
    "rank_in_task",
    "seeds",
    "failed_statuses",
    "settings",
    "memory_saving",
    "not_comparable",
    "learned",
    "not_learned_seeds",
    "learning_reasons",
    "learning_detail",
    "contended_seeds",
)
# Settings that must match between a task's strategies for the table to compare methods alone (the
# learning rate and the strategy's own options may differ). The untuned baseline is held to the
# evaluation side only.
EVAL_SETTINGS = ("model.max_length", "data.max_eval_samples", "data_eval_sha256")
TRAIN_SETTINGS = (
    "training.batch_size",
    "training.epochs",
    "training.max_steps",
    "training.max_tokens",
    "training.max_seconds",
    "training.precision",
    "data.max_train_samples",
)
UNTRAINED = ("none",)
DERIVED = ("forgetting",)  # columns load_results computes across cells (harness.results.table)

# Values of the `noise_vs_best` column.
BEST, TIE, DIFFERS, UNKNOWN = "best", "within noise", "differs", "single seed: noise unknown"
# Values of the `noise_scope` column: what noise a TIE or DIFFERS verdict accounts for.
SEEDS_SCOPE = "seeds and eval items"
EVAL_SCOPE = "eval items only: one seed, seed noise unknown"


@dataclass(frozen=True)
class Summary:
    """Mean, sample std, 95% CI half-width and count of one figure over seeds (NaN where undefined)."""

    mean: float
    std: float
    ci95: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.ci95

    @property
    def high(self) -> float:
        return self.mean + self.ci95


def summarize(values) -> Summary:
    """Summary of the finite numbers in `values`; None and NaN are left out of n."""
    from scipy import stats

    numbers = [float(v) for v in values if not missing(v)]
    n = len(numbers)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, 0)
    mean = math.fsum(numbers) / n
    if n == 1:
        return Summary(mean, math.nan, math.nan, 1)
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in numbers) / (n - 1))
    ci95 = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Summary(mean, std, ci95, n)


def prediction_half_width(summary: Summary) -> float:
    """Half-width of the 95% prediction interval for one more seed: t(0.975, n-1) · s · sqrt(1 + 1/n)."""
    from scipy import stats

    if summary.n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, summary.n - 1)) * summary.std * math.sqrt(1 + 1 / summary.n)


def noise_verdict(a: Summary, b: Summary) -> str:
    """TIE when a and b are within noise, UNKNOWN when both have n < 2 (and means differ), else DIFFERS.
    Two or more seeds each: the 95% intervals of the means overlap. One seed against two or more: the
    single value lies inside the other's 95% prediction interval."""
    if a.n == 0 or b.n == 0:
        raise ValueError("noise_verdict needs at least one value on each side")
    if a.mean == b.mean:
        return TIE
    if a.n < 2 and b.n < 2:
        return UNKNOWN
    if a.n < 2 or b.n < 2:
        single, several = (a, b) if a.n < 2 else (b, a)
        return TIE if abs(single.mean - several.mean) <= prediction_half_width(several) else DIFFERS
    return TIE if a.low <= b.high and b.low <= a.high else DIFFERS


INTERVALS = "95% intervals of the mean over seeds"


def prediction_test(a: Summary, b: Summary) -> str:
    """How `noise_verdict` compared a single seed with a row of several: the rule, in words."""
    several = a if a.n >= 2 else b
    return f"single seed against the 95% prediction interval of the {several.n}-seed row"


@dataclass(frozen=True)
class Verdict:
    """How two strategies of one task compare: TIE, DIFFERS or UNKNOWN, by which rule, with what p-value."""

    verdict: str
    test: str
    p_value: float | None = None
    scope: str | None = None  # SEEDS_SCOPE, EVAL_SCOPE, or None (intervals, equal means, unknown)


class PairedItems:
    """Per-item results of a task's ok cells, by strategy and seed, read once on first use."""

    def __init__(self, cells) -> None:
        self.files: dict[tuple[str, str], dict[int, tuple[str, str, str, str]]] = {}
        self._read: dict[str, list[dict]] = {}
        if "items_file" not in cells:
            return
        ok = cells[(cells["status"] == "ok") & cells["items_file"].notna()]
        for row in ok.to_dict("records"):
            self.files.setdefault((row["task"], row["strategy"]), {})[int(row["seed"])] = (
                row["items_file"],
                row.get("items_measure"),
                row.get("data_eval_sha256"),
                row.get("primary_metric"),
            )

    def verdict(self, task: str, a: str, b: str, summary_a: Summary, summary_b: Summary) -> Verdict:
        """Strategy a against b on one task, by the noise rule."""
        if summary_a.mean == summary_b.mean:
            return Verdict(TIE, "equal means")
        paired = self._paired(task, a, b, MIN_SEEDS)
        if paired is not None:
            return Verdict(DIFFERS if paired.differs else TIE, paired.describe(), paired.p_value, SEEDS_SCOPE)
        verdict = noise_verdict(summary_a, summary_b)
        if verdict == UNKNOWN:  # one seed each: the items of their seed still tell eval noise
            paired = self._paired(task, a, b, 1)
            if paired is not None:
                verdict = DIFFERS if paired.differs else TIE
                return Verdict(verdict, f"{paired.describe()}; eval-sampling noise only", paired.p_value, EVAL_SCOPE)
            return Verdict(UNKNOWN, UNKNOWN)
        if min(summary_a.n, summary_b.n) < 2:
            return Verdict(verdict, prediction_test(summary_a, summary_b), scope=SEEDS_SCOPE)
        return Verdict(verdict, INTERVALS)

    def _paired(self, task: str, a: str, b: str, min_seeds: int):
        files_a, files_b = self.files.get((task, a), {}), self.files.get((task, b), {})
        seeds = [
            s for s in sorted(files_a.keys() & files_b.keys()) if files_a[s][1:] == files_b[s][1:] and files_a[s][2]
        ]  # same measure, same eval rows
        measures = {files_a[s][1:2] + files_a[s][3:] for s in seeds}  # (items measure, primary metric)
        if len(measures) != 1:
            return None
        measure, metric = measures.pop()
        try:
            return paired_test(
                {s: self._items(files_a[s][0]) for s in seeds},
                {s: self._items(files_b[s][0]) for s in seeds},
                measure,
                min_seeds,
                metric,
            )
        except (OSError, ValueError):
            return None  # per-item files missing or unreadable: the interval rule decides

    def _items(self, path: str) -> list[dict]:
        if path not in self._read:
            self._read[path] = read_items(path)
        return self._read[path]


def within_noise(a: Summary, b: Summary) -> bool | None:
    """The noise rule without per-item results: True when the two cannot be told apart, False when they
    differ, None when the noise is unknown (one seed each)."""
    verdict = noise_verdict(a, b)
    return None if verdict == UNKNOWN else verdict == TIE


def _numeric_columns(cells) -> list[str]:
    metric_columns = sorted(c for c in cells.columns if c.startswith("metric."))
    figures = [f.name for f in FIGURES.registered() if f.aggregate]  # every tracker's, plugins' too
    return [c for c in [*figures, *DERIVED] if c in cells.columns] + metric_columns


def _first(series):
    present = [v for v in series if not missing(v)]
    return present[0] if present else None


def aggregate(cells):
    """One row per (task, strategy) of a per-cell frame (`load_results`): mean/std/ci95 per figure,
    n (ok cells), n_failed, best, within_noise_of_best, noise_vs_best, rank_in_task (1 = best)."""
    import pandas as pd

    if "search_role" in cells.columns:  # search trials scored on validation rows, not eval: never in these rows
        cells = cells[cells["search_role"] != "trial"]
    figures = _numeric_columns(cells)
    rows = []
    for (task, strategy), group in cells.groupby(list(GROUP_KEYS), sort=True):
        ok = group[group["status"] == "ok"]
        row = {
            "task": task,
            "strategy": strategy,
            "scenario": _first(group["scenario"]),
            "primary_metric": _first(group["primary_metric"]),
            "n": int(len(ok)),
            "n_failed": int(len(group) - len(ok)),
            "seeds": ",".join(str(s) for s in sorted(ok["seed"])),
            "failed_statuses": ",".join(sorted(set(group.loc[group["status"] != "ok", "status"]))),
            "settings": settings_text(group.iloc[0]),
            "memory_saving": _first(group["memory_saving"]) if "memory_saving" in group else None,
            **learning_summary(ok),
            "contended_seeds": _contended_seeds(ok),
        }
        for column in figures:
            summary = summarize(pd.to_numeric(ok[column], errors="coerce"))
            row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_ci95"] = (
                summary.mean,
                summary.std,
                summary.ci95,
            )
        rows.append(row)
    frame = _mark_best(pd.DataFrame(rows, columns=None if rows else list(LEADING_COLUMNS)), PairedItems(cells))
    notes = comparability(cells) if len(cells) else {}
    frame["not_comparable"] = [notes.get(task, "") for task in frame["task"]]
    figure_columns = [c for c in frame.columns if c not in LEADING_COLUMNS]
    return frame[list(LEADING_COLUMNS) + figure_columns]


def _contended_seeds(ok) -> str:
    """'0,2': the seeds of the ok cells whose throughput and times were measured under contention."""
    if "contended" not in ok:
        return ""
    return ",".join(str(seed) for seed, flag in zip(ok["seed"], ok["contended"]) if flag is True or flag == True)  # noqa: E712


def learning_summary(ok) -> dict:
    """The learning checks over a group's ok cells: learned unless one failed; None when none was checked."""
    if "learned" not in ok:
        return {"learned": None, "not_learned_seeds": "", "learning_reasons": None, "learning_detail": None}
    checked = ok[ok["learned"].notna()]
    failed = checked[checked["learned"] == False]  # noqa: E712  (an object column of True, False, None)
    codes = [c for text in failed["learning_reasons"] if isinstance(text, str) for c in text.split(",")]
    return {
        "learned": None if checked.empty else failed.empty,
        "not_learned_seeds": ",".join(str(s) for s in sorted(failed["seed"])),
        "learning_reasons": ",".join(dict.fromkeys(codes)) or None,
        "learning_detail": " ".join(
            f"seed {seed}: {text}" if len(checked) > 1 else text
            for seed, text in zip(failed["seed"], failed["learning_detail"])
            if text
        )
        or None,
    }


def comparability(cells) -> dict[str, str]:
    """Per task, what differs between its strategies beyond the learning rate ('' when nothing does):
    'max_length differs: full 64, lora 128'."""
    notes: dict[str, str] = {}
    for task, group in cells.groupby("task", sort=True):
        kinds = group["strategy_type"] if "strategy_type" in group else group["strategy"]
        trained = group[~kinds.isin(UNTRAINED)]
        clauses = []
        for column, rows in [(c, group) for c in EVAL_SETTINGS] + [(c, trained) for c in TRAIN_SETTINGS]:
            if column not in rows:
                continue
            values = {s: rows.loc[rows["strategy"] == s, column].iloc[0] for s in sorted(set(rows["strategy"]))}
            if len({"default" if missing(v) else str(v) for v in values.values()}) > 1:
                listed = ", ".join(f"{s} {'default' if missing(v) else _short(v)}" for s, v in values.items())
                clauses.append(f"{column.split('.')[-1]} differs: {listed}")
        notes[task] = "; ".join(clauses)
    return notes


def settings_text(cell) -> str:
    """'r=8, alpha=16; learning_rate=0.001': a cell's strategy options, then the training settings that
    appear as columns (those some cell of the run sets away from the default)."""
    parts = []
    for prefix in ("option.", "training."):
        pairs = [
            f"{k.removeprefix(prefix)}={_short(v)}"
            for k, v in cell.items()
            if isinstance(k, str) and k.startswith(prefix) and not missing(v)
        ]
        if pairs:
            parts.append(", ".join(pairs))
    return "; ".join(parts)


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def group_summary(row, column: str = "primary_value") -> Summary:
    """The Summary of one figure from an aggregate row (n is the count of ok cells)."""
    return Summary(row[f"{column}_mean"], row[f"{column}_std"], row[f"{column}_ci95"], int(row["n"]))


def _mark_best(frame, items: PairedItems):
    import pandas as pd

    frame["best"] = False
    frame["within_noise_of_best"] = pd.Series([False] * len(frame), index=frame.index, dtype=object)
    frame["noise_vs_best"] = None
    frame["noise_test"] = None
    frame["noise_p_value"] = math.nan
    frame["noise_scope"] = None
    frame["within_noise_of"] = ""
    frame["rank_in_task"] = math.nan
    if frame.empty or "primary_value_mean" not in frame:
        return frame
    for task, group in frame.groupby("task", sort=False):
        scored = group[group["primary_value_mean"].notna()]
        if scored.empty:
            continue
        higher = higher_is_better(_first(scored["primary_metric"]))
        means = scored["primary_value_mean"]
        frame.loc[scored.index, "rank_in_task"] = means.rank(ascending=not higher, method="min")
        best_row = best_index(scored, higher)
        frame.loc[best_row, "best"] = True
        frame.loc[best_row, "noise_vs_best"] = BEST
        ties: dict = {index: [] for index in scored.index}
        for i, first in enumerate(scored.index):
            for second in scored.index[i + 1 :]:
                verdict = items.verdict(
                    task,
                    frame.loc[first, "strategy"],
                    frame.loc[second, "strategy"],
                    group_summary(frame.loc[first]),
                    group_summary(frame.loc[second]),
                )
                if verdict.verdict == TIE:
                    ties[first].append(frame.loc[second, "strategy"])
                    ties[second].append(frame.loc[first, "strategy"])
                other = second if first == best_row else first if second == best_row else None
                if other is not None:
                    frame.loc[other, "noise_vs_best"] = verdict.verdict
                    frame.loc[other, "within_noise_of_best"] = (
                        None if verdict.verdict == UNKNOWN else verdict.verdict == TIE
                    )
                    frame.loc[other, "noise_test"] = verdict.test
                    frame.loc[other, "noise_p_value"] = math.nan if verdict.p_value is None else verdict.p_value
                    frame.loc[other, "noise_scope"] = verdict.scope
        for index, names in ties.items():
            frame.loc[index, "within_noise_of"] = ",".join(sorted(names))
    return frame


def tied_with(row, other) -> bool:
    """Whether aggregate row `other` is within noise of `row` (itself included), by the pairwise
    `within_noise_of` column where the frame has it, else by the interval rule."""
    if other["strategy"] == row["strategy"]:
        return True
    if isinstance(row.get("within_noise_of"), str):
        return other["strategy"] in row["within_noise_of"].split(",")
    return noise_verdict(group_summary(other), group_summary(row)) == TIE


def best_index(scored, higher: bool):
    """Index of the row with the best primary mean; exact ties go to the lower peak memory, then the name."""
    memory = scored.get("peak_memory_bytes_mean")
    keys = [
        (
            (-m if higher else m),
            (memory[i] if memory is not None and not missing(memory[i]) else math.inf),
            scored.loc[i, "strategy"],
        )
        for i, m in scored["primary_value_mean"].items()
    ]
    return scored.index[min(range(len(keys)), key=keys.__getitem__)]


def best_by_task(aggregates) -> dict[str, dict]:
    """For each task: the best strategy by primary mean and the strategies tied with it within noise."""
    answer = {}
    for task, group in aggregates.groupby("task", sort=True):
        best = group[group["best"]]
        if best.empty:
            continue
        answer[task] = {
            "best": best["strategy"].iloc[0],
            "ties": list(group.loc[group["noise_vs_best"] == TIE, "strategy"]),
            "noise_unknown": list(group.loc[group["noise_vs_best"] == UNKNOWN, "strategy"]),
        }
    return answer
