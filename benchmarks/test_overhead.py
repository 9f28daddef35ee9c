"""Harness overhead: its training loop against a plain PyTorch loop doing the same work, and step
throughput per strategy.

Run: .venv/bin/python -m pytest benchmarks --benchmark-enable -s
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from harness.config import load_matrix
from harness.data import load_rows
from harness.measure.throughput import ThroughputTracker
from harness.models import load_tokenizer
from harness.run.train import TrainHooks, train
from harness.scenarios import SCENARIOS
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from tests.helpers import write_task

STEPS = 16  # one epoch of the 256 rows below at batch 16
REPEATS = 5


def _setup(tmp_path, model_dir, strategy: str):
    """A scenario with the shipped sentiment data and a freshly built model under `strategy`."""
    path = write_task(tmp_path, "bench", model_dir, body=f"\n[strategies.{strategy}.training]\nmax_steps = {STEPS}\n")
    task = load_matrix([path], strategies=(strategy,)).cells[0].task
    tokenizer = load_tokenizer(str(model_dir))
    train_rows, eval_rows = load_rows(task, ("text", "label"))
    scenario = SCENARIOS.get("classification").create(task, tokenizer, "encoder", train_rows * 4, eval_rows)
    torch.manual_seed(0)
    model, head = scenario.load_model(str(model_dir))
    cls = STRATEGIES.get(strategy)
    applied = cls(cls.Options()).apply(model, ModelContext(head, "SEQ_CLS"))
    freeze_all_but(applied.model, applied, head)
    return task, scenario, applied.model


def harness_tokens_per_s(task, scenario, model) -> float:
    """Wall-clock tokens/s of the harness loop, batch building included, trackers attached."""
    tracker = ThroughputTracker(0)
    hooks = TrainHooks(step_context=lambda b: tracker.step(b.n_samples, b.n_tokens))
    start = time.perf_counter()
    train(model, scenario, task.training, torch.device("cpu"), 0, hooks)
    return sum(r.tokens for r in tracker.steps) / (time.perf_counter() - start)


def plain_tokens_per_s(task, scenario, model) -> float:
    """The same work written as a plain loop: tokenise, forward, backward, clip, step, schedule."""
    training = task.training
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    order = torch.randperm(len(scenario.train_rows), generator=torch.Generator().manual_seed(0)).tolist()
    labels = {label: i for i, label in enumerate(scenario.labels)}
    model.train()
    tokens = 0
    start = time.perf_counter()
    for step in range(STEPS):
        rows = [scenario.train_rows[i] for i in order[step * training.batch_size : (step + 1) * training.batch_size]]
        encoded = scenario.tokenizer(
            [r["text"] for r in rows],
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


def test_harness_overhead_against_plain_loop(tmp_path, tiny_bert_dir):
    """Median over alternating repeats of harness / plain tokens per second; at least 0.95."""
    ratios = []
    for _ in range(REPEATS):
        harness = harness_tokens_per_s(*_setup(tmp_path, tiny_bert_dir, "full"))
        plain = plain_tokens_per_s(*_setup(tmp_path, tiny_bert_dir, "full"))
        ratios.append(harness / plain)
    ratio = statistics.median(ratios)
    print(
        f"\nharness/plain training throughput: median {ratio:.3f} over {REPEATS} repeats "
        f"(each {STEPS} steps): {', '.join(f'{r:.3f}' for r in ratios)}"
    )
    assert ratio >= 0.95


@pytest.mark.parametrize("strategy", ["full", "frozen-lower", "adapter", "lora"])
def test_step_throughput_per_strategy(benchmark, tmp_path, tiny_bert_dir, strategy):
    task, scenario, model = _setup(tmp_path, tiny_bert_dir, strategy)
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
