"""Harness overhead: its training loop, with every tracker a cell runs, against a plain PyTorch loop doing
the same work on the real MiniLM (full fine-tuning and LoRA, shipped sentiment data); and step throughput
per strategy on the tiny model.

The issue's target: harness tokens/s at least 0.97x the plain loop's, the median of alternating repeats.
Both loops take the same padded batches (train() runs without the scenario's prepare_training, so it does
not pack), so the ratio is the cost of the loop and its trackers alone; packing's gain is measured on
the default suite (README).
Run on a quiet machine: .venv/bin/python -m pytest benchmarks/test_overhead.py --benchmark-enable -s
"""

from __future__ import annotations

import statistics
import time
from typing import cast

import pytest
import torch

from benchmarks.real_models import scenario_for, shipped_task
from harness.config import load_matrix
from harness.data import load_rows
from harness.measure import TRACKERS, TrackerContext, phase
from harness.measure.breakdown import MemoryBreakdown
from harness.measure.throughput import Throughput
from harness.models import load_tokenizer
from harness.run.cell import measured_step, seed_everything
from harness.run.train import TrainHooks, train
from harness.scenarios import SCENARIOS
from harness.scenarios.lengths import grouped_batches
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from tests.helpers import write_task

STEPS = 24
REPEATS = 5
CPU = torch.device("cpu")


def _model(scenario, source: str, strategy: str):
    """A freshly loaded model under `strategy` (same seed every time: both loops start from equal weights)."""
    seed_everything(0)
    model, head = scenario.load_model(source)
    cls = STRATEGIES.get(strategy)
    applied = cls(cls.Options()).apply(model, ModelContext(head, scenario.peft_task_type))
    freeze_all_but(applied.model, applied, head)
    return applied.model


def harness_tokens_per_s(task, scenario, model) -> float:
    """Non-padding tokens per wall second of the harness's train(), inside a train phase with every
    registered tracker and the cell's per-step measurement (throughput, activations)."""
    trackers = [tracker(TrackerContext(CPU, lambda: None, task.training)) for tracker in TRACKERS.registered()]
    throughput = cast(Throughput, next(t for t in trackers if t.key == "throughput"))
    breakdown = MemoryBreakdown(model)
    hooks = TrainHooks(step_context=measured_step(throughput, breakdown), watch_optimizer=breakdown.watch)
    start = time.perf_counter()
    with phase(trackers, "train"):
        train(model, scenario, task.training, CPU, 0, hooks)
    seconds = time.perf_counter() - start
    return sum(r.tokens for r in throughput.steps("train")) / seconds


def plain_tokens_per_s(task, scenario, model) -> float:
    """The same batches written as a plain loop: tokenise, forward, backward, clip, step, schedule."""
    training = task.training
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(scenario.train_rows), generator=generator).tolist()  # as train() draws them
    if training.group_by_length:
        batches = grouped_batches(order, scenario.row_lengths(scenario.train_rows), training.batch_size, generator)
    else:
        batches = [order[i : i + training.batch_size] for i in range(0, len(order), training.batch_size)]
    batches = batches[:STEPS]
    labels = {label: i for i, label in enumerate(scenario.labels)}
    model.train()
    tokens = 0
    start = time.perf_counter()
    for indices in batches:
        rows = [scenario.train_rows[i] for i in indices]
        encoded = scenario.tokenizer(
            [str(r["text"]) for r in rows],
            truncation=True,
            max_length=task.model.max_length,
            padding=True,
            return_tensors="pt",
        )
        encoded["labels"] = torch.tensor([labels[str(r["label"])] for r in rows])
        loss = model(**encoded).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        tokens += int(encoded["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_harness_loop_against_plain_loop_on_minilm(tmp_path, strategy):
    """Median over alternating repeats of harness / plain tokens per second on the real MiniLM."""
    task = shipped_task(tmp_path, "sentiment", f"\n[profiles.default.training]\nmax_steps = {STEPS}\n", strategy)
    scenario, source = scenario_for(task)
    ratios = []
    for _ in range(REPEATS):
        harness = harness_tokens_per_s(task, scenario, _model(scenario, source, strategy))
        plain = plain_tokens_per_s(task, scenario, _model(scenario, source, strategy))
        ratios.append(harness / plain)
    ratio = statistics.median(ratios)
    print(
        f"\n{strategy}: harness/plain training tokens/s on MiniLM: median {ratio:.3f} over {REPEATS} repeats "
        f"of {STEPS} steps ({', '.join(f'{r:.3f}' for r in ratios)})"
    )
    assert ratio >= 0.97


def _tiny(tmp_path, model_dir, strategy: str):
    path = write_task(tmp_path, "bench", model_dir, body=f"\n[strategies.{strategy}.training]\nmax_steps = 16\n")
    task = load_matrix([path], strategies=(strategy,)).cells[0].task
    train_rows, eval_rows = load_rows(task, ("text", "label"))
    scenario = SCENARIOS.get("classification").create(
        task, load_tokenizer(str(model_dir)), "encoder", train_rows * 4, eval_rows
    )
    return task, scenario, _model(scenario, str(model_dir), strategy)


@pytest.mark.parametrize("strategy", ["full", "frozen-lower", "adapter", "lora"])
def test_step_throughput_per_strategy(benchmark, tmp_path, tiny_bert_dir, strategy):
    task, scenario, model = _tiny(tmp_path, tiny_bert_dir, strategy)
    batch = next(scenario.train_batches(task.training.batch_size, torch.Generator().manual_seed(0)))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()

    def step() -> None:
        model(**batch.inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    benchmark.pedantic(step, rounds=20, warmup_rounds=3)
    benchmark.extra_info["tokens_per_step"] = batch.n_tokens
    benchmark.extra_info["tokens_per_s"] = batch.n_tokens / benchmark.stats.stats.median
