"""Metrics registered by name, each describing itself: better direction, range, what it needs, and how it
splits into items for paired tests (as lm-eval's register_metric does).

A scenario says what it provides (`labels`, `text`, `spans`, `model_loss`); any registered metric whose
needs it provides applies to it, a plugin's too. Text metrics are fn(predictions, references) -> float
and run offline. Model metrics (perplexity) have no function: the scenario computes them from the
model's losses. A name `evaluate:NAME` loads the metric through the `evaluate` library (needs it cached
or the network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.metrics import text
from harness.registry import Registry

MetricFn = Callable[[Sequence, Sequence], float]
NEEDS = ("labels", "text", "spans", "model_loss")  # what a scenario can hand to metrics
CORRECT, SCORE = "correct", "score"  # how a metric splits into items
EVALUATE_PREFIX = "evaluate:"
# lm-eval's and other outside metric names where a smaller value is better; every other unregistered
# name is taken as higher-is-better.
LOWER_IS_BETTER = frozenset(
    {
        "perplexity",
        "loss",
        "eval_loss",
        "wer",
        "cer",
        "ter",
        "mae",
        "mse",
        "rmse",
        "error_rate",
        "bits_per_byte",
        "word_perplexity",
        "byte_perplexity",
    }
)


@dataclass(frozen=True)
class Metric:
    """One metric and what it says about itself."""

    name: str
    compute: MetricFn | None  # None: the scenario computes it from the model (e.g. perplexity)
    higher_is_better: bool = True
    range: tuple[float | None, float | None] = (0.0, 1.0)  # None: unbounded on that side
    needs: frozenset[str] = frozenset({"text"})
    per_item: str | None = None  # CORRECT: each item right or wrong; SCORE: a mean of item scores; None: neither
    item_metric: str | None = None  # the metric that judges one item, when not this one (macro-F1: accuracy)

    def __post_init__(self) -> None:
        unknown = set(self.needs) - set(NEEDS)
        if unknown:
            raise ValueError(f"metric {self.name!r}: unknown needs {sorted(unknown)}; use {', '.join(NEEDS)}")
        if self.per_item not in (None, CORRECT, SCORE):
            raise ValueError(f"metric {self.name!r}: per_item must be {CORRECT!r}, {SCORE!r} or None")


METRICS: Registry[Metric] = Registry("metric")


def register_metric(
    name: str,
    *,
    higher_is_better: bool = True,
    range: tuple = (0.0, 1.0),
    needs: tuple[str, ...] = ("text",),
    per_item: str | None = None,
    item_metric: str | None = None,
):
    """Decorator: register fn(predictions, references) -> float under `name` with its description."""

    def decorator(fn: MetricFn) -> MetricFn:
        METRICS.register(name)(
            Metric(name, fn, higher_is_better, tuple(range), frozenset(needs), per_item, item_metric)
        )
        return fn

    return decorator


@register_metric("accuracy", needs=("labels",), per_item=CORRECT)
def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of predictions equal to their reference."""
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


@register_metric("macro_f1", needs=("labels",), per_item=CORRECT, item_metric="accuracy")
def macro_f1(predictions: Sequence, references: Sequence) -> float:
    """F1 averaged over every class seen in references or predictions, unweighted; a class never
    predicted, or never right, scores 0 (as scikit-learn's f1_score with zero_division=0)."""
    pairs = list(zip(references, predictions, strict=True))
    scores = []
    for label in {*references, *predictions}:
        hits = sum(1 for ref, pred in pairs if ref == pred == label)
        claimed = sum(1 for _, pred in pairs if pred == label)
        actual = sum(1 for ref, _ in pairs if ref == label)
        scores.append(2 * hits / (claimed + actual) if hits else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


register_metric("exact_match", per_item=CORRECT)(text.exact_match)
for _name, _fn in (
    ("token_f1", text.token_f1),
    ("rouge1", text.rouge1),
    ("rouge2", text.rouge2),
    ("rougeL", text.rouge_l),
):
    register_metric(_name, per_item=SCORE)(_fn)
register_metric("chrf", range=(0.0, 100.0), per_item=SCORE)(text.chrf)  # an item: its sentence chrF
register_metric("bleu", range=(0.0, 100.0))(text.bleu)  # not per item: one sentence's BLEU is mostly 0
register_metric("distinct_1")(text.distinct_1)  # diversity of the whole output: no items
register_metric("distinct_2")(text.distinct_2)
# the scenario computes it; an item's figure is its mean negative log-likelihood per token
METRICS.register("perplexity")(
    Metric(
        "perplexity", None, higher_is_better=False, range=(1.0, None), needs=frozenset({"model_loss"}), per_item=SCORE
    )
)


def higher_is_better(name: str | None) -> bool:
    """Whether a larger value is better: the registered metric says; outside names (lm_eval.TASK.NAME)
    are higher-is-better unless their last part is in LOWER_IS_BETTER."""
    if name is not None and name in METRICS:
        return METRICS.get(name).higher_is_better
    return (name or "").rsplit(".", 1)[-1].lower() not in LOWER_IS_BETTER


def metrics_needing(provided) -> tuple[str, ...]:
    """Names of the registered metrics whose needs are all in `provided`."""
    return tuple(name for name in METRICS.names() if METRICS.get(name).needs <= frozenset(provided))


def per_item(
    name: str, predictions: Sequence, references: Sequence, model_item_scores: dict[str, list[float]]
) -> tuple[str | None, list]:
    """(CORRECT, [bool...]) or (SCORE, [float...]) for metric `name` item by item, or (None, []) when
    it does not split into items (distinct-n, BLEU, unregistered and lm-eval metrics)."""
    if name in model_item_scores:
        return SCORE, [float(v) for v in model_item_scores[name]]
    if name not in METRICS or METRICS.get(name).per_item is None or METRICS.get(name).compute is None:
        return None, []
    metric = METRICS.get(name)
    judge = METRICS.get(metric.item_metric).compute if metric.item_metric else metric.compute
    assert judge is not None, f"metric {name!r}: its item metric has no function"
    values = [judge([p], [r]) for p, r in zip(predictions, references, strict=True)]
    return (CORRECT, [v == 1.0 for v in values]) if metric.per_item == CORRECT else (SCORE, [float(v) for v in values])


def compute(name: str, predictions: Sequence, references: Sequence) -> float:
    """Value of metric `name`; `evaluate:NAME` goes through the evaluate library."""
    if name.startswith(EVALUATE_PREFIX):
        import evaluate

        result = evaluate.load(name[len(EVALUATE_PREFIX) :]).compute(
            predictions=list(predictions), references=list(references)
        )
        values = [v for v in result.values() if isinstance(v, (int, float))]
        if not values:
            raise ValueError(f"{name}: no numeric score in {result}")
        return float(values[0])
    metric = METRICS.get(name)
    if metric.compute is None:
        raise TypeError(f"{name} is computed from the model's losses by the scenario, not from predictions")
    return metric.compute(predictions, references)
