"""Training protocol: memory breakdown from real tensors, budgets, time to target, precision, checkpointing."""

from __future__ import annotations

import pytest

from harness.config import load_matrix
from harness.run.cell import run_cell
from tests.helpers import write_task


def run(tmp_path, tiny_bert_dir, strategy: str, training: str = "", name: str = "t") -> dict:
    body = f"\n[strategies.{strategy}.training]\n{training}\n" if training else ""
    path = write_task(tmp_path, name, tiny_bert_dir, body=body)
    cell = load_matrix([path], strategies=(strategy,)).cells[0]
    return run_cell(cell, tmp_path / cell.cell_id)


def test_breakdown_of_full_adamw_is_exact(tmp_path, tiny_bert_dir):
    result = run(tmp_path, tiny_bert_dir, "full")
    trainable = result["params"]["trainable"]
    breakdown = result["memory"]["breakdown"]
    assert trainable == result["params"]["total"]
    assert breakdown["gradients_bytes"] == trainable * 4  # float32
    assert breakdown["optimizer_state_bytes"] == 2 * trainable * 4  # AdamW: exp_avg and exp_avg_sq
    assert breakdown["weights_bytes"] >= trainable * 4  # plus buffers such as position ids
    assert breakdown["other_bytes"] > 0


def test_breakdown_follows_what_trains(tmp_path, tiny_bert_dir):
    result = run(tmp_path, tiny_bert_dir, "lora")
    breakdown = result["memory"]["breakdown"]
    assert breakdown["gradients_bytes"] == result["params"]["trainable"] * 4
    assert breakdown["optimizer_state_bytes"] == 2 * result["params"]["trainable"] * 4


def test_token_budget_stops_training(tmp_path, tiny_bert_dir):
    result = run(tmp_path, tiny_bert_dir, "lora", "max_tokens = 300\nepochs = 3")
    summary = result["training"]
    assert summary["budget_stop"] == "max_tokens=300"
    assert summary["tokens"] >= 300 and summary["steps"] < summary["planned_steps"]


def test_seconds_budget_stops_training(tmp_path, tiny_bert_dir):
    result = run(tmp_path, tiny_bert_dir, "lora", "max_seconds = 0.0\nepochs = 3")
    assert result["training"]["steps"] == 1 and result["training"]["budget_stop"] == "max_seconds=0"


def test_time_to_target_is_recorded_from_periodic_evaluation(tmp_path, tiny_bert_dir):
    result = run(
        tmp_path, tiny_bert_dir, "full", "eval_every_steps = 2\ntarget = 0.0\nstop_at_target = true\nepochs = 3"
    )
    summary = result["training"]
    assert summary["time_to_target"]["step"] == 2 and summary["steps"] == 2
    assert summary["time_to_target"]["train_seconds"] > 0
    assert summary["periodic_evaluation"][0]["accuracy"] == summary["time_to_target"]["value"]
    unreachable = run(tmp_path, tiny_bert_dir, "full", "eval_every_steps = 2\ntarget = 1.01", name="u")
    assert unreachable["training"]["time_to_target"] is None
    assert [e["step"] for e in unreachable["training"]["periodic_evaluation"]] == [2, 4]


@pytest.mark.parametrize("setting", ['precision = "bf16"', "gradient_checkpointing = true"])
def test_precision_and_checkpointing_run_and_are_recorded(tmp_path, tiny_bert_dir, setting):
    result = run(tmp_path, tiny_bert_dir, "full", setting)
    key, value = (part.strip() for part in setting.split("="))
    assert str(result["config"]["task"]["training"][key]).lower() == value.strip('"')
    assert result["status"] == "ok" and result["training"]["steps"] == 4


def test_target_needs_periodic_evaluation(tmp_path, tiny_bert_dir):
    from harness.config import ConfigError

    path = write_task(tmp_path, "t", tiny_bert_dir, body="\n[strategies.full.training]\ntarget = 0.9\n")
    with pytest.raises(ConfigError, match="training.target: needs eval_every_steps"):
        load_matrix([path])
