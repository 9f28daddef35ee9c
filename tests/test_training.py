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


def test_activations_are_the_most_bytes_saved_for_backward_in_a_step():
    import torch

    from harness.measure.breakdown import MemoryBreakdown

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    breakdown = MemoryBreakdown(model)
    with breakdown.step((3, 4)):
        model(torch.randn(3, 4)).sum().backward()
    # the first linear keeps its input (3 x 4 floats), ReLU its output (3 x 8), which the second linear
    # keeps too (one storage, counted once); the weights autograd keeps are weights, not activations
    assert breakdown.activations_bytes == (3 * 4 + 3 * 8) * 4 and breakdown.activation_shape == (3, 4)
    with breakdown.step((2, 4)):  # a smaller step: the largest stays
        model(torch.randn(2, 4)).sum().backward()
    assert breakdown.activations_bytes == 144 and breakdown.activation_shape == (3, 4)
    parts = breakdown.summary(10_000)
    assert parts["tensors_bytes"] == parts["weights_bytes"] + parts["activations_bytes"] == (32 + 8 + 16 + 2) * 4 + 144
    assert parts["other_bytes"] == 10_000 - parts["tensors_bytes"]


def test_a_training_cell_records_activations_and_its_estimate_beside_them(tmp_path, tiny_bert_dir):
    result = run(tmp_path, tiny_bert_dir, "full")
    breakdown = result["memory"]["breakdown"]
    assert breakdown["activations_bytes"] > 0
    assert breakdown["tensors_bytes"] == sum(
        breakdown[k] for k in ("weights_bytes", "gradients_bytes", "optimizer_state_bytes", "activations_bytes")
    )
    assert result["preflight"]["total_bytes"] > 0
    rows, seq_len = breakdown["activations_input_shape"]  # the step that saved the most
    assert 0 < rows <= 16 and 0 < seq_len <= result["preflight"]["input_shape"][1] <= 64
    at_shape = result["preflight"]["at_measured_shape"]
    assert at_shape["input_shape"] == [rows, seq_len] and at_shape["gradients_bytes"] == breakdown["gradients_bytes"]
