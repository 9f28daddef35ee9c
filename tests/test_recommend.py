"""'Which strategy should I pick?' on the terminal and in the report, under memory and metric limits."""

from __future__ import annotations

import pytest
from report_fixtures import GiB, cell_result, three_seed_results, write_run

from harness.cli import main
from harness.report.export import export
from harness.report.format import parse_size
from harness.report.recommend import Constraints, recommend
from harness.results.io import write_result
from harness.results.items import CORRECT, write_items
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
    assert (
        "Pick lora: full and lora tie on accuracy (full 0.910 ± 0.010, lora 0.900 ± 0.010; within noise over "
        "seeds); among them lora uses the least peak memory (1 GiB)." == picks["sentiment"].reason
    )


def test_preferences_and_lower_is_better_metrics(run_dir):
    assert _picks(run_dir, prefer="speed")["sentiment"].strategy == "lora"
    assert "trains fastest (1500 tokens/s)" in _picks(run_dir, prefer="speed")["sentiment"].reason
    assert _picks(run_dir, prefer="memory")["sentiment"].strategy == "lora"  # `none` is the baseline, never picked
    qa = _picks(run_dir)["qa"]  # perplexity, lower is better: lora (14.5) ties full (12.5) and needs less memory
    assert qa.strategy == "lora" and "full and lora tie on perplexity (full 12.500 ± 0.500, lora 14.500" in qa.reason
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


# ---------------------------------------------------------------- ties, mixed seed counts, contention


def _items(right: set[int], n: int = 200) -> list[dict]:
    return [{"id": i, "prediction": "pos", "reference": "pos", "correct": i in right} for i in range(n)]


def _cell(run_dir, strategy: str, seed: int, right: set[int] | None, value: float | None = None, **extra):
    """A cell; with `right`, per-item results where exactly those of 200 items are right."""
    value = len(right) / 200 if value is None else value
    memory = extra.pop("memory", {"full": 2.0, "frozen-lower": 1.5, "lora": 1.0, "adapter": 1.2}.get(strategy, 0.5))
    tokens = extra.pop("tokens_per_s", 100.0)
    result = cell_result("t", strategy, seed, value, memory=memory * GiB, tokens_per_s=tokens, **extra)
    if right is not None:
        result["items"] = write_items(run_dir / "cells" / result["cell_id"], _items(right), CORRECT, "accuracy", True)
    write_result(run_dir, result)


def test_three_rows_tied_by_the_paired_test_are_a_tie_broken_on_memory(tmp_path):
    """One seed each: full 166/200 right, frozen-lower 165, lora 164, differing on a handful of items, and
    McNemar finds no difference; adapter differs on 40 items. The verdict is a tie of three."""
    run_dir = tmp_path / "run"
    _cell(run_dir, "full", 0, set(range(166)))
    _cell(run_dir, "frozen-lower", 0, set(range(165)))
    _cell(run_dir, "lora", 0, set(range(2, 166)))
    _cell(run_dir, "adapter", 0, set(range(126)))
    rows = load_aggregates(run_dir).set_index("strategy")
    assert rows.loc["lora", "noise_vs_best"] == "within noise" and rows.loc["adapter", "noise_vs_best"] == "differs"
    pick = recommend(load_aggregates(run_dir), Constraints())[0]
    assert pick.strategy == "lora"  # the least memory of the three, not the third decimal (full 0.830)
    assert pick.reason.startswith(
        "Pick lora: full, frozen-lower and lora tie on accuracy (full 0.830, frozen-lower 0.825, lora 0.820; "
        "paired test on the eval items of one seed: p = "
    )
    assert "seed noise unknown); among them lora uses the least peak memory (1 GiB)" in pick.reason
    assert "cheapest next step: run 2 more seeds of full, 2 more seeds of frozen-lower and 2 more seeds of lora" in (
        pick.reason
    )
    # the report's overview counts a tie as half a win, not as a loss on the third decimal
    from harness.report.view import _win_rate_and_rank

    aggregates = load_aggregates(run_dir)
    assert _win_rate_and_rank(aggregates, "lora")[0] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert _win_rate_and_rank(aggregates, "full")[0] == pytest.approx((0.5 + 0.5 + 1) / 3)


