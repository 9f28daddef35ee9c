"""Learning checks: a tuned row that did not learn is marked everywhere and never recommended; one-seed
tables carry the paired test on eval items."""

from __future__ import annotations

import json
import math
import random

import pytest

from harness.config import load_matrix
from harness.metrics import macro_f1
from harness.report.export import export
from harness.report.html import render_html
from harness.report.recommend import Constraints, recommend
from harness.results.aggregate import DIFFERS, EVAL_SCOPE, TIE
from harness.results.io import write_result
from harness.results.items import CORRECT, write_items
from harness.results.learning import constant_reasons, loss_reasons
from harness.results.significance import macro_f1_bootstrap_p
from harness.results.table import load_aggregates, load_results
from harness.run.cell import run_cell
from tests.helpers import ROOT, write_task
from tests.report_fixtures import GiB, cell_result


def items_right(right: set[int], n: int = 100) -> list[dict]:
    return [
        {"id": i, "prediction": "pos" if i in right else "neg", "reference": "pos", "correct": i in right}
        for i in range(n)
    ]


def write_cell(run_dir, strategy: str, right: set[int], memory: float, learning: dict | None, seed: int = 0):
    result = cell_result(
        "sentiment", strategy, seed, len(right) / 100, memory=memory, tokens_per_s=900.0, learning=learning
    )
    result["items"] = write_items(run_dir / "cells" / result["cell_id"], items_right(right), CORRECT, "accuracy", True)
    write_result(run_dir, result)


LEARNED = {"learned": True, "reasons": [], "checks": {}}
FLAT = {
    "learned": False,
    "reasons": [{"code": "loss_flat", "message": "the training loss went from 0.69 to 0.69; search the rate."}],
    "checks": {},
}


# ---------------------------------------------------------------- the checks themselves


def test_loss_checks_read_the_two_ends_of_the_curve():
    assert loss_reasons({"loss_curve": [1.0] * 5 + [0.5] * 5})[0] == []
    flat, measured = loss_reasons({"loss_curve": [0.70, 0.69, 0.71, 0.70, 0.69, 0.68, 0.69, 0.70, 0.66, 0.68]})
    assert [r["code"] for r in flat] == ["loss_flat"] and "--search" in flat[0]["message"]
    assert measured["window"] == 5 and measured["final_loss"] == pytest.approx(0.682)
    diverged, _ = loss_reasons({"loss_curve": [1.0] * 5 + [1.6] * 5})
    assert [r["code"] for r in diverged] == ["loss_diverged"]
    assert [r["code"] for r in loss_reasons({"loss_curve": [1.0, 0.5, math.nan, 0.4]})[0]] == ["loss_diverged"]
    assert loss_reasons(None) == ([], {}) and loss_reasons({"loss_curve": []}) == ([], {})
    # short runs: the window shrinks to half the steps, so the two ends never overlap
    assert loss_reasons({"loss_curve": [3.4, 3.3, 3.2, 2.1, 2.0, 1.9]})[1]["window"] == 3


def test_constant_predictions_are_judged_against_the_eval_majority():
    refs = ["a"] * 80 + ["b"] * 20
    found, measured = constant_reasons(["a"] * 96 + ["b"] * 4, refs, labels=True)
    assert [r["code"] for r in found] == ["constant_predictions"] and measured["top_share"] == 0.96
    assert constant_reasons(["a"] * 94 + ["b"] * 6, refs, labels=True)[0] == []  # under 95%
    # where the eval data itself is 96% one class, predicting it is not a sign of anything
    assert constant_reasons(["a"] * 100, ["a"] * 96 + ["b"] * 4, labels=True)[0] == []
    texts = [f"answer {i}" for i in range(10)]
    assert constant_reasons(["I am not sure."] * 9 + ["x"], texts, labels=False)[0][0]["code"] == "constant_predictions"
    assert constant_reasons(["I am not sure."] * 8 + ["x", "y"], texts, labels=False)[0] == []


