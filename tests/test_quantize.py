"""Memory-saving strategies on a tiny random Llama, on CPU through the real bitsandbytes and peft code: a 4-bit
NF4 or 8-bit base under LoRA and adapters, 8-bit AdamW and GaLore state, their memory as measured and as
estimated before the run, a suite's named variants, and `recommend --max-memory` naming the saving."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
import torch

import harness
from harness.config import ConfigError, load_matrix
from harness.measure.breakdown import weights_by_storage
from harness.measure.preflight import optimizer_bytes, weight_bytes
from harness.report.recommend import Constraints, recommend
from harness.results.io import write_result
from harness.run.cell import _save_weights, run_cell
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from tests.helpers import save_tiny_llama
from tests.report_fixtures import GiB, cell_result
from tests.test_scenarios import write_scenario_task

pytest.importorskip("bitsandbytes", reason="the quantize extra (installed by the README's test set-up)")
pytest.importorskip("galore_torch", reason="the quantize extra (installed by the README's test set-up)")

CPU = torch.device("cpu")
VARIANTS = """
[strategies.qlora]
type = "lora"
quantize = "nf4"
r = 4

[strategies.lora-int8]
type = "lora"
quantize = "int8"
r = 4

[strategies.adapter-nf4]
type = "adapter"
quantize = "nf4"
bottleneck = 8

[strategies.full-adamw8bit]
type = "full"
[strategies.full-adamw8bit.training]
optimizer = "adamw8bit"

