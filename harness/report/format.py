"""Number, size and noise formatting shared by the exports, the terminal and the HTML report."""

from __future__ import annotations

import re

from harness.results.aggregate import BEST, DIFFERS, EVAL_SCOPE, TIE, UNKNOWN
from harness.values import missing  # noqa: F401  (re-exported for the report modules)

# Built-in strategies first, in the README's order; any other strategy follows by name.
STRATEGY_ORDER = ("none", "full", "frozen-lower", "adapter", "lora", "peft")
BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
# Short markers used in every table, and what they mean.
NOISE_MARKERS = {BEST: "★", TIE: "≈", UNKNOWN: "?", DIFFERS: ""}
NOISE_LEGEND = {
    BEST: "best mean on the task",
    TIE: (
        "within noise of the best: a paired test on the same eval items and seeds (McNemar on "
        "right/wrong items, paired bootstrap on item scores) finds no difference at the 5% level; "
        "without per-item results for 2+ common seeds, the 95% CIs overlap; or equal means"
    ),
    UNKNOWN: "single seed without per-item results: noise unknown, so not ranked against the best",
    "eval noise": (
        "one seed: the paired test on the same eval items says whether two rows differ beyond the noise "
        "of sampling the eval items (p shown); the seed-to-seed noise is unknown"
    ),
    "did not learn": (
        "a tuned row that failed the learning checks: it does not beat the untuned model or the trivial "
        "reference beyond eval noise, predicts nearly one class or output, or its training loss stayed "
        "flat or diverged; its value says nothing about the method"
    ),
}
NOT_LEARNED_MARK = "✗"
LEGEND_MARKERS = {**NOISE_MARKERS, "eval noise": "(p = …)", "did not learn": NOT_LEARNED_MARK}


def eval_noise_only(row) -> bool:
    """Whether the row's verdict against the best comes from one seed's eval items alone."""
    return row.get("noise_scope") == EVAL_SCOPE and row.get("noise_vs_best") in (TIE, DIFFERS)


def verdict_words(row) -> str:
    """'within noise', 'worse', 'noise unknown', or with one seed 'within eval noise (p = 0.32; seed noise
    unknown)' / 'differs (p = 0.001; eval noise only, seed noise unknown)'."""
    verdict = row.get("noise_vs_best")
    if eval_noise_only(row):
        p_value = row.get("noise_p_value")
        p_text = "" if missing(p_value) else f"p = {float(p_value):.2g}; "
        if verdict == TIE:
            return f"within eval noise ({p_text}seed noise unknown)"
        return f"differs ({p_text}eval noise only, seed noise unknown)"
    return {BEST: "best", TIE: "within noise", UNKNOWN: "noise unknown", DIFFERS: "worse"}.get(verdict or "", "")


def did_not_learn(row) -> bool:
    """Whether an aggregate (or cell) row failed the learning checks."""
    return row.get("learned") is False or row.get("learned") == False  # noqa: E712  (numpy bools too)


def learning_words(row) -> str:
    """'' for a row that learned or was not checked, else '✗ did not learn: loss_flat'."""
    if not did_not_learn(row):
        return ""
    codes = row.get("learning_reasons")
    seeds = row.get("not_learned_seeds")
    where = f" (seed {seeds})" if isinstance(seeds, str) and seeds and int(row.get("n") or 1) > 1 else ""
    return f"{NOT_LEARNED_MARK} did not learn{where}: {codes if isinstance(codes, str) else 'checks failed'}"


def strategy_sort_key(name: str) -> tuple:
    """Built-in strategies in their usual order, a variant named after one (`lora-r16`) right after it,
    then the rest by name."""
    if name in STRATEGY_ORDER:
        return (STRATEGY_ORDER.index(name), "")
    base = max((s for s in STRATEGY_ORDER if name.startswith(f"{s}-")), key=len, default=None)
    return (STRATEGY_ORDER.index(base), name) if base else (len(STRATEGY_ORDER), name)


def ordered(aggregates):
    """Aggregate rows by task, then strategy in the usual order."""
    keys = aggregates.apply(lambda r: (r["task"], strategy_sort_key(r["strategy"])), axis=1)
    return aggregates.loc[sorted(aggregates.index, key=lambda i: keys[i])] if len(aggregates) else aggregates


def seed_count_text(row) -> str:
    """'3', or '2 (+1 failed)'."""
    failed = int(row["n_failed"])
    return f"{int(row['n'])}" + (f" (+{failed} failed)" if failed else "")


def seeds_header(cells) -> str:
    """How many seeds each strategy ran, truthfully: '3 seeds', or 'seeds: full 3, lora 3, others 1' when
    the strategies differ (a count that varies between tasks reads '1-3')."""
    if not len(cells):
        return "0 seeds"
    counts: dict[str, str] = {}
    for strategy, group in cells.groupby("strategy"):
        per_task = group.groupby("task")["seed"].nunique()
        low, high = int(per_task.min()), int(per_task.max())
        counts[strategy] = str(low) if low == high else f"{low}-{high}"
    if len(set(counts.values())) == 1:
        only = next(iter(counts.values()))
        return f"{only} seed{'' if only == '1' else 's'}"
    values = list(counts.values())
    common = max(set(values), key=lambda v: (values.count(v), v))
    shown = [(name, n) for name, n in counts.items() if values.count(common) < 2 or n != common]
    listed = ", ".join(f"{name} {n}" for name, n in sorted(shown, key=lambda item: strategy_sort_key(item[0])))
    return f"seeds: {listed}" + (f", others {common}" if values.count(common) >= 2 else "")


def single_seed_rows(aggregates) -> list[str]:
    """'task/strategy' for every row whose mean rests on one ok cell."""
    rows = aggregates[aggregates["n"] == 1] if len(aggregates) else aggregates
    return [f"{row['task']}/{row['strategy']}" for _, row in ordered(rows).iterrows()]


def number(value, digits: int = 4) -> str:
    """A figure with `digits` significant digits, thousands grouped for large values; 'n/a' if missing."""
    if missing(value):
        return "n/a"
    value = float(value)
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def metric_value(value, spread=None, digits: int = 3) -> str:
    """Mean, with '± spread' when the spread is known; fixed decimals so columns line up."""
    if missing(value):
        return "n/a"
    text = f"{float(value):.{digits}f}"
    return text if missing(spread) else f"{text} ± {float(spread):.{digits}f}"


def human_bytes(value) -> str:
    """Bytes in binary units: '1.22 GiB'."""
    if missing(value):
        return "n/a"
    size, unit = float(value), 0
    while abs(size) >= 1024 and unit < len(BINARY_UNITS) - 1:
        size, unit = size / 1024, unit + 1
    return f"{size:.0f} B" if unit == 0 else f"{size:.3g} {BINARY_UNITS[unit]}"


def human_seconds(value) -> str:
    """Seconds as '42.1 s' or '3 min 05 s'."""
    if missing(value):
        return "n/a"
    value = float(value)
    if value < 120:
        return f"{value:.3g} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


def parse_size(text: str) -> int:
    """Bytes from '2000000', '500MB', '2GiB', '1.5 GiB' (KB/MB/GB are 1000-based, KiB/MiB/GiB 1024-based)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"not a memory size: {text!r}; write bytes or a number with B, KB, MB, GB, KiB, MiB, GiB")
    return int(float(match.group(1)) * SIZE_UNITS[unit])


def noise_marker(verdict) -> str:
    """The short marker for a `noise_vs_best` value ('' for none)."""
    return NOISE_MARKERS.get(verdict, "") if isinstance(verdict, str) else ""
