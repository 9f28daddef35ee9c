"""Paired significance tests between two strategies on the same evaluation items and seeds.

Two strategies of one task pair up cell by cell: the same seed, and (from the per-item files)
the same evaluation items in the same order. Seeds are combined, never averaged away:
- items judged correct or not (classification, exact match): McNemar's exact test on the
  discordant (seed, item) pairs, two-sided: p = min(1, 2 * P(X <= min(b, c))), X ~ Bin(b + c, 1/2);
- items with a score (token F1, chrF, per-item loss for perplexity): a paired bootstrap over items
  of the mean difference (the same resampled items for every seed), two-sided, centred at the
  observed difference: p = (1 + #{|T* - T| >= |T|}) / (1 + B).
Two strategies differ when p < LEVEL. A paired test needs MIN_SEEDS seeds in common; with fewer,
or without per-item results, the interval rule of `harness.results.aggregate` decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.results.items import CORRECT, SCORE

LEVEL = 0.05
MIN_SEEDS = 2
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MCNEMAR, BOOTSTRAP = "McNemar exact test", "paired bootstrap"


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


def paired_test(a: dict[int, list[dict]], b: dict[int, list[dict]], measure: str | None) -> PairedTest | None:
    """The paired test of strategy A against B from their per-item results by seed, or None when they
    do not pair (fewer than MIN_SEEDS common seeds, different items, or no per-item measure)."""
    if measure not in (CORRECT, SCORE):
        return None
    seeds = sorted(set(a) & set(b))
    if len(seeds) < MIN_SEEDS:
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
