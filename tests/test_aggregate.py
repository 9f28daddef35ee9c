"""Aggregates over seeds (mean, sample std, 95% CI, n) and the noise rule, in frames and exports."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
from report_fixtures import single_seed_results, three_seed_results, write_run

import harness
from harness.report.export import export
from harness.results import COLUMNS
from harness.results.aggregate import (
    DIFFERS,
    TIE,
    UNKNOWN,
    Summary,
    noise_verdict,
    prediction_half_width,
    summarize,
    within_noise,
)


def test_summary_is_mean_sample_std_and_student_t_interval():
    summary = summarize([1.0, 2.0, 3.0])
    assert summary.n == 3 and summary.mean == 2.0 and summary.std == 1.0  # ddof=1
    assert summary.ci95 == pytest.approx(4.302652729911275 / math.sqrt(3))  # t(0.975, 2) * s / sqrt(n)


def test_one_value_has_no_spread_and_missing_values_are_not_counted():
    summary = summarize([0.5, None, float("nan")])
    assert summary.n == 1 and summary.mean == 0.5
    assert math.isnan(summary.std) and math.isnan(summary.ci95)
    assert summarize([]).n == 0


def test_noise_rule_both_ways():
    a = summarize([0.90, 0.91, 0.92])
    assert noise_verdict(a, summarize([0.89, 0.91, 0.90])) == TIE  # intervals overlap
    assert noise_verdict(a, summarize([0.70, 0.71, 0.72])) == DIFFERS  # far apart
    one = Summary(0.5, math.nan, math.nan, 1)
    assert noise_verdict(one, Summary(0.6, math.nan, math.nan, 1)) == UNKNOWN  # one seed each: cannot tell
    assert within_noise(one, Summary(0.6, math.nan, math.nan, 1)) is None  # unknown is never "within noise"
    assert within_noise(a, summarize([0.89, 0.91, 0.90])) is True
    assert within_noise(a, summarize([0.70, 0.71, 0.72])) is False
    assert noise_verdict(Summary(1.0, math.nan, math.nan, 1), Summary(1.0, math.nan, math.nan, 1)) == TIE


def test_one_seed_against_several_uses_the_prediction_interval_of_the_several():
    """0.827 from one seed against 0.811 ± 0.017 over three: inside the 3-seed row's 95% prediction
    interval (t(0.975, 2) · 0.017 · sqrt(1 + 1/3) = 0.0845), so a tie, not a win for the single seed."""
    three = Summary(0.811, 0.017, 4.302652729911275 * 0.017 / math.sqrt(3), 3)
    assert prediction_half_width(three) == pytest.approx(4.302652729911275 * 0.017 * math.sqrt(4 / 3))
    assert noise_verdict(Summary(0.827, math.nan, math.nan, 1), three) == TIE
    assert noise_verdict(three, Summary(0.811 + 0.0846, math.nan, math.nan, 1)) == DIFFERS  # just outside
    assert noise_verdict(three, Summary(0.811 - 0.0844, math.nan, math.nan, 1)) == TIE  # just inside
    two = Summary(0.8, 0.01, 12.706204736174698 * 0.01 / math.sqrt(2), 2)  # two seeds: t(0.975, 1) = 12.706
    assert prediction_half_width(two) == pytest.approx(12.706204736174698 * 0.01 * math.sqrt(3 / 2))
    assert math.isnan(prediction_half_width(Summary(0.8, math.nan, math.nan, 1)))  # one seed: no interval


@pytest.fixture
def run_dir(tmp_path):
    return write_run(tmp_path / "run", three_seed_results())


def _row(frame, task, strategy):
    return frame[(frame.task == task) & (frame.strategy == strategy)].iloc[0]


def test_aggregates_per_task_and_strategy(run_dir):
    frame = harness.load_aggregates(run_dir)
    full = _row(frame, "sentiment", "full")
    assert full.n == 3 and full.n_failed == 0
    assert full.primary_value_mean == pytest.approx(0.91) and full.primary_value_std == pytest.approx(0.01)
    assert full.primary_value_ci95 == pytest.approx(4.302652729911275 * 0.01 / math.sqrt(3))
    assert full["metric.accuracy_mean"] == pytest.approx(0.91) and full.peak_memory_bytes_std == 0
    assert full.best and not full.within_noise_of_best
    lora, adapter = _row(frame, "sentiment", "lora"), _row(frame, "sentiment", "adapter")
    assert lora.within_noise_of_best and lora.noise_vs_best == TIE
    assert not adapter.within_noise_of_best and adapter.noise_vs_best == DIFFERS
    failed = _row(frame, "qa", "adapter")
    assert failed.n == 0 and failed.n_failed == 1 and not failed.best and failed.failed_statuses == "oom"


def test_lower_is_better_metrics_pick_the_smallest_mean(run_dir):
    frame = harness.load_aggregates(run_dir)
    assert _row(frame, "qa", "full").best  # perplexity 12.5 < 14.5 < 40.5
    assert _row(frame, "qa", "none").rank_in_task == 3


def test_load_results_keeps_cells_by_default_and_aggregates_on_request(run_dir):
    cells = harness.load_results(run_dir)
    assert list(cells.columns[: len(COLUMNS)]) == list(COLUMNS) and len(cells) == 22
    pd.testing.assert_frame_equal(harness.load_results(run_dir, aggregate=True), harness.load_aggregates(run_dir))


def test_csv_and_json_carry_cells_and_aggregates(run_dir):
    frame = pd.read_csv(io.StringIO(export(run_dir, "csv")))
    assert frame.columns[0] == "row_type" and set(frame.row_type) == {"cell", "aggregate"}
    cells = frame[frame.row_type == "cell"].dropna(axis=1, how="all")
    aggregates = frame[frame.row_type == "aggregate"].dropna(axis=1, how="all")
    assert len(cells) == 22 and len(aggregates) == 8 and set(cells.seed) == {0, 1, 2}
    assert {"primary_value_mean", "primary_value_std", "primary_value_ci95", "n", "n_failed"} <= set(aggregates)
    payload = json.loads(export(run_dir, "json"))
    assert len(payload["cells"]) == 22 and len(payload["aggregates"]) == 8
    full = next(a for a in payload["aggregates"] if a["task"] == "sentiment" and a["strategy"] == "full")
    assert full["n"] == 3 and full["best"] is True and full["primary_value_ci95"] > 0


def _markdown_row(text: str, task: str, strategy: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {task} | ") and f"| {strategy} |" in line)


def test_tables_mark_ties_within_noise_and_not_real_differences(run_dir):
    markdown = export(run_dir, "md")
    assert "**0.910 ± 0.010**" in _markdown_row(markdown, "sentiment", "full")
    assert "≈ within noise of best" in _markdown_row(markdown, "sentiment", "lora")
    assert "≈" not in _markdown_row(markdown, "sentiment", "adapter")
    assert "worse, beyond noise" in _markdown_row(markdown, "sentiment", "adapter")
    latex = export(run_dir, "latex")
    lora_line = next(line for line in latex.splitlines() if "& lora &" in line and "0.900" in line)
    assert "$^{\\dagger}$" in lora_line
    adapter_line = next(line for line in latex.splitlines() if "& adapter &" in line and "0.710" in line)
    assert "dagger" not in adapter_line


def test_single_seed_says_noise_unknown(tmp_path):
    run_dir = write_run(tmp_path / "run", single_seed_results())
    frame = harness.load_aggregates(run_dir)
    lora = _row(frame, "sentiment", "lora")
    assert math.isnan(lora.primary_value_std) and lora.noise_vs_best == UNKNOWN
    assert lora.within_noise_of_best is None  # unknown noise is stored as null, not as "within noise"
    assert "single seed: noise unknown" in _markdown_row(export(run_dir, "md"), "sentiment", "lora")


def test_the_combined_frame_of_a_wide_run_warns_of_nothing():
    import warnings

    import pandas as pd

    from harness.report.export import combined_frame

    cells = pd.DataFrame({"seed": [0, 1]})
    for i in range(150):  # built a column at a time, as load_results' figures are: a fragmented frame
        cells[f"figure_{i}"] = [float(i), float(i)]
    aggregates = cells.drop(columns="seed").head(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        both = combined_frame(cells, aggregates)
    assert list(both.row_type) == ["cell", "cell", "aggregate"] and str(both.seed.dtype) == "Int64"
