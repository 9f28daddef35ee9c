"""Named variants of a strategy are rows of their own; settings that differ beyond the learning rate are
flagged as not comparable in the report and in recommend."""

from __future__ import annotations

import re

import pytest

import harness
from harness.cli import main
from harness.config import ConfigError, load_matrix
from harness.report.html import render_html
from harness.report.recommend import Constraints, recommend
from harness.results.io import write_result
from tests.helpers import ROOT, write_task
from tests.report_fixtures import GiB, cell_result

VARIANT = '\n[strategies.lora-r16]\ntype = "lora"\nr = 16\nalpha = 32\n'


def test_a_variant_runs_its_strategy_with_its_own_options(tmp_path, tiny_bert_dir):
    task = write_task(tmp_path, "variants", tiny_bert_dir, body=VARIANT)
    cells = load_matrix([task]).cells
    assert [c.strategy for c in cells] == ["none", "full", "frozen-lower", "adapter", "lora", "lora-r16"]
    variant = cells[-1]
    assert variant.registered == "lora" and variant.options.r == 16 and variant.options.alpha == 32
    assert cells[-2].options.r == 8 and cells[-2].cell_id != variant.cell_id
    assert load_matrix([task], strategies=("lora-r16",)).cells[0].strategy_type == "lora"


def test_lora_and_lora_r16_are_two_rows_with_their_options(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    task = write_task(tmp_path, "variants", tiny_bert_dir, body=VARIANT)
    run_dir = tmp_path / "run"
    assert main(["run", str(task), "--strategies", "lora,lora-r16", "--out", str(run_dir)]) == 0
    cells = harness.load_results(run_dir).set_index("strategy")
    assert cells.loc["lora-r16", "strategy_type"] == "lora" and cells.loc["lora-r16", "option.r"] == 16
    assert cells.loc["lora-r16", "trainable_params"] > cells.loc["lora", "trainable_params"]
    rows = harness.load_aggregates(run_dir).set_index("strategy")
    assert list(rows.index) == ["lora", "lora-r16"]
    assert "r=8" in rows.loc["lora", "settings"] and "r=16" in rows.loc["lora-r16", "settings"]
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert rows.loc["lora-r16", "settings"] in html and rows.loc["lora", "settings"] in html


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('type = "lorax"', "strategies.lora-r16.type: unknown strategy 'lorax' (did you mean 'lora'?)"),
        ("type = 3", "strategies.lora-r16.type: expected the name of a strategy, got 3"),
        ('type = "lora"\nrank = 16', "strategies.lora-r16.rank: unknown key"),
    ],
)
def test_bad_variants_are_one_line_errors(tmp_path, tiny_bert_dir, table, message):
    task = write_task(tmp_path, "bad", tiny_bert_dir, body=f"\n[strategies.lora-r16]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_matrix([task])


def with_settings(strategy: str, max_length: int, batch_size: int, memory: float) -> dict:
    result = cell_result("t", strategy, 0, 0.8 if strategy != "none" else 0.5, memory=memory, tokens_per_s=900.0)
    config = {**result["config"], "task": {"model": {"max_length": max_length}, "training": {"batch_size": batch_size}}}
    return {**result, "config": config}


def test_a_table_whose_strategies_differ_in_max_length_is_flagged(tmp_path):
    for result in (
        with_settings("none", 64, 8, 0.5 * GiB),  # the untuned baseline's batch size does not matter
        with_settings("full", 64, 16, 2 * GiB),
        with_settings("lora", 128, 16, 1 * GiB),
    ):
        write_result(tmp_path, result)
    rows = harness.load_aggregates(tmp_path)
    assert set(rows["not_comparable"]) == {"max_length differs: full 64, lora 128, none 64"}
    assert "Not comparable: max_length differs: full 64, lora 128, none 64" in render_html(tmp_path)
    assert "Caution, not comparable: max_length differs" in recommend(rows, Constraints())[0].reason
    comparable = tmp_path / "same"
    for result in (with_settings("none", 64, 8, GiB), with_settings("full", 64, 16, GiB)):
        write_result(comparable, result)
    assert set(harness.load_aggregates(comparable)["not_comparable"]) == {""}


def write_suite(folder, task, budget: str):
    path = folder / "suite.toml"
    path.write_text(
        f'[suite]\nname = "budget"\ntasks = ["{task.name}"]\nstrategies = ["full", "lora"]\nbudget = {budget}\n',
        encoding="utf-8",
    )
    return path


def test_a_suite_budget_holds_every_strategy_to_the_same_steps(tmp_path, tiny_bert_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    body = "\n[strategies.lora.training]\nmax_steps = 3\n"  # the budget wins over a strategy's own setting
    task = write_task(tmp_path, "budget", tiny_bert_dir, body=body)  # 64 rows / 16 = 4 steps unbudgeted
    suite = write_suite(tmp_path, task, "{ steps = 2 }")
    assert {c.task.training.max_steps for c in load_matrix([suite]).cells} == {2}
    run_dir = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(run_dir)]) == 0  # the cells re-resolve to the same ids
    results = harness.results.read_results(run_dir)
    assert [r["training"]["steps"] for r in results] == [2, 2]
    assert all(r["config"]["task"]["training"]["max_steps"] == 2 for r in results)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ("{ steps = 2, tokens = 100 }", "suite.budget: name exactly one of tokens, steps, seconds; got 2"),
        ("{}", "suite.budget: name exactly one of tokens, steps, seconds; got 0"),
        ("{ minutes = 3 }", "suite.budget.minutes: unknown key"),
    ],
)
def test_a_bad_budget_is_a_one_line_error(tmp_path, tiny_bert_dir, budget, message):
    suite = write_suite(tmp_path, write_task(tmp_path, "budget", tiny_bert_dir), budget)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_matrix([suite])
