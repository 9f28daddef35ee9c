"""Paired significance tests between two strategies on the same evaluation items and seeds.

Two strategies of one task pair up cell by cell: the same seed, and (from the per-item files)
the same evaluation items in the same order. Seeds are combined, never averaged away:
- items judged correct or not (classification, exact match): McNemar's exact test on the
  discordant (seed, item) pairs, two-sided: p = min(1, 2 * P(X <= min(b, c))), X ~ Bin(b + c, 1/2);
- items with a score (token F1, chrF, per-item loss for perplexity): a paired bootstrap over items
  of the mean difference (the same resampled items for every seed), two-sided, centred at the
  observed difference: p = (1 + #{|T* - T| >= |T|}) / (1 + B).
Two strategies differ when p < LEVEL. Between strategies of a run, a paired test over seeds needs
MIN_SEEDS seeds in common; with one common seed the same test still says whether the two differ
beyond the noise of sampling the eval items (`seeds` = 1: the seed-to-seed noise stays unknown).
Without per-item results, the interval rule of `harness.results.aggregate` decides.

Macro-F1 does not split into items (it is not a mean of per-item figures), so McNemar on correct items
would test accuracy instead: wherever the compared metric is macro-F1 (between strategies, against a
reference in `harness.results.learning`, in the gate and the race), the test is a paired bootstrap of
macro-F1 itself over items, the same resampled items for every seed, on the mean over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.results.items import CORRECT, SCORE

LEVEL = 0.05
MIN_SEEDS = 2  # for a verdict that covers seed noise; one seed covers eval-sampling noise only
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MCNEMAR, BOOTSTRAP, MACRO_F1_BOOTSTRAP = "McNemar exact test", "paired bootstrap", "paired bootstrap of macro-F1"


@dataclass(frozen=True)
class PairedTest:
    """The outcome of one paired test: which test, its p-value, and how much it paired."""

    test: str
    p_value: float
    seeds: int
    items: int

    @property
    def differs(self) -> bool:
        return self.p_value < LEVEL

    def describe(self) -> str:
        return (
            f"{self.test} on {self.seeds} seeds x {self.items} items, p = {self.p_value:.3g} "
            f"({'differs' if self.differs else 'no difference'} at the {LEVEL:.0%} level)"
        )


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts b (only A right) and c (only B right)."""
    from scipy import stats

    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def paired_bootstrap_p(differences, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """Two-sided bootstrap p-value of mean(differences) = 0; `differences` is seeds x items, and every
    resample draws the same items for all seeds."""
    differences = np.asarray(differences, dtype=float)
    if differences.ndim != 2 or differences.size == 0:
        raise ValueError("paired_bootstrap_p needs a non-empty seeds x items array")
    per_item = differences.mean(axis=0)  # resampling items alike across seeds = resampling these means
    observed = per_item.mean()
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    totals = np.zeros(resamples)
    for start in range(0, resamples, 1000):  # bounded memory: 1000 x items indices at a time
        picks = rng.integers(0, per_item.size, size=(min(1000, resamples - start), per_item.size))
        totals[start : start + len(picks)] = per_item[picks].mean(axis=1)
    extreme = int(np.sum(np.abs(totals - observed) >= abs(observed)))
    return (1 + extreme) / (1 + resamples)


def _values(items: list[dict], measure: str) -> list[float] | None:
    """The items' figures, or None when one is missing or not a finite number."""
    values = [item.get(measure) for item in items]
    numbers = [float(v) for v in values if isinstance(v, (bool, int, float))]
    if len(numbers) != len(values) or not all(np.isfinite(numbers)):
        return None
    return numbers


def paired_test(
    a: dict[int, list[dict]],
    b: dict[int, list[dict]],
    measure: str | None,
    min_seeds: int = MIN_SEEDS,
    metric: str | None = None,
) -> PairedTest | None:
    """The paired test of strategy A against B from their per-item results by seed, or None when they
    do not pair (fewer than `min_seeds` common seeds, different items, or no per-item measure).
    `metric` is the figure compared; macro-F1 gets its own bootstrap (module docstring)."""
    if metric == "macro_f1":
        return _macro_f1_test(a, b, min_seeds)
    if measure not in (CORRECT, SCORE):
        return None
    seeds = sorted(set(a) & set(b))
    if len(seeds) < max(1, min_seeds):
        return None
    for seed in seeds:
        ids_a, ids_b = [i.get("id") for i in a[seed]], [i.get("id") for i in b[seed]]
        if not ids_a or ids_a != ids_b:
            return None
    if len({len(a[seed]) for seed in seeds}) != 1:
        return None
    rows_a, rows_b = [_values(a[seed], measure) for seed in seeds], [_values(b[seed], measure) for seed in seeds]
    if any(row is None for row in rows_a + rows_b):
        return None
    values_a, values_b = np.array(rows_a), np.array(rows_b)
    if measure == CORRECT:
        only_a = int(np.sum((values_a == 1) & (values_b == 0)))
        only_b = int(np.sum((values_a == 0) & (values_b == 1)))
        return PairedTest(MCNEMAR, mcnemar_p(only_a, only_b), len(seeds), values_a.shape[1])
    return PairedTest(BOOTSTRAP, paired_bootstrap_p(values_a - values_b), len(seeds), values_a.shape[1])


def _macro_f1_test(a: dict[int, list[dict]], b: dict[int, list[dict]], min_seeds: int) -> PairedTest | None:
    """The macro-F1 bootstrap from per-item predictions and references, or None when they do not pair."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < max(1, min_seeds):
        return None
    references = [item.get("reference") for item in a[seeds[0]]]
    for seed in seeds:
        items_a, items_b = a[seed], b[seed]
        if not items_a or [i.get("id") for i in items_a] != [i.get("id") for i in items_b]:
            return None
        if any("prediction" not in i for i in items_a + items_b) or any(
            [i.get("reference") for i in side] != references for side in (items_a, items_b)
        ):
            return None
    p_value = macro_f1_bootstrap_p(
        [[i["prediction"] for i in a[s]] for s in seeds], [[i["prediction"] for i in b[s]] for s in seeds], references
    )
    return PairedTest(MACRO_F1_BOOTSTRAP, p_value, len(seeds), len(references))


def macro_f1_bootstrap_p(
    predictions_a, predictions_b, references, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> float:
    """Two-sided paired bootstrap p-value of macro-F1(A) - macro-F1(B) = 0 on the same items: every
    resample draws the same items for both (and for every seed), and macro-F1 is computed on the drawn
    items as `harness.metrics.macro_f1` computes it (classes seen in the drawn references or predictions).
    Predictions are one list per item, or seeds x items (lists of lists) with the statistic the mean of
    the per-seed differences; references are one per item."""
    nested = bool(predictions_a) and isinstance(predictions_a[0], (list, tuple))
    runs_a = [list(p) for p in predictions_a] if nested else [list(predictions_a)]
    runs_b = [list(p) for p in predictions_b] if nested else [list(predictions_b)]
    labels = sorted({*map(str, references), *(str(p) for run in runs_a + runs_b for p in run)})
    code = {label: i for i, label in enumerate(labels)}
    refs = np.array([code[str(r)] for r in references])
    if len(refs) == 0 or len(runs_a) != len(runs_b) or any(len(run) != len(refs) for run in runs_a + runs_b):
        raise ValueError("macro_f1_bootstrap_p needs equally many predictions and references, at least one")
    a = np.array([[code[str(p)] for p in run] for run in runs_a])  # seeds x items
    b = np.array([[code[str(p)] for p in run] for run in runs_b])

    def macro_f1(index) -> np.ndarray:
        """index: resamples x items; the mean over seeds of macro-F1(A) - macro-F1(B), per resample."""
        ref = refs[index]
        total_difference = np.zeros(len(index))
        for run in range(len(a)):
            sides = (a[run][index], b[run][index])
            scores, present = np.zeros((2, len(index))), np.zeros((2, len(index)))
            for label in range(len(labels)):
                actual = ref == label
                for side, pred in enumerate(sides):
                    claimed = pred == label
                    hits = (actual & claimed).sum(axis=1)
                    total = actual.sum(axis=1) + claimed.sum(axis=1)
                    scores[side] += np.where(hits > 0, 2 * hits / np.maximum(total, 1), 0.0)
                    present[side] += total > 0  # a class seen in the drawn references or this side's predictions
            total_difference += scores[0] / np.maximum(present[0], 1) - scores[1] / np.maximum(present[1], 1)
        return total_difference / len(a)

    observed = float(macro_f1(np.arange(len(refs))[None, :])[0])
    if observed == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    totals = np.concatenate(
        [
            macro_f1(rng.integers(0, len(refs), size=(min(1000, resamples - start), len(refs))))
            for start in range(0, resamples, 1000)
        ]
    )
    extreme = int(np.sum(np.abs(totals - observed) >= abs(observed)))
    return (1 + extreme) / (1 + resamples)
