"""Learning curves: the primary metric against training tokens and seconds, per strategy, in the report."""

from __future__ import annotations

import harness
from harness.cli import main
from harness.report.html import render_html
from harness.results.io import write_result
from tests.helpers import write_task
from tests.report_fixtures import GiB, cell_result


def history(values: list[float]) -> dict:
    return {
        "periodic_evaluation": [
            {"step": 2 * i + 2, "tokens": 800 * (i + 1), "train_seconds": 1.5 * (i + 1), "accuracy": v}
            for i, v in enumerate(values)
        ]
    }


def test_periodic_evaluations_draw_one_curve_per_strategy_on_each_axis(tmp_path):
    for strategy, values in (("full", [0.6, 0.75, 0.8]), ("lora", [0.5, 0.7, 0.78])):
        for seed in (1, 0):  # the lowest seed is drawn
            shifted = [v - 0.1 * seed for v in values]
            write_result(
                tmp_path,
                cell_result(
                    "t", strategy, seed, shifted[-1], memory=GiB, tokens_per_s=900.0, training=history(shifted)
                ),
            )
    write_result(tmp_path, cell_result("t", "none", 0, 0.5, memory=GiB, tokens_per_s=None))  # no training: no curve
    html = render_html(tmp_path)
    assert "t: learning curve, accuracy vs training tokens (non-padding)" in html
    assert "t: learning curve, accuracy vs training time (s, steps only)" in html
    assert html.count('class="curve"') == 4  # 2 strategies x 2 axes
    assert "full: 2,400 tokens, accuracy 0.8<" in html and "lora: 4.5 s, accuracy 0.78<" in html
    assert "none:" not in html.split("learning curve")[1][:5000].split("</svg>")[0]


def test_no_periodic_evaluation_no_learning_curve(tmp_path):
    write_result(tmp_path, cell_result("t", "full", 0, 0.8, memory=GiB, tokens_per_s=900.0))
    assert "learning curve" not in render_html(tmp_path)


def test_a_run_with_eval_every_steps_records_the_history_the_curves_use(tmp_path, tiny_bert_dir):
    task = write_task(tmp_path, "curves", tiny_bert_dir, body="eval_every_steps = 2\n")
    run_dir = tmp_path / "run"
    assert main(["run", str(task), "--strategies", "full", "--out", str(run_dir)]) == 0
    result = harness.results.read_results(run_dir)[0]
    assert [h["step"] for h in result["training"]["periodic_evaluation"]] == [2, 4]
    assert (
        result["training"]["periodic_evaluation"][-1]["tokens"]
        > result["training"]["periodic_evaluation"][0]["tokens"]
        > 0
    )
    assert "curves: learning curve, accuracy vs training tokens" in (run_dir / "report.html").read_text()
