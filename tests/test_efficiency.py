"""Throughput that measures the method: padding efficiency, contention flags, FLOPs per token and MFU."""

from __future__ import annotations

import pytest
import torch

from harness.measure import contention as contention_module
from harness.measure.contention import Contention
from harness.measure.flops import device_peak, flops_per_token
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from tests.helpers import TINY


def _tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=500, max_position_embeddings=64, num_labels=2, **TINY))


def _apply(model, strategy: str, **options):
    cls = STRATEGIES.get(strategy)
    applied = cls(cls.Options(**options)).apply(model, ModelContext(("classifier",), "SEQ_CLS"))
    freeze_all_but(applied.model, applied, ("classifier",))
    return applied.model


def _matmuls(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.dim() >= 2)


def test_full_fine_tuning_costs_six_n_plus_the_attention_term():
    model = _apply(_tiny_bert(), "full")
    blocks = sum(_matmuls(layer) for layer in model.bert.encoder.layer)
    head = model.classifier.weight.numel() + model.bert.pooler.dense.weight.numel()
    n, seq, hidden, layers = blocks + head, 20.0, TINY["hidden_size"], TINY["num_hidden_layers"]
    record = flops_per_token(model, seq)
    assert record["flops_per_token"] == pytest.approx(6 * n + 12 * layers * seq * hidden)
    assert record["lowest_trained_block"] == 0
    once_per_row = flops_per_token(model, seq, head_share=1 / seq)  # the head reads one position of 20
    assert once_per_row["flops_per_token"] == pytest.approx(6 * (blocks + head / seq) + 12 * layers * seq * hidden)


def test_frozen_lower_blocks_need_no_backward_and_lora_backprops_everywhere():
    seq, hidden = 20.0, TINY["hidden_size"]
    frozen = _apply(_tiny_bert(), "frozen-lower", layers=2)
    layers = list(frozen.bert.encoder.layer)
    head = frozen.classifier.weight.numel() + frozen.bert.pooler.dense.weight.numel()
    upper = sum(_matmuls(layer) for layer in layers[2:]) + head
    all_blocks = sum(_matmuls(layer) for layer in layers) + head
    record = flops_per_token(frozen, seq)
    assert record["lowest_trained_block"] == 2
    assert record["backward_activations"] == pytest.approx(2 * upper + 2 * 2 * 4 * seq * hidden)
    assert record["backward_weights"] == 2 * upper
    assert record["forward"] == pytest.approx(2 * all_blocks + 4 * 4 * seq * hidden)
    lora = _apply(_tiny_bert(), "lora", r=4)
    record = flops_per_token(lora, seq)
    trainable = sum(
        p.numel() for n, p in lora.named_parameters() if p.requires_grad and p.dim() >= 2 and "embeddings" not in n
    )
    assert record["lowest_trained_block"] == 0 and record["backward_weights"] == 2 * trainable
    assert record["backward_activations"] > 2 * upper  # through every block, down to the lowest adapter


def test_the_cpu_peak_is_measured_and_an_override_wins(monkeypatch):
    peak, source = device_peak(torch.device("cpu"), "fp32")
    assert peak > 1e8 and source.startswith("measured: 1024x1024 fp32 GEMM")
    monkeypatch.setenv("TUNEBENCH_PEAK_FLOPS", "1e12")
    assert device_peak(torch.device("cpu"), "fp32") == (1e12, "TUNEBENCH_PEAK_FLOPS")


def test_a_phase_is_marked_contended_when_other_processes_use_the_cpu(monkeypatch):
    busy = iter([100.0, 100.0 + 0.9 * 4])  # the machine's busy CPU seconds before and after the phase
    monkeypatch.setattr(contention_module, "_busy_seconds", lambda: next(busy))
    clock = iter([10.0, 11.0])  # one second of wall time
    monkeypatch.setattr(contention_module.time, "perf_counter", lambda: next(clock))
    tracker = Contention(None, cpus=4)
    monkeypatch.setattr(tracker, "_own_seconds", iter([5.0, 5.5]).__next__)  # the cell used 0.5 s of CPU
    with tracker.phase("train"):
        pass
    summary = tracker.summary()
    assert summary["phases"]["train"]["other_cpu_share"] == pytest.approx((3.6 - 0.5) / 4)
    assert summary["contended"] is True and summary["contended_phases"] == ["train"]


