"""Text metrics that run offline: SQuAD-style EM/F1, ROUGE (rouge-score), chrF/BLEU (sacrebleu), distinct-n.

References may be a string or a list of acceptable strings; a prediction scores
against its best reference, as SQuAD does.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _as_list(reference) -> list[str]:
    return [str(r) for r in reference] if isinstance(reference, (list, tuple)) else [str(reference)]


def _token_f1(prediction: str, reference: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(predictions: Sequence[str], references: Sequence) -> float:
    """Share of predictions equal to a reference after SQuAD normalisation."""
    return sum(
        max(normalize_answer(p) == normalize_answer(r) for r in _as_list(refs))
        for p, refs in zip(predictions, references, strict=True)
    ) / len(references)


def token_f1(predictions: Sequence[str], references: Sequence) -> float:
    """Mean over examples of the best bag-of-tokens F1 against the references (SQuAD)."""
    return sum(
        max(_token_f1(p, r) for r in _as_list(refs)) for p, refs in zip(predictions, references, strict=True)
    ) / len(references)


def _rouge(kind: str, predictions: Sequence[str], references: Sequence) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
    return sum(
        max(scorer.score(r, str(p))[kind].fmeasure for r in _as_list(refs))
        for p, refs in zip(predictions, references, strict=True)
    ) / len(references)


def rouge1(predictions, references) -> float:
    """ROUGE-1 F-measure (unigram overlap), mean over examples, Porter stemming."""
    return _rouge("rouge1", predictions, references)


def rouge2(predictions, references) -> float:
    """ROUGE-2 F-measure (bigram overlap), mean over examples."""
    return _rouge("rouge2", predictions, references)


def rouge_l(predictions, references) -> float:
    """ROUGE-L F-measure (longest common subsequence), mean over examples."""
    return _rouge("rougeL", predictions, references)


def _reference_streams(references: Sequence) -> list[list[str]]:
    lists = [_as_list(r) for r in references]
    width = max(len(r) for r in lists)
    return [[r[i] if i < len(r) else r[0] for r in lists] for i in range(width)]


def chrf(predictions, references) -> float:
    """Corpus chrF (sacrebleu, 0-100)."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().corpus_score([str(p) for p in predictions], _reference_streams(references)).score)


def bleu(predictions, references) -> float:
    """Corpus BLEU (sacrebleu, 0-100)."""
    from sacrebleu.metrics import BLEU

    return float(BLEU().corpus_score([str(p) for p in predictions], _reference_streams(references)).score)


def _distinct(n: int, predictions: Sequence[str]) -> float:
    grams: list[tuple[str, ...]] = []
    for text in predictions:
        tokens = str(text).lower().split()
        grams.extend(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return len(set(grams)) / len(grams) if grams else 0.0


def distinct_1(predictions, references) -> float:
    """Distinct unigrams / all unigrams over every prediction (diversity; references unused)."""
    return _distinct(1, predictions)


def distinct_2(predictions, references) -> float:
    """Distinct bigrams / all bigrams over every prediction."""
    return _distinct(2, predictions)
