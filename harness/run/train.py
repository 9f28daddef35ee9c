"""The training loop shared by every strategy and scenario. Measurement wraps it from outside."""
from __future__ import annotations

import math

import torch

from harness.config import TrainingSpec


def planned_steps(n_rows: int, training: TrainingSpec) -> int:
    steps = training.epochs * math.ceil(n_rows / training.batch_size)
    return min(steps, training.max_steps) if training.max_steps else steps


def train(model, scenario, training: TrainingSpec, device, seed: int, step_context) -> dict:
    """AdamW with linear warm-up and decay; `step_context(batch)` wraps each optimizer step."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the strategy left no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, weight_decay=training.weight_decay)
    total = planned_steps(len(scenario.train_rows), training)
    warmup = int(training.lr_warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup)))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses: list[float] = []
    while len(losses) < total:
        for batch in scenario.train_batches(training.batch_size, generator):
            with step_context(batch):
                loss = model(**batch.on(device)).loss
                loss.backward()
                if training.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if len(losses) >= total:
                break
    model.eval()
    return {"steps": len(losses), "first_loss": losses[0], "final_loss": sum(losses[-5:]) / len(losses[-5:])}
