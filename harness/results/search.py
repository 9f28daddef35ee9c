"""What a learning-rate search found, read from its trial results: the chosen value per (task, strategy),
each trial's validation score, and how robust the choice is to a 2x change of the learning rate."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from harness.metrics import higher_is_better

ROBUSTNESS_FACTOR = 2.0  # the robustness figure asks: what is left of the best score at lr x 2 and lr / 2?


@dataclass(frozen=True)
class SearchSummary:
    task: str
    strategy: str
    metric: str
    scores: tuple[tuple[float, float | None], ...]  # (learning rate, mean validation score or None), by rate
    chosen: float | None  # the best rate; None when no trial finished
    model_kind: str = ""  # encoder, causal or seq2seq: defaults may differ by kind

    @property
    def best_score(self) -> float | None:
        return dict(self.scores).get(self.chosen) if self.chosen is not None else None

    @property
    def robustness(self) -> float | None:
        """The share of the best validation score kept when the learning rate is doubled or halved: the
        worse of the two, interpolated between trials in log(rate); sides outside the searched range are
        left out, and None when both are (or nothing finished). 1.0 means no loss."""
        best = self.best_score
        points = [(math.log(rate), score) for rate, score in self.scores if score is not None]
        if self.chosen is None or best is None or best == 0 or len(points) < 2:
            return None
        kept = []
        for factor in (ROBUSTNESS_FACTOR, 1 / ROBUSTNESS_FACTOR):
            score = _interpolate(points, math.log(self.chosen * factor))
            if score is not None:
                kept.append(score / best if higher_is_better(self.metric) else best / score if score else 0.0)
        return min(kept) if kept else None


def _interpolate(points: list[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation through sorted (x, y) points; None outside their range."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def choose(scores: dict[float, list[float | None]], metric: str) -> tuple[float | None, dict[float, float | None]]:
    """(best rate, mean score per rate) from each rate's trial scores (None: the trial failed). The best
    mean wins, direction-aware; a tie goes to the smaller rate. A rate whose trials all failed scores None."""
    means = {rate: _mean(values) for rate, values in sorted(scores.items())}
    finished = {rate: value for rate, value in means.items() if value is not None}
    if not finished:
        return None, means
    sign = 1 if higher_is_better(metric) else -1
    return max(finished, key=lambda rate: (sign * finished[rate], -rate)), means


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite and len(finite) == len(values) else None


def is_trial(result: dict) -> bool:
    return (result.get("search") or {}).get("role") == "trial"


def summaries(results: Iterable[dict]) -> list[SearchSummary]:
    """One summary per searched (task, strategy), from the trial results among `results`."""
    by_group: dict[tuple[str, str], dict[float, list[float | None]]] = {}
    metrics: dict[tuple[str, str], str] = {}
    kinds: dict[tuple[str, str], str] = {}
    for result in results:
        if not is_trial(result):
            continue
        key = (result["task"], result["strategy"])
        value = result.get("primary_value") if result["status"] == "ok" else None
        by_group.setdefault(key, {}).setdefault(float(result["search"]["learning_rate"]), []).append(value)
        metrics[key] = result.get("primary_metric") or ""
        kinds[key] = result.get("model_kind") or kinds.get(key, "")
    out = []
    for (task, strategy), scores in sorted(by_group.items()):
        chosen, means = choose(scores, metrics[(task, strategy)])
        metric, kind = metrics[(task, strategy)], kinds[(task, strategy)]
        out.append(SearchSummary(task, strategy, metric, tuple(means.items()), chosen, kind))
    return out


def shared_rates(found: list[SearchSummary]) -> dict[str, tuple[float, float, int]]:
    """Per strategy, the one rate of its grid that keeps the most of each task's best validation score,
    averaged over the tasks searched with that grid: {strategy: (rate, mean share kept, tasks)}. A task
    where the rate failed keeps 0. This is how the shipped strategy defaults were chosen."""
    by_strategy: dict[str, list[SearchSummary]] = {}
    for summary in found:
        if summary.best_score:
            by_strategy.setdefault(summary.strategy, []).append(summary)
    out = {}
    for strategy, summaries_ in sorted(by_strategy.items()):
        rates = sorted({rate for s in summaries_ for rate, _ in s.scores})
        kept: dict[float, list[float]] = {rate: [] for rate in rates}
        for summary in summaries_:
            scores, best, higher = dict(summary.scores), summary.best_score, higher_is_better(summary.metric)
            for rate in rates:
                score = scores.get(rate)
                if score is None or best is None:
                    kept[rate].append(0.0)
                else:
                    kept[rate].append(score / best if higher else (best / score if score else 0.0))
        means = {rate: sum(values) / len(values) for rate, values in kept.items()}
        best_rate = max(means, key=lambda rate: (means[rate], -rate))
        out[strategy] = (best_rate, means[best_rate], len(summaries_))
    return out


def search_markdown(results: Iterable[dict]) -> str:
    """The search of a run as Markdown: each (task, strategy)'s trials, choice and robustness, then the
    rate per strategy that serves every searched task best (`shared_rates`)."""
    found = summaries(results)
    if not found:
        return "No learning-rate search trials in this run.\n"
    lines = [
        "| task | strategy | metric | trials (rate: validation score) | chosen | robustness (2x) |",
        "|---|---|---|---|---|---|",
    ]
    for s in found:
        trials = ", ".join(f"{rate:g}: {'failed' if v is None else f'{v:.3f}'}" for rate, v in s.scores)
        robust = "n/a" if s.robustness is None else f"{s.robustness:.0%}"
        lines.append(f"| {s.task} | {s.strategy} | {s.metric} | {trials} | {s.chosen:g} | {robust} |")
    lines += [
        "",
        "| strategy | model kind | one rate for these tasks | share of each task's best kept (mean) | tasks |",
        "|---|---|---|---|---|",
    ]
    kinds = sorted({s.model_kind for s in found if s.model_kind})
    for kind in [*kinds, "all"] if len(kinds) > 1 else ["all"]:
        chosen = found if kind == "all" else [s for s in found if s.model_kind == kind]
        for strategy, (rate, kept, tasks) in shared_rates(chosen).items():
            lines.append(f"| {strategy} | {kind} | {rate:g} | {kept:.1%} | {tasks} |")
    return "\n".join(lines) + "\n"
