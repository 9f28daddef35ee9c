"""The training loop shared by every strategy and scenario. Measurement and budgets hook in from outside."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from harness.specs import TrainingSpec

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolved_precision(precision: str, device) -> str:
    """`auto` is bf16 on a CUDA device that supports it, fp32 elsewhere (CPU autocast is slower than fp32)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def device_defaults(device) -> None:
    """GPU-ready defaults: TF32 matmuls and convolutions on CUDA (fp32 storage, faster tensor-core math)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


@dataclass
class TrainHooks:
    """How the cell watches training without living inside the loop."""

    step_context: Callable[..., contextlib.AbstractContextManager] = lambda batch: (
        contextlib.nullcontext()
    )  # wraps each step
    watch_optimizer: Callable[[torch.optim.Optimizer], None] = lambda optimizer: None  # e.g. memory breakdown
    after_step: Callable[[int, object], bool] = lambda step, batch: False  # True stops training (budgets, targets)
    losses: list[float] = field(default_factory=list)


def planned_steps(n_rows: int, training: TrainingSpec) -> int:
    steps = training.epochs * math.ceil(n_rows / training.batch_size)
    return min(steps, training.max_steps) if training.max_steps else steps


def train(model, scenario, training: TrainingSpec, device, seed: int, hooks: TrainHooks) -> dict:
    """The task's optimizer (AdamW unless it says otherwise) with linear LR warm-up and decay over the
    planned steps; a budget may stop it earlier."""
    from harness.run.optimizers import build_optimizer

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the strategy left no trainable parameters")
    optimizer, optimizer_record = build_optimizer(model, params, training, device)
    precision = resolved_precision(training.precision, device)
    hooks.watch_optimizer(optimizer)
    total = planned_steps(len(scenario.train_rows), training)
    warmup = int(training.lr_warmup_ratio * total)
    # Linear warm-up and decay, as transformers' get_linear_schedule_with_warmup, except that the first
    # step already trains: that schedule gives step 0 a learning rate of 0, a wasted step in a short run.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / max(1, warmup) if step < warmup else max(0.0, (total - step) / max(1, total - warmup))
        ),
    )
    autocast = (
        torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
        if precision in AUTOCAST_DTYPES
        else contextlib.nullcontext()
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    generator = torch.Generator().manual_seed(seed)
    model.train()
    losses = hooks.losses
    rates: list[float] = []
    stopped_by = "planned steps"
    while len(losses) < total and stopped_by == "planned steps":
        for batch in scenario.train_batches(training.batch_size, generator):
            with hooks.step_context(batch):
                with autocast:
                    loss = scenario.training_loss(model, batch.on(device))
                scaler.scale(loss).backward()
                if training.max_grad_norm > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                rates.append(float(scheduler.get_last_lr()[0]))  # the rate this step used
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if hooks.after_step(len(losses), batch):
                stopped_by = "budget or target"
                break
            if len(losses) >= total:
                break
    model.eval()
    return {
        "steps": len(losses),
        "planned_steps": total,
        "stopped_by": stopped_by,
        "precision": precision,
        "fused_optimizer": bool(optimizer_record.get("fused")),
        "optimizer": optimizer_record,
        "first_loss": losses[0],
        "final_loss": sum(losses[-5:]) / len(losses[-5:]),
        "loss_curve": losses,  # every step's loss: the learning checks read its two ends
        "lr_curve": rates,  # every step's learning rate (warm-up, then linear decay)
    }