def test_a_single_seed_never_wins_only_because_it_has_fewer_seeds(tmp_path):
    """frozen-lower 0.827 from one seed against lora 0.811 ± 0.017 over three (and full 0.80 ± 0.01): the
    single value lies inside lora's 95% prediction interval, so they tie, and the tie goes to memory."""
    run_dir = tmp_path / "run"
    for seed, value in enumerate((0.794, 0.811, 0.828)):
        _cell(run_dir, "lora", seed, None, value)
    for seed, value in enumerate((0.79, 0.80, 0.81)):
        _cell(run_dir, "full", seed, None, value)
    _cell(run_dir, "frozen-lower", 0, None, 0.827, memory=0.9)  # the least memory: it may win, on memory
    _cell(run_dir, "adapter", 0, None, 0.70)
    rows = load_aggregates(run_dir).set_index("strategy")
    assert rows.loc["frozen-lower", "best"]  # the best mean, marked as such ...
    assert rows.loc["lora", "noise_vs_best"] == "within noise"  # ... but within lora's seed noise
    assert rows.loc["lora", "noise_test"] == "single seed against the 95% prediction interval of the 3-seed row"
    assert rows.loc["adapter", "noise_vs_best"] == "single seed: noise unknown"  # one seed each, no items
    assert rows.loc["adapter", "within_noise_of_best"] is None
    assert "lora" not in rows.loc["adapter", "within_noise_of"].split(",")  # outside lora's interval
    pick = recommend(load_aggregates(run_dir), Constraints())[0]
    assert pick.strategy == "frozen-lower" and "tie on accuracy" in pick.reason
    assert "among them frozen-lower uses the least peak memory" in pick.reason
    assert "against adapter the noise is unknown (single seeds without per-item results)" in pick.reason
    assert (
        "cheapest next step: run 2 more seeds of frozen-lower and 2 more seeds of adapter (`--seeds 3` with "
        "`--strategies`) to separate them." in pick.reason
    )
    # the report's header counts seeds per strategy, and says which rows rest on one seed
    assert main(["report", str(run_dir), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "1 task(s) &times; 4 strategies; seeds: frozen-lower 1, adapter 1, others 3:" in page
    assert "Single seed in 2 row(s): t/frozen-lower, t/adapter." in page
    assert "The best of t/frozen-lower rests on one seed." in page
    # with lora the lighter one, the same numbers pick lora: the single seed's 0.827 decides nothing
    run_dir = tmp_path / "run2"
    for seed, value in enumerate((0.794, 0.811, 0.828)):
        _cell(run_dir, "lora", seed, None, value)
    _cell(run_dir, "frozen-lower", 0, None, 0.827)
    assert recommend(load_aggregates(run_dir), Constraints())[0].strategy == "lora"
    # every row's mark is its own: three-seed rows are never called "single seed"
    markdown = export(run_dir, "md")
    lora_line = next(line for line in markdown.splitlines() if "| lora |" in line)
    assert "single seed" not in lora_line and "≈ within noise of best" in lora_line


def test_speed_refuses_contended_throughput_unless_allowed(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _cell(run_dir, "full", 0, None, 0.90, contention={"contended": False})
    _cell(run_dir, "lora", 0, None, 0.89, contention={"contended": False})
    _cell(run_dir, "lora", 1, None, 0.88, tokens_per_s=300.0, contention={"contended": True})  # the fastest
    _cell(run_dir, "adapter", 0, None, 0.85, tokens_per_s=200.0, contention={"contended": True})
    rows = load_aggregates(run_dir).set_index("strategy")
    assert rows.loc["lora", "contended_seeds"] == "1" and rows.loc["full", "contended_seeds"] == ""
    assert main(["recommend", str(run_dir), "--prefer", "speed"]) == 1
    out = capsys.readouterr().out
    assert "t: (none fits) - Refusing to rank on training speed: the throughput of adapter seed 0 and lora seed 1" in (
        out
    )
    assert "re-run those cells on a quiet machine" in out and "--allow-contended" in out
    assert main(["recommend", str(run_dir), "--prefer", "speed", "--allow-contended"]) == 0
    out = capsys.readouterr().out
    assert (
        "t: " in out
        and "caution: ranked with --allow-contended on throughput measured under contention for "
        "adapter seed 0 and lora seed 1"
        in out
    )
    assert main(["recommend", str(run_dir)]) == 0  # accuracy does not rank on speed: no refusal
