"""Offline text metrics against hand-computed values, and the evaluate: bridge."""

from __future__ import annotations

import pytest

from harness.metrics import compute
from harness.metrics.text import distinct_1, distinct_2, exact_match, normalize_answer, token_f1


def test_squad_normalisation_and_scores():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert exact_match(["the Eiffel tower", "Paris"], [["Eiffel Tower", "tower"], "London"]) == 0.5
    # "big red dog" vs "red dog": precision 2/3, recall 1 -> F1 0.8; second pair shares nothing
    assert token_f1(["big red dog", "cat"], ["red dog", "mouse"]) == pytest.approx(0.4)


def test_distinct_n():
    assert distinct_1(["a a b", "b c"], [None, None]) == pytest.approx(3 / 5)
    assert distinct_2(["a b a b"], [None]) == pytest.approx(2 / 3)


def test_rouge_chrf_bleu_are_perfect_on_identical_text():
    text = ["the cat sat on the mat today"]
    assert compute("rougeL", text, text) == pytest.approx(1.0)
    assert compute("chrf", text, text) == pytest.approx(100.0)
    assert compute("bleu", text, text) == pytest.approx(100.0)
    assert compute("rouge2", ["a b c"], ["x y z"]) == 0.0


def test_evaluate_prefix_goes_through_the_evaluate_library(monkeypatch):
    import evaluate

    calls = []

    class FakeMetric:
        def compute(self, predictions, references):
            calls.append((predictions, references))
            return {"score": 0.25, "name": "fake"}

    monkeypatch.setattr(evaluate, "load", lambda name: calls.append(name) or FakeMetric())
    assert compute("evaluate:fancy", ["a"], ["b"]) == 0.25
    assert calls == ["fancy", (["a"], ["b"])]


def test_metrics_describe_themselves_and_scenarios_take_what_they_provide():
    from harness.metrics import METRICS, Metric, higher_is_better, metrics_needing
    from harness.scenarios import SCENARIOS

    perplexity = METRICS.get("perplexity")
    assert not perplexity.higher_is_better and perplexity.range == (1.0, None) and perplexity.needs == {"model_loss"}
    assert METRICS.get("chrf").range == (0.0, 100.0) and METRICS.get("macro_f1").item_metric == "accuracy"
    assert not higher_is_better("perplexity") and higher_is_better("rougeL")
    assert not higher_is_better("lm_eval.wikitext.word_perplexity") and higher_is_better("lm_eval.arc.acc")
    assert metrics_needing({"labels"}) == ("accuracy", "macro_f1")
    classification, qa = SCENARIOS.get("classification"), SCENARIOS.get("question_answering")
    assert classification.allowed_metrics(None) == ("accuracy", "macro_f1")
    extractive = qa.allowed_metrics(qa.Options(style="extractive"))
    assert "token_f1" in extractive and "perplexity" not in extractive
    assert "perplexity" in qa.allowed_metrics(qa.Options(style="generative"))
    with pytest.raises(ValueError, match="metric 'x': unknown needs \\['logits'\\]"):
        Metric("x", None, needs=frozenset({"logits"}))


def test_macro_f1_matches_scikit_learn_with_zero_division_zero():
    import random

    from sklearn.metrics import f1_score

    from harness.metrics import macro_f1

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 30)
        references = [rng.choice("abc") for _ in range(n)]
        predictions = [rng.choice("abcd") for _ in range(n)]  # "d": a class only ever predicted
        expected = f1_score(references, predictions, average="macro", zero_division=0)
        assert macro_f1(predictions, references) == pytest.approx(expected)
    assert macro_f1(["x", "x"], ["y", "y"]) == 0.0
