"""'Which strategy should I pick?' on the terminal and in the report, under memory and metric limits."""

from __future__ import annotations

import pytest
from report_fixtures import GiB, three_seed_results, write_run

from harness.cli import main
from harness.report.format import parse_size
from harness.report.recommend import Constraints, recommend
from harness.results.table import load_aggregates


@pytest.fixture
def run_dir(tmp_path):
    """Sentiment: full best beyond noise (lora 0.05 lower); qa: full and lora tie on perplexity."""
    results = three_seed_results()
    for result in results:
        if result["task"] == "sentiment" and result["strategy"] == "lora":
            result["primary_value"] -= 0.05
    return write_run(tmp_path / "run", results)


def _picks(run_dir, **constraints) -> dict:
    return {item.task: item for item in recommend(load_aggregates(run_dir), Constraints(**constraints))}


def test_a_memory_limit_that_excludes_full_changes_the_answer_and_says_why(run_dir, capsys):
    assert main(["recommend", str(run_dir)]) == 0
    unconstrained = capsys.readouterr().out
    assert "sentiment: full - Pick full: it has the best accuracy (0.910 ± 0.010)." in unconstrained
    assert main(["recommend", str(run_dir), "--max-memory", "1.5GiB"]) == 0
    limited = capsys.readouterr().out
    assert limited != unconstrained
    line = next(line for line in limited.splitlines() if line.startswith("sentiment:"))
    assert line.startswith("sentiment: lora - Pick lora: it has the best accuracy")
    assert "full (2 GiB) is excluded because its peak memory exceeds --max-memory 1.5 GiB" in line


def test_accuracy_ties_go_to_the_strategy_needing_less_memory(tmp_path):
    picks = _picks(write_run(tmp_path / "run", three_seed_results()))
    assert picks["sentiment"].strategy == "lora"
    assert "accuracy (0.900 ± 0.010) is within noise of the best, full (0.910 ± 0.010)" in picks["sentiment"].reason
    assert "needs less peak memory (1 GiB against 2 GiB)" in picks["sentiment"].reason


def test_preferences_and_lower_is_better_metrics(run_dir):
    assert _picks(run_dir, prefer="speed")["sentiment"].strategy == "lora"
    assert "trains fastest (1500 tokens/s)" in _picks(run_dir, prefer="speed")["sentiment"].reason
    assert _picks(run_dir, prefer="memory")["sentiment"].strategy == "lora"  # `none` is the baseline, never picked
    qa = _picks(run_dir)["qa"]  # perplexity, lower is better: lora (14.5) ties full (12.5) and needs less memory
    assert qa.strategy == "lora" and "perplexity (14.500 ± 0.500) is within noise of the best, full (12.500" in (
        qa.reason
    )
    assert _picks(run_dir, min_metric=13.0, prefer="memory")["qa"].strategy == "full"  # lora 14.5 misses <= 13


def test_nothing_fits_exits_1_and_lists_every_exclusion(run_dir, capsys):
    assert main(["recommend", str(run_dir), "--max-memory", "500MB", "--min-metric", "0.95"]) == 1
    out = capsys.readouterr().out
    assert "sentiment: (none fits) - No strategy meets the constraints:" in out
    assert "full (2 GiB), adapter (1.1 GiB) and lora (1 GiB) are excluded because their peak memory" in out
    assert "adapter (oom) is excluded because its cells all failed" in out


def test_memory_sizes():
    assert parse_size("2GiB") == 2 * GiB and parse_size("500MB") == 500_000_000
    assert parse_size("1.5 GiB") == int(1.5 * GiB) and parse_size("123") == 123
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size("lots")


def test_report_shows_the_pick_for_the_same_constraints(run_dir, tmp_path):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--out", str(out), "--max-memory", "1.5GiB"]) == 0
    page = out.read_text(encoding="utf-8")
    assert "Pick lora: it has the best accuracy" in page and "full (2 GiB) is excluded" in page