def test_macro_f1_bootstrap_tests_macro_f1_itself():
    rng = random.Random(0)
    refs = [rng.choice("aab") for _ in range(300)]
    good = [r if rng.random() < 0.85 else ("a" if r == "b" else "b") for r in refs]
    majority = ["a"] * 300
    assert macro_f1(good, refs) > 0.75 and macro_f1(majority, refs) < 0.45
    assert macro_f1_bootstrap_p(good, majority, refs) < 0.001
    assert macro_f1_bootstrap_p(good, good, refs) == 1.0
    nearly = [r if i % 50 else ("a" if r == "b" else "b") for i, r in enumerate(good)]  # 6 items changed
    assert macro_f1_bootstrap_p(good, nearly, refs) > 0.05


# ---------------------------------------------------------------- constructed cells that did not learn


def _imbalanced_rows(folder, name: str, positives: int, negatives: int) -> str:
    rows = [json.loads(line) for line in (ROOT / "tasks/data/sentiment/train.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r["sentiment"] == "positive"][:positives]
    picked += [r for r in rows if r["sentiment"] == "negative"][:negatives]
    random.Random(0).shuffle(picked)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked), encoding="utf-8")
    return str(path)


def run_task(tmp_path, path, strategies=("full",)):
    run_dir = tmp_path / "run"
    for cell in load_matrix([path], strategies=tuple(strategies)).cells:
        write_result(run_dir, run_cell(cell, run_dir / "cells" / cell.cell_id))
    return run_dir


