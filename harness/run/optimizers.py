"""The optimizer a cell trains with, a training setting (`[training] optimizer`) like the learning rate:

- `adamw`: torch's AdamW (fused on CUDA); state is two fp32 moments per trainable weight (8 bytes);
- `adamw8bit`: bitsandbytes' 8-bit AdamW (Dettmers et al. 2022, block-wise quantised moments: 2 bytes per
  weight plus a scale per block of 256; tensors under 4,096 elements keep fp32 moments);
- `galore_adamw`: GaLore (Zhao et al. 2024, galore-torch): the gradients of the 2-D weights it targets are
  projected to `galore_rank` dimensions, AdamW's moments live in that space (2 x rank x the longer side
  of the matrix, plus the rank x shorter-side projection), refreshed by SVD every `galore_update_proj_gap`
  steps; every other weight keeps plain AdamW.

Both non-default ones need `pip install 'tunebench[quantize]'` (galore-torch imports bitsandbytes).
"""

from __future__ import annotations

from harness.strategies.quantize import missing_package

PACKAGES = {"adamw8bit": ("bitsandbytes",), "galore_adamw": ("bitsandbytes", "galore_torch")}


def optimizer_problems(training) -> list[tuple[str, str]]:
    """(key, message) for an optimizer this machine cannot build."""
    for module in PACKAGES.get(training.optimizer, ()):
        missing = missing_package(module)
        if missing:
            return [("optimizer", f"optimizer = {training.optimizer!r} {missing}")]
    return []


def galore_targets(model, training) -> set[str]:
    """Names of the trainable 2-D linear weights GaLore projects: those inside the transformer blocks (or
    whose names contain one of `galore_target_modules`); embeddings and heads keep plain AdamW."""
    import torch

    from harness.strategies.layers import discover

    wanted = training.galore_target_modules
    blocks = () if wanted else tuple(discover(model).blocks)
    names = set()
    for module_name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or not module.weight.requires_grad:
            continue
        inside = any(module_name == b or module_name.startswith(b + ".") for b in blocks)
        if (wanted and any(w in module_name for w in wanted)) or inside:
            names.add(f"{module_name}.weight")
    return names


def build_optimizer(model, params: list, training, device):
    """The optimizer over `params` (the trainable parameters, in model order) and what it was, for the result."""
    import torch

    record: dict = {"name": training.optimizer}
    optimizer: torch.optim.Optimizer
    if training.optimizer == "adamw":
        fused = device.type == "cuda"  # one kernel per step instead of one per tensor
        record["fused"] = fused
        optimizer = torch.optim.AdamW(
            params, lr=training.learning_rate, weight_decay=training.weight_decay, fused=fused
        )
        return optimizer, record
    if training.optimizer == "adamw8bit":
        import bitsandbytes as bnb

        optimizer = bnb.optim.AdamW8bit(params, lr=training.learning_rate, weight_decay=training.weight_decay)
        return optimizer, record
    from galore_torch import GaLoreAdamW

    targets = galore_targets(model, training)
    by_id = {id(p): name for name, p in model.named_parameters()}
    projected = [p for p in params if by_id.get(id(p)) in targets]
    plain = [p for p in params if by_id.get(id(p)) not in targets]
    if not projected:
        raise ValueError("optimizer galore_adamw: no trainable 2-D weight matched; set training.galore_target_modules")
    groups = [
        {"params": plain},
        {
            "params": projected,
            "rank": training.galore_rank,
            "update_proj_gap": training.galore_update_proj_gap,
            "scale": training.galore_scale,
            "proj_type": "std",
        },
    ]
    record.update(
        rank=training.galore_rank,
        update_proj_gap=training.galore_update_proj_gap,
        scale=training.galore_scale,
        projected_tensors=len(projected),
        projected_parameters=sum(p.numel() for p in projected),
    )
    optimizer = GaLoreAdamW(
        [g for g in groups if g["params"]], lr=training.learning_rate, weight_decay=training.weight_decay
    )
    return optimizer, record
