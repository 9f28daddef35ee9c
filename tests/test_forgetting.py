"""Forgetting: a causal LM's loss on general text after tuning, against the untuned model's."""

from __future__ import annotations

import json
import math

import pytest

import harness
from harness.config import ConfigError, load_matrix
from harness.report.html import render_html
from harness.results.io import write_result
from harness.run.cell import run_cell
from tests.helpers import write_task
from tests.test_scenarios import write_scenario_task

GENERAL = ["the film was long but the ending was good", "a short story about a man and his dog", "what a day"]


def forgetting_task(tmp_path, model_dir, samples: int = 2):
    texts = tmp_path / "general.jsonl"
    texts.write_text("".join(json.dumps({"body": t}) + "\n" for t in ["", *GENERAL]), encoding="utf-8")
    path = write_scenario_task(tmp_path, "creative", model_dir)
    path.write_text(path.read_text() + f'\n[forgetting]\ntext = "{texts}"\ncolumn = "body"\nsamples = {samples}\n')
    return path


def test_forgetting_is_the_tuned_loss_on_general_text_minus_the_untuned_one(tmp_path, tiny_llama_dir):
    task = forgetting_task(tmp_path, tiny_llama_dir)
    run_dir = tmp_path / "run"
    for cell in load_matrix([task], strategies=("none", "full", "lora")).cells:
        write_result(run_dir, run_cell(cell, run_dir / "cells" / cell.cell_id))
    cells = harness.load_results(run_dir).set_index("strategy")
    record = harness.results.read_results(run_dir)[0]["forgetting"]
    assert record["texts"] == 2 and record["tokens"] > 0  # the empty first text is skipped
    assert all(math.isfinite(v) and v > 0 for v in cells["general_text_loss"])
    assert cells.loc["none", "forgetting"] == 0.0
    assert cells.loc["full", "forgetting"] == pytest.approx(
        cells.loc["full", "general_text_loss"] - cells.loc["none", "general_text_loss"]
    )
    assert cells.loc["full", "forgetting"] != 0.0  # full tuning moved the weights
    aggregates = harness.load_aggregates(run_dir).set_index("strategy")
    assert aggregates.loc["lora", "forgetting_mean"] == pytest.approx(cells.loc["lora", "forgetting"])
    assert "forgetting (nats/token vs none)" in render_html(run_dir)


def test_forgetting_needs_a_generative_causal_task_and_its_text(tmp_path, tiny_bert_dir, tiny_llama_dir):
    classification = write_task(tmp_path, "cls", tiny_bert_dir, body=f'\n[forgetting]\ntext = "{tmp_path}"\n')
    with pytest.raises(ConfigError, match="forgetting: forgetting is measured on causal language models"):
        load_matrix([classification])
    task = forgetting_task(tmp_path, tiny_llama_dir)
    task.write_text(task.read_text().replace(str(tmp_path / "general.jsonl"), str(tmp_path / "missing.jsonl")))
    with pytest.raises(ConfigError, match="forgetting.text: "):
        load_matrix([task])


def test_runs_without_forgetting_get_no_forgetting_column():
    from tests.test_schema import SCHEMA1_RUN

    cells = harness.load_results(SCHEMA1_RUN)
    assert "forgetting" not in cells and cells["general_text_loss"].isna().all()
    assert "forgetting_mean" not in harness.load_aggregates(SCHEMA1_RUN)