def test_a_rate_too_small_to_move_anything_is_loss_flat_and_not_recommended(tiny_bert_dir, tmp_path):
    path = write_task(tmp_path, "frozen", tiny_bert_dir, body="")
    text = path.read_text().replace("learning_rate = 1e-3", "learning_rate = 1e-9").replace("epochs = 1", "epochs = 3")
    path.write_text(text)
    run_dir = run_task(tmp_path, path, ("none", "full"))
    cells = load_results(run_dir).set_index("strategy")
    assert cells.loc["full", "learned"] is False or cells.loc["full", "learned"] == False  # noqa: E712
    assert "loss_flat" in cells.loc["full", "learning_reasons"].split(",")
    assert "search the learning rate" in cells.loc["full", "learning_detail"]
    assert cells.loc["none", "learned"] is None  # the untuned row is the reference, not checked
    result = json.loads(next((run_dir / "cells").glob("*.json")).read_text())
    full = [json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json")]
    full = next(r for r in full if r["strategy"] == "full")
    assert full["learning"]["learned"] is False and full["learning"]["checks"]["loss"]["steps"] == 12
    assert result["training"] is None or "loss_curve" in result["training"]
    # the only tuned row did not learn: recommend still answers, and says so
    pick = recommend(load_aggregates(run_dir), Constraints())[0]
    assert pick.strategy == "full" and "no strategy learned" in pick.reason


def test_a_ninety_ten_task_without_class_weights_predicts_one_class(tiny_bert_dir, tmp_path):
    train = _imbalanced_rows(tmp_path, "train", 12, 108)  # 90% negative
    evaluation = _imbalanced_rows(tmp_path, "eval", 10, 40)  # 80% negative
    body = '\n[scenario]\nclass_weights = "none"\n'
    path = write_task(tmp_path, "skewed", tiny_bert_dir, body=body)
    text = path.read_text()
    text = text.replace(f'train = "{ROOT}/tasks/data/sentiment/train.jsonl"', f'train = "{train}"')
    text = text.replace(f'eval = "{ROOT}/tasks/data/sentiment/eval.jsonl"', f'eval = "{evaluation}"')
    text = text.replace("max_train_samples = 64", "max_train_samples = 120").replace("epochs = 1", "epochs = 2")
    # the rows repeat a few texts on both sides: what this test is about is the imbalance, not the overlap
    text = text.replace("max_eval_samples = 48", 'max_eval_samples = 48\nchecks = { train_eval_overlap = "warn" }')
    path.write_text(text)
    run_dir = run_task(tmp_path, path, ("none", "full"))
    # a second, hand-written strategy that learned: recommend must pass the one that did not
    write_result(
        run_dir,
        cell_result("skewed", "lora", 0, 0.9, memory=9 * GiB, tokens_per_s=900.0, learning=LEARNED),
    )
    cells = load_results(run_dir).set_index("strategy")
    reasons = cells.loc["full", "learning_reasons"].split(",")
    assert "constant_predictions" in reasons and "below_reference" in reasons
    assert "majority class" in cells.loc["full", "learning_detail"]
    assert "class_weights" in cells.loc["full", "learning_detail"]
    pick = recommend(load_aggregates(run_dir), Constraints())[0]
    assert pick.strategy == "lora", pick.reason
    assert "full (constant_predictions,below_reference) is excluded" in pick.reason
    assert "✗ did not learn: constant_predictions,below_reference" in export(run_dir, "md")


# ---------------------------------------------------------------- exports and the report


def write_learning_run(run_dir):
    write_cell(run_dir, "full", set(range(78)), 2 * GiB, LEARNED)
    write_cell(run_dir, "lora", set(range(50)) | set(range(78, 90)), 0.5 * GiB, LEARNED)
    write_cell(run_dir, "adapter", set(range(75)), 1 * GiB, FLAT)
    return run_dir


def test_load_results_and_every_export_carry_the_learning_columns(tmp_path):
    run_dir = write_learning_run(tmp_path)
    cells = load_results(run_dir).set_index("strategy")
    assert {"learned", "learning_reasons", "learning_detail"} <= set(cells.columns)
    assert cells.loc["adapter", "learning_reasons"] == "loss_flat" and cells.loc["full", "learned"] == True  # noqa: E712
    csv = export(run_dir, "csv")
    header = csv.splitlines()[0].split(",")
    assert "learned" in header and "learning_reasons" in header and "loss_flat" in csv
    payload = json.loads(export(run_dir, "json"))
    assert "learning_reasons" in payload["columns"] and "learning_reasons" in payload["aggregate_columns"]
    adapter = next(c for c in payload["cells"] if c["strategy"] == "adapter")
    assert adapter["learned"] is False and adapter["learning_reasons"] == "loss_flat"
    markdown = export(run_dir, "md")
    assert (
        "✗ did not learn: loss_flat" in markdown and "adapter did not learn. loss_flat: the training loss" in markdown
    )
    assert "did not learn" in export(run_dir, "latex")
    html = render_html(run_dir)
    assert "✗ did not learn: loss_flat" in html and "not-learned" in html


# ---------------------------------------------------------------- one seed: the paired test on items


def test_one_seed_rows_get_the_paired_test_on_items_against_a_hand_computation(tmp_path):
    # both right on 0-49; only full on 50-77 (28 items), only lora on 78-89 (12): they differ on 40 items
    run_dir = write_learning_run(tmp_path)
    rows = load_aggregates(run_dir).set_index("strategy")
    hand = 2 * sum(math.comb(40, k) for k in range(13)) / 2**40  # two-sided exact McNemar, min(b, c) = 12
    assert hand == pytest.approx(0.0166, abs=1e-4)
    assert rows.loc["lora", "noise_p_value"] == pytest.approx(hand)
    assert rows.loc["lora", "noise_vs_best"] == DIFFERS and rows.loc["lora", "noise_scope"] == EVAL_SCOPE
    assert "1 seeds x 100 items" in rows.loc["lora", "noise_test"]
    # adapter: only full right on 75-77 (3 items), nothing the other way: p = 2 x 1/8
    assert rows.loc["adapter", "noise_vs_best"] == TIE and rows.loc["adapter", "noise_p_value"] == pytest.approx(0.25)
    markdown = export(run_dir, "md")
    assert "differs (p = 0.017; eval noise only, seed noise unknown)" in markdown
    assert "within eval noise (p = 0.25; seed noise unknown)" in markdown
    assert "single seed: noise unknown" not in markdown
    html = render_html(run_dir)
    assert "differs (p = 0.017; eval noise only, seed noise unknown)" in html
    # adapter is within eval noise of full and cheaper, but did not learn: full is picked, adapter excluded
    pick = recommend(load_aggregates(run_dir), Constraints())[0]
    assert pick.strategy == "full" and "adapter (loss_flat) is excluded" in pick.reason


def test_one_seed_within_eval_noise_lets_recommend_take_the_cheaper_row(tmp_path):
    write_cell(tmp_path, "full", set(range(78)), 2 * GiB, LEARNED)
    write_cell(tmp_path, "adapter", set(range(75)), 1 * GiB, LEARNED)
    pick = recommend(load_aggregates(tmp_path), Constraints())[0]
    assert pick.strategy == "adapter"
    assert pick.reason.startswith(
        "Pick adapter: full and adapter tie on accuracy (full 0.780, adapter 0.750; paired test on the eval "
        "items of one seed: p = 0.25 for adapter; seed noise unknown); among them adapter uses the least peak "
        "memory (1 GiB)"
    )


def test_class_weights_auto_weighs_imbalanced_labels_only(tiny_bert_dir, tmp_path):
    from harness.scenarios.classification import IMBALANCED_SHARE, class_weighting

    assert class_weighting("auto", ["a"] * 61 + ["b"] * 39)[0] == "balanced"
    assert class_weighting("auto", ["a"] * 60 + ["b"] * 40)[0] == "none"
    assert class_weighting("none", ["a"] * 90 + ["b"] * 10) == (
        "none",
        "class_weights = \"none\" set by the task (the majority class 'a' holds 90% of the 100 training rows)",
    )
    assert "above 60%" in class_weighting("auto", ["a"] * 9 + ["b"])[1] and IMBALANCED_SHARE == 0.6


def test_validate_and_list_say_which_class_weighting_applies_and_why(tiny_bert_dir, tmp_path, capsys):
    from harness.cli import main

    train = _imbalanced_rows(tmp_path, "train", 12, 108)
    path = write_task(tmp_path, "skewed", tiny_bert_dir)
    text = path.read_text().replace(f'train = "{ROOT}/tasks/data/sentiment/train.jsonl"', f'train = "{train}"')
    path.write_text(text.replace("max_train_samples = 64", "max_train_samples = 120"))
    balanced = write_task(tmp_path, "even", tiny_bert_dir)
    assert main(["validate", str(path), str(balanced)]) == 0
    out = capsys.readouterr().out
    assert "skewed: class weights balanced (auto: the majority class 'negative' holds 90% of the 120" in out
    assert "even: class weights none (auto: the majority class" in out and "at most 60%" in out
    assert main(["list", str(path)]) == 0
    assert "class weights balanced (auto:" in capsys.readouterr().out


def test_a_training_cell_records_its_class_weighting(tiny_bert_dir, tmp_path):
    run_dir = run_task(tmp_path, write_task(tmp_path, "even", tiny_bert_dir))
    result = json.loads(next((run_dir / "cells").glob("*.json")).read_text())
    assert result["training"]["class_weights"] == "none"
    assert result["training"]["class_weights_why"].startswith("auto: the majority class")


def test_a_flat_loss_is_a_warning_where_the_eval_shows_learning_and_a_reason_where_it_does_not():
    from harness.results.learning import Comparison, verdict, with_untuned

    flat, _ = loss_reasons({"loss_curve": [0.694] * 5 + [0.637] * 5})  # spam, adapter at 3e-4: macro-F1 0.952
    learned = verdict([], flat, ["the majority class"], {})
    assert learned["learned"] and learned["reasons"] == [] and learned["warnings"][0]["code"] == "loss_flat"
    unproven = verdict([], flat, [], {})  # no reference beaten (e.g. perplexity: no trivial reference)
    assert not unproven["learned"] and unproven["reasons"][0]["code"] == "loss_flat"
    # the untuned row settles it at load time, either way
    beats = Comparison("the untuned model (none)", 43.0, 57.6, "paired bootstrap on 16 items", 0.002)
    loses = Comparison("the untuned model (none)", 43.0, 44.0, "paired bootstrap on 16 items", 0.6)
    assert with_untuned(unproven, beats, "perplexity")["learned"]
    after = with_untuned(learned, loses, "accuracy")
    assert not after["learned"] and [r["code"] for r in after["reasons"]] == ["below_reference", "loss_flat"]


def test_generation_has_a_constant_answer_only_where_a_training_answer_repeats():
    """Unique titles have no commonest answer: the first row's would be an arbitrary reference."""
    from harness.scenarios.generation import Generation

    scenario = object.__new__(Generation)
    scenario.train_rows = [{"target": t} for t in ("A title", "Another title", "A third one")]
    assert scenario.constant_answer(4) is None
    scenario.train_rows = [{"target": t} for t in ("Depression", "Pain", "Depression", "Acne")]
    assert scenario.constant_answer(3) == (
        "the commonest training answer for every prompt ('Depression', 2 rows)",
        ["Depression"] * 3,
    )
