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


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad}


def train(
    model, scenario, training: TrainingSpec, device, seed: int, hooks: TrainHooks, resume: dict | None = None
) -> dict:
    """The task's optimizer (AdamW unless it says otherwise) with linear LR warm-up and decay over the
    planned steps; a budget may stop it earlier. With `training.stop_after_steps` it stops there (the
    schedule unchanged) and the summary's `checkpoint` holds what `resume` needs to continue exactly as
    an unbroken run would: the trainable weights, the optimizer and schedule, the data order (the
    shuffle's state at the epoch's start and the batches taken of it) and the dropout RNG."""
    from harness.run.optimizers import build_optimizer

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the strategy left no trainable parameters")
    optimizer, optimizer_record = build_optimizer(model, params, training, device)
    precision = resolved_precision(training.precision, device)
    hooks.watch_optimizer(optimizer)
    total = planned_steps(len(scenario.train_rows), training) if resume is None else resume["total"]
    stop = min(total, training.stop_after_steps or total)
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
    losses = hooks.losses
    rates: list[float] = []
    skip, rng = 0, None  # batches of the current epoch already trained on; the RNG state to continue with
    if resume is not None:
        _restore(model, optimizer, scheduler, resume)
        losses.extend(resume["losses"])
        rates.extend(resume["rates"])
        generator.set_state(resume["epoch_generator"])
        skip, rng = resume["batches_into_epoch"], resume["rng"]
    start = len(losses)
    model.train()
    stopped_by = "planned steps"
    epoch_state, taken = generator.get_state(), skip  # where a checkpoint taken before any step stands
    if resume is not None and resume.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(resume["cuda_rng"], device)
    while len(losses) < stop and stopped_by == "planned steps":
        epoch_state, taken = generator.get_state(), 0
        for batch in scenario.train_batches(training.batch_size, generator):
            taken += 1
            if skip:  # the same shuffle as the run continued: pass the batches it trained on
                skip -= 1
                continue
            if rng is not None:  # after rebuilding the passed batches, so that dropout draws as it would have
                torch.set_rng_state(rng)
                rng = None
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
            if len(losses) >= stop:
                break
    if stopped_by == "planned steps" and stop < total:
        stopped_by = "stop_after_steps"
    model.eval()
    checkpoint = None
    if training.stop_after_steps is not None and stopped_by != "budget or target":
        checkpoint = {
            "weights": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch_generator": epoch_state,
            "batches_into_epoch": taken,
            "rng": torch.get_rng_state() if rng is None else rng,  # rng: not used yet, no step was taken
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "losses": list(losses),
            "rates": list(rates),
            "total": total,
        }
    return {
        "steps": len(losses),
        "steps_this_cell": len(losses) - start,
        "resumed_at_step": start if resume is not None else None,
        "planned_steps": total,
        "stopped_by": stopped_by,
        "checkpoint": checkpoint,  # the cell saves it and takes it out of the summary
        "precision": precision,
        "fused_optimizer": bool(optimizer_record.get("fused")),
        "optimizer": optimizer_record,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(losses[-5:]) / len(losses[-5:]) if losses else None,
        "loss_curve": losses,  # every step's loss: the learning checks read its two ends
        "lr_curve": rates,  # every step's learning rate (warm-up, then linear decay)
    }


def _restore(model, optimizer, scheduler, resume: dict) -> None:
    """The checkpoint's trainable weights, optimizer and schedule state into this run's own objects."""
    weights = resume["weights"]
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if trainable != set(weights):
        raise ValueError(
            f"training.resume_from: the checkpoint holds other trainable weights ({len(weights)} tensors) "
            f"than this cell's strategy trains ({len(trainable)}): resume a cell of the same strategy and options"
        )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in weights:
                p.copy_(weights[name].to(p.device, p.dtype))
    optimizer.load_state_dict(resume["optimizer"])
    scheduler.load_state_dict(resume["scheduler"])