def test_a_quiet_phase_is_not_contended(monkeypatch):
    busy = iter([100.0, 100.5])
    monkeypatch.setattr(contention_module, "_busy_seconds", lambda: next(busy))
    clock = iter([10.0, 11.0])
    monkeypatch.setattr(contention_module.time, "perf_counter", lambda: next(clock))
    tracker = Contention(None, cpus=2)
    monkeypatch.setattr(tracker, "_own_seconds", iter([5.0, 5.5]).__next__)
    with tracker.phase("eval"):
        pass
    summary = tracker.summary()
    assert summary["contended"] is False and summary["too_short_to_judge"] == []


def test_a_phase_too_short_for_the_cpu_counters_is_recorded_but_not_judged(monkeypatch):
    busy = iter([100.0, 100.06])  # 6 ticks of 10 ms: 30% of a 0.1 s phase on 2 CPUs, but rounding-sized
    monkeypatch.setattr(contention_module, "_busy_seconds", lambda: next(busy))
    clock = iter([10.0, 10.1])
    monkeypatch.setattr(contention_module.time, "perf_counter", lambda: next(clock))
    tracker = Contention(None, cpus=2)
    monkeypatch.setattr(tracker, "_own_seconds", iter([5.0, 5.0]).__next__)
    with tracker.phase("eval"):
        pass
    summary = tracker.summary()
    assert summary["phases"]["eval"]["other_cpu_share"] == pytest.approx(0.3)
    assert summary["contended"] is False and summary["too_short_to_judge"] == ["eval"]


def test_contended_cells_are_flagged_in_the_tables_and_the_report(tmp_path):
    import harness
    from harness.report.html import render_html
    from harness.results.io import write_result
    from tests.report_fixtures import GiB, cell_result

    quiet = cell_result("t", "full", 0, 0.9, memory=GiB, tokens_per_s=100.0, contention={"contended": False})
    busy = cell_result("t", "lora", 0, 0.8, memory=GiB, tokens_per_s=50.0, contention={"contended": True})
    for result in (quiet, busy):
        write_result(tmp_path, result)
    cells = harness.load_results(tmp_path).set_index("strategy")
    assert cells.loc["lora", "contended"] is True or cells.loc["lora", "contended"] == True  # noqa: E712
    assert not cells.loc["full", "contended"]
    html = render_html(tmp_path)
    assert "Throughput measured under contention" in html and "lora (seed 0)" in html


def test_a_cell_records_padding_efficiency_contention_and_mfu(tmp_path, tiny_bert_dir, monkeypatch):
    import harness
    from harness.config import load_matrix
    from harness.results.io import read_results
    from harness.run.executor import run_one
    from tests.helpers import ROOT, write_task

    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    matrix = load_matrix([write_task(tmp_path, "efficient", tiny_bert_dir)], strategies=("full",))
    assert run_one(matrix.cells[0], tmp_path / "run", matrix) == "ok"
    (result,) = read_results(tmp_path / "run")
    for phase in ("train", "eval"):
        assert 0 < result["throughput"][f"{phase}_padding_efficiency"] <= 1
        assert result["contention"]["phases"][phase]["wall_seconds"] > 0
    assert result["training"]["precision"] == "fp32" and result["training"]["fused_optimizer"] is False  # auto, CPU
    assert result["training"]["packed"] is True  # classification on an encoder packs its training batches
    efficiency = result["efficiency"]
    assert efficiency["peak_source"].startswith("measured") and efficiency["flops_per_token"] > 0
    expected = efficiency["flops_per_token"] * result["throughput"]["train_tokens_per_s"]
    assert efficiency["train_mfu_percent"] == pytest.approx(100 * expected / efficiency["peak_flops_per_s"])
    row = harness.load_results(tmp_path / "run").iloc[0]
    assert row["train_mfu"] == pytest.approx(efficiency["train_mfu_percent"])
    assert row["contended"] == result["contention"]["contended"]  # the table carries the cell's own mark


