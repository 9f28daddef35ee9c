"""Metrics registered by name.

Text metrics are fn(predictions, references) -> float and run offline. Model
metrics (perplexity) are computed by the scenario from the model's losses.
A name `evaluate:NAME` loads the metric through the `evaluate` library (needs
it cached or the network).
"""
from __future__ import annotations

from typing import Callable, Sequence

from harness.metrics import text
from harness.registry import Registry

Metric = Callable[[Sequence, Sequence], float]
METRICS: Registry[Metric] = Registry("metric")
MODEL_METRICS = ("perplexity",)  # computed by the scenario, not from predictions
# Metrics where a smaller value is better (lm-eval's names included); every other one is higher-is-better.
LOWER_IS_BETTER = frozenset({"perplexity", "loss", "eval_loss", "wer", "cer", "ter", "mae", "mse", "rmse",
                             "error_rate", "bits_per_byte", "word_perplexity", "byte_perplexity"})
EVALUATE_PREFIX = "evaluate:"


@METRICS.register("accuracy")
def accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of predictions equal to their reference."""
    return sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references)


@METRICS.register("macro_f1")
def macro_f1(predictions: Sequence, references: Sequence) -> float:
    """F1 averaged over every class seen in references or predictions, unweighted."""
    from sklearn.metrics import f1_score

    return float(f1_score(list(references), list(predictions), average="macro", zero_division=0))


for _name, _fn in (("exact_match", text.exact_match), ("token_f1", text.token_f1), ("rouge1", text.rouge1),
                   ("rouge2", text.rouge2), ("rougeL", text.rouge_l), ("chrf", text.chrf), ("bleu", text.bleu),
                   ("distinct_1", text.distinct_1), ("distinct_2", text.distinct_2)):
    METRICS.register(_name)(_fn)


def _model_metric(predictions, references) -> float:
    raise TypeError("perplexity is computed from the model's losses by the scenario, not from predictions")


METRICS.register("perplexity")(_model_metric)


# Per-item figures for paired tests. Metrics in CORRECTNESS judge each item right or wrong (macro-F1 too:
# its items are the same label predictions as accuracy's); those in SCORED_PER_ITEM are means of a
# per-item score, or (chrF) a corpus score whose per-item value is the sentence-level score.
CORRECTNESS = {"accuracy": "accuracy", "macro_f1": "accuracy", "exact_match": "exact_match"}
SCORED_PER_ITEM = ("token_f1", "rouge1", "rouge2", "rougeL", "chrf")  # not BLEU: one sentence is mostly 0


def per_item(name: str, predictions: Sequence, references: Sequence,
             model_item_scores: dict[str, list[float]]) -> tuple[str | None, list]:
    """("correct", [bool...]) or ("score", [float...]) for metric `name` item by item, or (None, [])
    when the metric does not split into items (e.g. distinct-n, lm-eval metrics)."""
    if name in model_item_scores:  # e.g. perplexity: each item's mean negative log-likelihood per token
        return "score", [float(v) for v in model_item_scores[name]]
    if name in CORRECTNESS:
        judge = METRICS.get(CORRECTNESS[name])
        return "correct", [judge([p], [r]) == 1.0 for p, r in zip(predictions, references, strict=True)]
    if name in SCORED_PER_ITEM:
        metric = METRICS.get(name)
        return "score", [float(metric([p], [r])) for p, r in zip(predictions, references, strict=True)]
    return None, []


def compute(name: str, predictions: Sequence, references: Sequence) -> float:
    """Value of metric `name`; `evaluate:NAME` goes through the evaluate library."""
    if name.startswith(EVALUATE_PREFIX):
        import evaluate

        result = evaluate.load(name[len(EVALUATE_PREFIX):]).compute(predictions=list(predictions),
                                                                    references=list(references))
        values = [v for v in result.values() if isinstance(v, (int, float))]
        if not values:
            raise ValueError(f"{name}: no numeric score in {result}")
        return float(values[0])
    return METRICS.get(name)(predictions, references)
