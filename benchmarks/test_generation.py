"""Generation: the harness's evaluation path (length-sorted, left-padded, KV-cached batches, each batch
measured by the throughput tracker) against a plain `model.generate` loop over the same prompts in file
order, on the real SmolLM2-135M (the shipped summarization task's evaluation prompts, greedy).

Both count new tokens up to and including each row's end token. The issue's target: harness tokens/s at
least 0.95x the plain loop's, the median of alternating repeats.
Run on a quiet machine: .venv/bin/python -m pytest benchmarks/test_generation.py -s
"""

from __future__ import annotations

import statistics
import time

import torch

from benchmarks.real_models import scenario_for, shipped_task
from harness.measure.throughput import ThroughputTracker

REPEATS = 3


def harness_tokens_per_s(scenario, model) -> float:
    tracker = ThroughputTracker(0)
    start = time.perf_counter()
    on_batch = lambda batch: tracker.step(batch.n_samples, batch.n_tokens, batch.slots)  # noqa: E731  as a cell does
    scenario.generate(model, scenario.task.training.eval_batch_size, torch.device("cpu"), on_batch)
    seconds = time.perf_counter() - start
    return sum(r.tokens for r in tracker.steps) / seconds


def plain_tokens_per_s(scenario, model) -> float:
    """Batches of prompts in file order, tokenised left-padded, through `model.generate`."""
    tok, spec = scenario.tokenizer, scenario.task.generation
    size = scenario.task.training.eval_batch_size
    prompts = [scenario.prompt(r) for r in scenario.eval_rows]
    tok.padding_side = tok.truncation_side = "left"  # as the harness: a long prompt keeps its end
    tokens = 0
    start = time.perf_counter()
    for first in range(0, len(prompts), size):
        encoded = tok(
            prompts[first : first + size],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=scenario.task.model.max_length,
            add_special_tokens=False,  # the chat template wrote them
        )
        with torch.no_grad():
            generated = model.generate(
                **encoded,
                max_new_tokens=spec.max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        for row in generated[:, encoded["input_ids"].shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in (tok.eos_token_id, tok.pad_token_id)]
            tokens += ends[0] + 1 if ends else len(row)
    seconds = time.perf_counter() - start
    tok.padding_side = tok.truncation_side = "right"
    return tokens / seconds


def test_generation_against_plain_generate_on_smollm2(tmp_path):
    task = shipped_task(tmp_path, "summarization", strategy="none")
    scenario, source = scenario_for(task)
    model, _ = scenario.load_model(source)
    model.eval()
    ratios = []
    for _ in range(REPEATS):
        ratios.append(harness_tokens_per_s(scenario, model) / plain_tokens_per_s(scenario, model))
    ratio = statistics.median(ratios)
    print(
        f"\nharness/plain generation tokens/s on SmolLM2-135M ({len(scenario.eval_rows)} prompts, batch "
        f"{task.training.eval_batch_size}): median {ratio:.3f} over {REPEATS} repeats "
        f"({', '.join(f'{r:.3f}' for r in ratios)})"
    )
    assert ratio >= 0.95