def test_auto_precision_is_bf16_only_where_the_device_supports_it():
    from harness.run.train import resolved_precision

    assert resolved_precision("auto", torch.device("cpu")) == "fp32"
    assert resolved_precision("fp16", torch.device("cpu")) == "fp16"  # an explicit choice stands


def test_exclusive_refuses_a_busy_machine_and_waits_for_a_quiet_one(tmp_path, tiny_bert_dir, monkeypatch, capsys):
    from harness.cli import main
    from tests.helpers import write_task

    task = write_task(tmp_path, "exclusive", tiny_bert_dir)
    monkeypatch.setattr(contention_module, "others_share", lambda seconds=2.0: 0.6)
    monkeypatch.setattr(contention_module.wait_for_quiet, "__defaults__", (contention_module.others_share,))
    assert main(["run", str(task), "--exclusive", "--out", str(tmp_path / "run")]) == 2
    assert "--exclusive: other processes use 60% of the CPU" in capsys.readouterr().err
    shares = iter([0.6, 0.05])
    assert contention_module.wait_for_quiet(5.0, lambda: next(shares)) is None  # quiet on the second look


def test_the_cpu_peak_is_the_best_of_its_rounds(monkeypatch):
    import harness.measure.flops as flops

    rates = iter([1.9e11, 1.5e11, 1.95e11])  # the second round slowed, as by a frequency dip
    monkeypatch.setattr(flops, "_gemm_rate", lambda a, b, seconds: next(rates))
    assert flops.measured_cpu_peak(0.03, rounds=3) == 1.95e11


@pytest.mark.parametrize("readings", [(7.0e10, 1.8e11), (1.8e11, 7.0e10)])
def test_a_cell_divides_by_the_higher_of_its_two_peak_readings(tmp_path, tiny_bert_dir, monkeypatch, readings):
    """One reading before loading, one after training: a dipped reading must not inflate the MFU."""
    import harness.measure.flops as flops
    from harness.config import load_matrix
    from harness.run.cell import run_cell
    from tests.helpers import write_task

    monkeypatch.delenv("TUNEBENCH_PEAK_FLOPS", raising=False)
    taken = iter(readings)
    monkeypatch.setattr(flops, "measured_cpu_peak", lambda: next(taken))
    matrix = load_matrix([write_task(tmp_path, "peaks", tiny_bert_dir)], strategies=("full",))
    efficiency = run_cell(matrix.cells[0], tmp_path / "cell")["efficiency"]
    assert efficiency["peak_flops_per_s"] == 1.8e11 and next(taken, None) is None  # both readings taken
    assert flops.higher_peak(None, (None, "no peak known")) == (None, "no peak known")
    assert flops.higher_peak(None, None) is None


def test_measuring_the_peak_leaves_the_seeded_random_stream_alone():
    from harness.measure.flops import measured_cpu_peak

    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    measured_cpu_peak(0.01)
    assert torch.equal(torch.rand(4), expected)  # the cell's initialisations do not depend on the benchmark


def test_a_cpu_hog_beside_a_cell_gets_it_the_contention_mark(tmp_path, tiny_bert_dir):
    """Real processes, no mocks: the cell beside busy loops on every core. Alone it gets no mark: that needs a
    quiet machine, so it is checked in benchmarks/test_contention.py, and by injected counters above."""
    import os
    import subprocess
    import sys
    import time

    from harness.config import load_matrix
    from harness.run.cell import run_cell
    from tests.helpers import write_task

    body = "\n[profiles.default.training]\nepochs = 4\n"  # a train phase of a few seconds
    cell = load_matrix([write_task(tmp_path, "hogged", tiny_bert_dir, body=body)], strategies=("full",)).cells[0]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)  # the loops are spinning
        beside = run_cell(cell, tmp_path / "beside")["contention"]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert beside["contended"] is True and "train" in beside["contended_phases"]
    assert beside["phases"]["train"]["other_cpu_share"] > 0.3  # the loops get about half the CPU beside it
