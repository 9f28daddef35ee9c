"""Paired tests on per-item results, and the noise rule that uses them in aggregates, recommend and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from harness.metrics import macro_f1
from harness.report.html import render_html
from harness.report.recommend import Constraints, recommend
from harness.results.aggregate import DIFFERS, TIE
from harness.results.io import write_result
from harness.results.items import CORRECT, SCORE, read_items, write_items
from harness.results.significance import (
    BOOTSTRAP,
    MACRO_F1_BOOTSTRAP,
    MCNEMAR,
    macro_f1_bootstrap_p,
    mcnemar_p,
    paired_bootstrap_p,
    paired_test,
)
from harness.results.table import load_aggregates
from tests.report_fixtures import GiB, cell_result


def correct_items(right: set[int], n: int = 100) -> list[dict]:
    return [
        {"id": i, "prediction": "pos", "reference": "pos" if i in right else "neg", "correct": i in right}
        for i in range(n)
    ]


def test_mcnemar_matches_hand_computed_p_values():
    # b = 1, c = 9: P(X <= 1) for X ~ Bin(10, 1/2) is (1 + 10) / 1024, doubled
    assert mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_p(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_p(3, 9) == pytest.approx(2 * (1 + 12 + 66 + 220) / 4096)
    assert mcnemar_p(5, 5) == 1.0 and mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(4, 17) == pytest.approx(stats.binomtest(4, 21, 0.5).pvalue)


def test_paired_test_combines_seeds_on_discordant_items():
    # seed 0: A alone right on items 0-2, B alone on 10; seed 1: A alone on 0-5, B alone on 10-11
    a = {0: correct_items(set(range(0, 80))), 1: correct_items(set(range(0, 80)))}
    b = {0: correct_items(set(range(3, 80)) | {80}), 1: correct_items(set(range(6, 80)) | {80, 81})}
    result = paired_test(a, b, CORRECT)
    assert result.test == MCNEMAR and (result.seeds, result.items) == (2, 100)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66 + 220) / 4096)  # b = 3 + 6 = 9, c = 1 + 2 = 3
    assert not result.differs and "p = 0.146" in result.describe()


def test_paired_bootstrap_agrees_with_a_paired_t_test_on_a_large_sample():
    rng = np.random.default_rng(1)
    differences = rng.normal(0.12, 1.0, size=(3, 400))
    expected = stats.ttest_1samp(differences.mean(axis=0), 0.0).pvalue
    p = paired_bootstrap_p(differences)
    assert abs(p - expected) < 0.01, (p, expected)
    assert paired_bootstrap_p(differences) == p  # seeded: the same answer every time
    assert paired_bootstrap_p(np.zeros((2, 5))) == 1.0
    assert paired_bootstrap_p(np.full((2, 50), 0.3)) == pytest.approx(1 / 10_001)  # every resample agrees
    assert paired_bootstrap_p([[0.5]]) == pytest.approx(1 / 10_001)  # one seed, one item: a valid input
    for malformed in ([], [[]], [0.1, 0.2]):  # empty, or not seeds x items
        with pytest.raises(ValueError, match="needs a non-empty seeds x items array"):
            paired_bootstrap_p(malformed)


def test_score_items_use_the_bootstrap_and_do_not_pair_without_shared_items():
    scores = lambda values: [{"id": i, "prediction": "", "reference": "", "score": v} for i, v in enumerate(values)]  # noqa: E731
    a = {s: scores([0.5 + 0.01 * i for i in range(40)]) for s in (0, 1)}
    b = {s: scores([0.3 + 0.01 * i for i in range(40)]) for s in (0, 1)}
    result = paired_test(a, b, SCORE)
    assert result.test == BOOTSTRAP and result.differs
    assert paired_test({0: a[0]}, {0: b[0]}, SCORE) is None  # one common seed: the interval rule decides
    assert paired_test(a, {0: b[0], 1: b[1][1:]}, SCORE) is None  # different items
    assert paired_test(a, {0: b[0], 1: scores([math.nan] * 40)}, SCORE) is None  # a figure is missing
    assert paired_test(a, b, None) is None  # the metric does not split into items


# (strategy, correct items per seed, peak memory): lora's intervals overlap full's but it is worse on the
# same items in every seed; adapter's intervals do not overlap full's (0.78 against 0.80, no spread) but it
# disagrees with full on few items in both directions, so the paired test cannot tell them apart.
STRATEGIES = (
    ("full", [set(range(80))] * 3, 2.0 * GiB),
    ("lora", [set(range(70)), set(range(78)), set(range(74))], 0.5 * GiB),
    ("adapter", [set(range(3, 81))] * 3, 1.0 * GiB),
)


def write_paired_run(run_dir, with_items: bool = True):
    for strategy, per_seed, memory in STRATEGIES:
        for seed, right in enumerate(per_seed):
            result = cell_result("sentiment", strategy, seed, len(right) / 100, memory=memory, tokens_per_s=900.0)
            if with_items:
                folder = run_dir / "cells" / result["cell_id"]
                result["items"] = write_items(folder, correct_items(right), CORRECT, "accuracy", True)
            write_result(run_dir, result)


def test_paired_tests_replace_overlapping_intervals_in_aggregates(tmp_path):
    write_paired_run(tmp_path)
    rows = load_aggregates(tmp_path).set_index("strategy")
    assert rows.loc["full", "best"]
    assert rows.loc["lora", "noise_vs_best"] == DIFFERS  # b = 10 + 2 + 6, c = 0
    assert rows.loc["lora", "noise_p_value"] == pytest.approx(mcnemar_p(18, 0))
    assert rows.loc["lora", "noise_test"].startswith("McNemar exact test on 3 seeds x 100 items")
    assert rows.loc["adapter", "noise_vs_best"] == TIE  # b = 3 x 3, c = 1 x 3
    assert rows.loc["adapter", "noise_p_value"] == pytest.approx(mcnemar_p(9, 3))
    assert rows.loc["full", "within_noise_of"] == "adapter"
    # without per-item results the intervals decide, and give the opposite answers
    plain = load_aggregates(write_paired_run(tmp_path / "plain", with_items=False) or tmp_path / "plain")
    plain = plain.set_index("strategy")
    assert plain.loc["lora", "noise_vs_best"] == TIE and plain.loc["adapter", "noise_vs_best"] == DIFFERS
    assert plain.loc["lora", "noise_test"] == "95% intervals of the mean over seeds"


def test_recommend_and_report_follow_the_paired_tests(tmp_path):
    write_paired_run(tmp_path)
    pick = recommend(load_aggregates(tmp_path), Constraints())[0]
    assert pick.strategy == "adapter", pick.reason  # tied with full, less memory; lora is cheaper but worse
    html = render_html(tmp_path)
    assert "McNemar exact test on 3 seeds x 100 items" in html and "differs at the 5% level" in html
    assert "(p = 0.15)" in html and "at the 5% level" in html


def test_items_file_round_trips_and_names_a_bad_file(tmp_path):
    record = write_items(tmp_path, correct_items({1, 2}, n=3), CORRECT, "accuracy", True)
    assert record["n"] == 3 and record["measure"] == CORRECT and len(record["sha256"]) == 64
    assert [i["correct"] for i in read_items(tmp_path / record["file"])] == [False, True, True]
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="bad.jsonl.gz: not a per-item results file"):
        read_items(tmp_path / "bad.jsonl.gz")


def test_the_paired_bootstrap_resamples_items_not_seed_item_pairs():
    """Three seeds that agree item by item carry the evidence of one: resampling the 3 x 20 (seed, item)
    pairs as if independent would shrink the p-value."""
    row = [1.0] * 6 + [-1.0] * 3 + [0.0] * 11
    one_seed = paired_bootstrap_p([row])
    assert paired_bootstrap_p([row, row, row]) == one_seed
    assert 0.2 < one_seed < 0.6  # mean 0.15 over 20 items with spread 0.67: far from significant


def test_the_paired_bootstrap_p_value_against_the_binomial_by_hand():
    """One item of 20 differs by 1 (observed mean 0.05): a resample lands at least 0.05 from it unless it
    draws that item exactly once, which Binomial(20, 1/20) gives with 20 * (1/20) * (19/20)^19 = 0.377."""
    once = 20 * (1 / 20) * (19 / 20) ** 19
    assert paired_bootstrap_p([[1.0] + [0.0] * 19]) == pytest.approx(1 - once, abs=0.015)


def label_items(predictions: list[str], references: list[str]) -> list[dict]:
    return [
        {"id": i, "prediction": p, "reference": r, "correct": p == r}
        for i, (p, r) in enumerate(zip(predictions, references, strict=True))
    ]


# 80 "a" and 20 "b": "majority" answers "a" everywhere (accuracy 0.80, macro-F1 0.444); "balanced" finds
# every "b" but calls 20 "a" rows "b" (accuracy 0.80, macro-F1 (120/140 + 40/60) / 2 = 0.762). McNemar on
# correct items sees 20 discordant items each way (p = 1): it tests accuracy, not macro-F1.
REFERENCES = ["a"] * 80 + ["b"] * 20
MAJORITY = ["a"] * 100
BALANCED = ["a"] * 60 + ["b"] * 20 + ["b"] * 20


def test_macro_f1_is_compared_by_its_own_bootstrap_not_by_mcnemar_on_correct_items():
    a, b = {0: label_items(BALANCED, REFERENCES)}, {0: label_items(MAJORITY, REFERENCES)}
    assert paired_test(a, b, CORRECT, 1).p_value == 1.0  # accuracy: 20 against 20
    result = paired_test(a, b, CORRECT, 1, metric="macro_f1")
    assert result.test == MACRO_F1_BOOTSTRAP and (result.seeds, result.items) == (1, 100)
    assert result.p_value == macro_f1_bootstrap_p(BALANCED, MAJORITY, REFERENCES) and result.differs
    # over seeds: the statistic is the mean of the per-seed differences on the same resampled items
    twice = paired_test({0: a[0], 1: a[0]}, {0: b[0], 1: b[0]}, CORRECT, 2, metric="macro_f1")
    assert twice.seeds == 2 and twice.p_value == result.p_value
    assert paired_test(a, {0: b[0][1:]}, CORRECT, 1, metric="macro_f1") is None  # different items
    other_refs = {0: label_items(MAJORITY, ["b"] + REFERENCES[1:])}
    assert paired_test(a, other_refs, CORRECT, 1, metric="macro_f1") is None  # different references


def test_one_seed_macro_f1_rows_get_the_macro_f1_verdict_in_aggregates(tmp_path):
    for strategy, predictions in (("balanced", BALANCED), ("majority", MAJORITY)):
        value = macro_f1(predictions, REFERENCES)
        result = cell_result("spam", strategy, 0, value, memory=GiB, tokens_per_s=900.0, metric="macro_f1")
        folder = tmp_path / "cells" / result["cell_id"]
        result["items"] = write_items(folder, label_items(predictions, REFERENCES), CORRECT, "macro_f1", True)
        write_result(tmp_path, result)
    rows = load_aggregates(tmp_path).set_index("strategy")
    assert rows.loc["balanced", "best"] and rows.loc["majority", "noise_vs_best"] == DIFFERS
    assert rows.loc["majority", "noise_test"].startswith("paired bootstrap of macro-F1 on 1 seeds x 100 items")
    assert rows.loc["majority", "noise_p_value"] == pytest.approx(macro_f1_bootstrap_p(BALANCED, MAJORITY, REFERENCES))
