"""Parameter counts and the size of saved weights."""

from __future__ import annotations

from pathlib import Path


def count_parameters(model) -> dict[str, float | int]:
    """Total and trainable parameters of the model actually trained (shared tensors counted once; a 4-bit
    weight counts its weights, not the bytes they are packed into)."""
    from harness.strategies.quantize import logical_numel

    seen: set[int] = set()
    total = trainable = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += logical_numel(param)
        if param.requires_grad:
            trainable += logical_numel(param)
    return {"total": total, "trainable": trainable, "trainable_percent": 100.0 * trainable / total if total else 0.0}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