[strategies.full-galore]
type = "full"
[strategies.full-galore.training]
optimizer = "galore_adamw"
galore_rank = 8
"""


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    """The conftest's tiny Llama at width 64: bitsandbytes' CPU 4-bit kernel needs inputs of at least one
    quantisation block (64 weights)."""
    return save_tiny_llama(tmp_path_factory.mktemp("llama64"), hidden=64)


def quantized_lora(model_dir, scheme: str = "nf4"):
    """A tiny Llama loaded through the lora strategy with a quantised base, LoRA applied, one step trained."""
    from transformers import AutoModelForCausalLM

    lora = STRATEGIES.get("lora")
    strategy = lora(lora.Options(r=4, quantize=scheme))
    model = AutoModelForCausalLM.from_pretrained(model_dir, **strategy.load_options(CPU))
    applied = strategy.apply(model, ModelContext((), "CAUSAL_LM"))
    freeze_all_but(applied.model, applied, ())
    return strategy, applied.model


def test_an_nf4_base_loads_trains_a_step_and_its_saved_adapter_reloads_onto_a_fresh_quantised_base(tmp_path, llama_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    strategy, model = quantized_lora(llama_dir)
    storage = weights_by_storage(model)
    assert storage["nf4"] > 0 and storage["quant_constants"] > 0  # the blocks' projections, packed
    base = model.get_base_model()
    assert type(base.model.layers[0].self_attn.q_proj.base_layer).__name__ == "Linear4bit"
    assert base.lm_head.weight.dtype == torch.float32  # the head stays in floating point
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    packed = base.model.layers[0].self_attn.q_proj.base_layer.weight.detach().clone()
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)
    assert torch.equal(packed, base.model.layers[0].self_attn.q_proj.base_layer.weight)  # the base is frozen

    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    saved = _save_weights(model, tmp_path / "weights")
    assert saved["format"] == "peft"
    fresh = AutoModelForCausalLM.from_pretrained(llama_dir, **strategy.load_options(CPU))
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "weights").eval()
    with torch.no_grad():
        got = reloaded(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-3), (got - expected).abs().max()


def test_an_int8_base_stores_its_projections_in_8_bits_and_trains(llama_dir):
    _, model = quantized_lora(llama_dir, "int8")
    storage = weights_by_storage(model)
    import bitsandbytes as bnb

    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, bnb.nn.Linear8bitLt))
    assert storage["int8"] == linear  # one byte per weight
    ids = torch.tensor([[5, 6, 7, 8]])
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_memory_variants_run_as_cells_and_record_what_they_store(tmp_path, llama_dir):
    task = write_scenario_task(tmp_path, "creative", llama_dir)
    task.write_text(task.read_text() + VARIANTS)
    run_dir = tmp_path / "run"
    names = ("full", "lora", "qlora", "lora-int8", "adapter-nf4", "full-adamw8bit", "full-galore")
    for cell in load_matrix([task], strategies=names).cells:
        write_result(run_dir, run_cell(cell, run_dir / "cells" / cell.cell_id))
    results = {r["strategy"]: r for r in harness.results.read_results(run_dir)}
    assert all(r["status"] == "ok" for r in results.values())
    storage = {name: r["memory"]["breakdown"]["weights_by_storage"] for name, r in results.items()}
    assert set(storage["full"]) == {"float32"}
    assert storage["qlora"]["nf4"] > 0 and storage["adapter-nf4"]["nf4"] > 0 and storage["lora-int8"]["int8"] > 0
    # the same logical parameter count whatever the storage (4-bit tensors count weights, not bytes)
    frozen = {n: r["params"]["total"] - r["params"]["trainable"] for n, r in results.items() if "lora" in n}
    assert frozen["qlora"] == frozen["lora-int8"] == frozen["lora"]

    state = {name: r["memory"]["breakdown"]["optimizer_state_bytes"] for name, r in results.items()}
    trainable = results["full"]["params"]["trainable"]
    assert state["full"] == 8 * trainable  # two fp32 moments
    assert state["full-adamw8bit"] < 0.3 * state["full"]
    assert state["full-galore"] < state["full"]
    assert results["full-galore"]["training"]["optimizer"]["name"] == "galore_adamw"
    assert results["full-galore"]["training"]["optimizer"]["rank"] == 8
    assert results["full-adamw8bit"]["training"]["optimizer"] == {"name": "adamw8bit"}

    # measured state equals the pre-flight formula exactly: the formula counts what the optimizers store
    for name in ("full", "full-adamw8bit", "full-galore"):
        assert results[name]["preflight"]["optimizer_bytes"] == state[name], name
    for name in ("qlora", "lora-int8", "full"):  # weights: within 2% (scales per row and code books aside)
        measured = results[name]["memory"]["breakdown"]["weights_bytes"]
        assert results[name]["preflight"]["weights_bytes"] == pytest.approx(measured, rel=0.02), name

    # FLOPs count a 4-bit base's matmuls as float ones (its packed tensors hold two weights a byte), and
    # its MFU says that it is not comparable
    efficiency = {name: r["efficiency"] for name, r in results.items()}
    assert efficiency["qlora"]["flops_per_token"] == efficiency["lora-int8"]["flops_per_token"]  # both r = 4
    assert efficiency["qlora"]["mfu_note"].startswith("quantised base") and efficiency["full"]["mfu_note"] is None

    cells = harness.load_results(run_dir).set_index("strategy")
    assert cells.loc["qlora", "memory_saving"] == "4-bit NF4 base"
    assert cells.loc["lora-int8", "memory_saving"] == "8-bit base"
    assert cells.loc["full-adamw8bit", "memory_saving"] == "8-bit AdamW state"
    assert cells.loc["full-galore", "memory_saving"] == "GaLore-projected optimizer state (rank 8)"
    assert pd.isna(cells.loc["full", "memory_saving"])
    assert cells.loc["qlora", "weight_memory_bytes"] < cells.loc["lora", "weight_memory_bytes"]
    assert cells.loc["full-adamw8bit", "optimizer_state_bytes"] == state["full-adamw8bit"]


def test_preflight_weight_and_state_formulas_by_hand():
    # 1,000,000 parameters, 640,000 of them in NF4 blocks of 64 with double quantisation (an 8-bit scale per
    # block, an fp32 scale per 256 blocks): 4 x 360,000 + 320,000 + 10,000 x (1 + 4 / 256)
    assert weight_bytes(1_000_000, 640_000, "nf4", True) == 1_440_000 + 320_000 + 10_156
    assert weight_bytes(1_000_000, 640_000, "nf4", False) == 1_440_000 + 320_000 + 40_000  # fp32 scales
    assert weight_bytes(1_000_000, 640_000, "int8") == 1_440_000 + 640_000
    assert weight_bytes(1_000_000) == 4_000_000
    assert optimizer_bytes(1000) == 8000
    # 8-bit AdamW: a 5,120-element tensor at 2 bytes plus two fp32 scales per block of 256, a 100-element one
    # in fp32 (under bitsandbytes' 4,096 minimum), and the two 256-entry code books once
    assert optimizer_bytes(5220, "adamw8bit", (5120, 100)) == 10_240 + 160 + 800 + 2048
    # GaLore, rank 8 on a 64 x 32 matrix: moments 2 x 64 x 8, projection 8 x 32 (fp32); 100 others in AdamW
    assert optimizer_bytes(2148, "galore_adamw", projected=((64, 32),), rank=8) == 4 * (1024 + 256) + 800
    assert optimizer_bytes(2148, "galore_adamw", projected=((64, 32),), rank=99) == 4 * (2 * 64 * 32 + 32 * 32) + 800


def test_a_missing_quantize_extra_is_one_line_naming_the_file_key_and_extra(tmp_path, llama_dir, monkeypatch):
    task = write_scenario_task(tmp_path, "creative", llama_dir)
    task.write_text(task.read_text() + VARIANTS)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(ConfigError) as raised:
        load_matrix([task], strategies=("qlora", "full-adamw8bit"))
    text = str(raised.value)
    assert f"{task}" in text and "strategies.qlora.quantize: quantize = 'nf4' needs the bitsandbytes package" in text
    assert "training.optimizer: optimizer = 'adamw8bit' needs the bitsandbytes package" in text
    assert "pip install 'tunebench[quantize]'" in text


def test_quantise_options_at_their_defaults_keep_the_cell_ids_results_already_have(tmp_path, llama_dir):
    task = write_scenario_task(tmp_path, "creative", llama_dir)
    plain = {c.strategy: c for c in load_matrix([task], strategies=("lora", "full")).cells}
    task.write_text(
        task.read_text()
        + '\n[strategies.lora]\nquantize = "none"\ndouble_quant = true\n'
        + '\n[strategies.full.training]\noptimizer = "adamw"\ngalore_rank = 128\n'
    )
    spelled = {c.strategy: c for c in load_matrix([task], strategies=("lora", "full")).cells}
    assert {s: c.cell_id for s, c in plain.items()} == {s: c.cell_id for s, c in spelled.items()}
    task.write_text(task.read_text().replace('quantize = "none"', 'quantize = "nf4"'))
    assert load_matrix([task], strategies=("lora",)).cells[0].cell_id != plain["lora"].cell_id


def test_a_suite_gives_its_named_variants_to_every_task_and_checks_them_against_its_own_file(tmp_path, llama_dir):
    first = write_scenario_task(tmp_path, "creative", llama_dir)
    second = tmp_path / "other.toml"
    second.write_text(first.read_text().replace('name = "creative"', 'name = "other"'))
    suite = tmp_path / "suite.toml"
    body = f'[suite]\nname = "memory"\ntasks = ["{first.name}", "{second.name}"]\nstrategies = ["lora", "qlora"]\n'
    suite.write_text(body + VARIANTS)
    cells = load_matrix([suite]).cells
    assert sorted((c.task.name, c.strategy) for c in cells) == [
        ("creative", "lora"),
        ("creative", "qlora"),
        ("other", "lora"),
        ("other", "qlora"),
    ]
    assert all(c.options.quantize == "nf4" and c.strategy_type == "lora" for c in cells if c.strategy == "qlora")
    suite.write_text(body + '\n[strategies.qlora]\ntype = "lora"\nquantize = "nf3"\n')
    with pytest.raises(ConfigError, match=rf"{suite}.*strategies\.qlora\.quantize"):
        load_matrix([suite])
    suite.write_text(body + "\n[strategies.qlora]\nr = 4\n")
    with pytest.raises(ConfigError, match=r"strategies\.qlora\.type: a suite defines named variants only"):
        load_matrix([suite])


def test_recommend_picks_the_only_row_under_the_memory_limit_and_names_its_saving(tmp_path):
    for strategy, value, memory, saving in (
        ("full", 0.80, 2.0 * GiB, None),
        ("lora", 0.78, 1.0 * GiB, None),
        ("qlora", 0.77, 400 * 2**20, "nf4"),
    ):
        result = cell_result("chat", strategy, 0, value, memory=memory, tokens_per_s=900.0)
        if saving:
            result["config"]["options"] = {"quantize": saving}
            result["config"]["strategy_type"] = "lora"
        write_result(tmp_path, result)
    pick = recommend(harness.load_aggregates(tmp_path), Constraints(max_memory_bytes=512 * 2**20))[0]
    assert pick.strategy == "qlora", pick.reason
    assert "through its 4-bit NF4 base (peak 400 MiB); full and lora exceed it" in pick.reason
    unconstrained = recommend(harness.load_aggregates(tmp_path), Constraints())[0]
    assert "through its" not in unconstrained.reason
    assert json.dumps(pick.excluded)  # what was excluded, and why, stays plain data
