"""A LoRA adapter saved by a run loads with peft on its base model and is evaluated by lm-eval,
in process and through lm-eval's own command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.config import LmEvalSpec, load_matrix
from harness.metrics.lm_eval_bridge import evaluate_in_process
from harness.run.cell import run_cell
from tests.helpers import ROOT
from tests.test_scenarios import write_scenario_task

LM_EVAL_TASKS = ROOT / "tasks" / "lm_eval"


@pytest.fixture(scope="module")
def saved_lora(tmp_path_factory, tiny_llama_dir):
    folder = tmp_path_factory.mktemp("lora-run")
    path = write_scenario_task(folder, "qa-generative", tiny_llama_dir)
    path.write_text(path.read_text().replace("save_weights = false", "save_weights = true"))
    cell = load_matrix([path], strategies=("lora",)).cells[0]
    result = run_cell(cell, folder / cell.cell_id)
    return folder / cell.cell_id / result["weights"]["path"]


def test_saved_adapter_loads_with_peft_and_runs_lm_eval_in_process(saved_lora, tiny_llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model = PeftModel.from_pretrained(base, saved_lora)
    assert any("lora_A" in name for name, _ in model.named_parameters())
    spec = LmEvalSpec(tasks=("tunebench_openqa",), include_path="lm_eval", limit=4, batch_size=4)
    scores = evaluate_in_process(model, AutoTokenizer.from_pretrained(tiny_llama_dir), "causal", spec, ROOT / "tasks")
    assert set(scores) == {"lm_eval.tunebench_openqa.perplexity", "lm_eval.tunebench_openqa.acc"}
    assert scores["lm_eval.tunebench_openqa.perplexity"] > 1


def test_saved_adapter_runs_through_lm_eval_command_line(saved_lora, tiny_llama_dir, tmp_path):
    command = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_llama_dir},peft={saved_lora},tokenizer={tiny_llama_dir}",
        "--tasks",
        "tunebench_openqa",
        "--include_path",
        str(LM_EVAL_TASKS),
        "--limit",
        "4",
        "--device",
        "cpu",
        "--batch_size",
        "4",
        "--output_path",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(
        command,
        cwd=LM_EVAL_TASKS,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tunebench_openqa" in done.stdout and "perplexity" in done.stdout
