"""Distance to the limit: model FLOPs per training token and MFU (model FLOPs utilisation).

FLOPs per token = forward + backward through activations + backward to weights:
- forward: 2 x the matmul parameters every token meets (the blocks' weights and the output head, a
  tied LM head included) + 4 x blocks x seq x hidden for attention scores and values;
- backward through activations: the same, but only from the lowest block that trains upwards (nothing
  below it needs gradients: frozen-lower stops early, adapters and LoRA in every block go all the way);
- backward to weights: 2 x the trainable matmul parameters (embedding lookups cost no matmul).
Full fine-tuning gives the familiar 6N + 12 x blocks x seq x hidden. The output head counts at the
positions it runs on: one per row for a classifier, the scored targets for a causal LM whose loss
computes logits there only (harness.scenarios.text_to_text). MFU is that times the measured
training tokens/s (non-padding), over the device's peak: a table of datasheet peaks for known GPUs
(override with TUNEBENCH_PEAK_FLOPS), or on CPU a peak measured by a short fp32 GEMM benchmark with the
cell's threads, before loading and again after training, the higher reading recorded with the result.
"""

from __future__ import annotations

import os
import time

import torch

# Dense peak FLOP/s from vendor datasheets (SXM parts; tensor-core bf16/fp16 without sparsity, fp32 non-tensor).
GPU_PEAKS = {
    "H200": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "H100": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "A100": {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12},
    "L40S": {"fp32": 91.6e12, "bf16": 362e12, "fp16": 362e12},
    "L4": {"fp32": 30.3e12, "bf16": 121e12, "fp16": 121e12},
    "A10": {"fp32": 31.2e12, "bf16": 125e12, "fp16": 125e12},
    "T4": {"fp32": 8.1e12, "bf16": 65e12, "fp16": 65e12},
}
GEMM_SIZE = 1024


def _gemm_rate(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    """FLOP/s of `a @ b` repeated for about `seconds` (at least three times)."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 3:
        torch.mm(a, b)
        count += 1
    return 2 * a.size(0) * a.size(1) * b.size(1) * count / elapsed


def measured_cpu_peak(seconds: float = 0.3, rounds: int = 3) -> float:
    """FLOP/s of repeated fp32 GEMMs (GEMM_SIZE square) with this process's torch threads: the best of
    `rounds` rounds over `seconds` in all. A round that a frequency dip or another process slowed
    understates the peak, and so overstates MFU: a single 0.3 s round once read 150 GFLOP/s where the
    cells around it read 185-196, and gave an MFU of 101.5%."""
    generator = torch.Generator().manual_seed(0)  # its own: the cell's seeded random stream stays untouched
    a = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=generator)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=generator)
    torch.mm(a, b)  # warm-up
    return max(_gemm_rate(a, b, seconds / rounds) for _ in range(rounds))


def device_peak(device: torch.device, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from) for the device and the training precision."""
    if override := os.environ.get("TUNEBENCH_PEAK_FLOPS"):
        return float(override), "TUNEBENCH_PEAK_FLOPS"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peaks in GPU_PEAKS.items():
            if key in name:
                kind = precision if precision in peaks else "fp32"
                return peaks[kind], f"datasheet peak of {key} ({kind})"
        return None, f"no peak known for {name}; set TUNEBENCH_PEAK_FLOPS"
    threads = torch.get_num_threads()
    return measured_cpu_peak(), f"measured: {GEMM_SIZE}x{GEMM_SIZE} fp32 GEMM, {threads} thread(s)"


def higher_peak(*readings: tuple[float | None, str] | None) -> tuple[float | None, str] | None:
    """The highest of several `device_peak` readings (None for one not taken). A CPU reading is only ever
    low, never high, by chance (another process, a frequency dip): one cell's reading before loading once
    gave 70 GFLOP/s where the cells around it read 140-180, and an MFU of 145%."""
    taken = [r for r in readings if r is not None]
    known = [(value, source) for value, source in taken if value is not None]
    return max(known, key=lambda r: r[0]) if known else (taken[0] if taken else None)


def _matmul_params(module) -> int:
    """Weights of the module's matrices, counted before packing (a 4-bit base's multiply as float ones)."""
    from harness.strategies.quantize import logical_numel

    return sum(logical_numel(p) for p in module.parameters() if p.dim() >= 2)


def flops_per_token(model, seq_len: float, head_share: float = 1.0) -> dict:
    """Training FLOPs per token of `model` as its parameters are now set to train (see the module doc);
    `head_share` is the output head's positions per token (a classifier reads one per row, a causal LM's
    loss may score its targets only)."""
    from harness.strategies.layers import discover
    from harness.strategies.quantize import logical_numel

    layout = discover(model)
    blocks = [model.get_submodule(b) for b in layout.blocks]
    hidden = int(getattr(model.config, "hidden_size", 0) or getattr(model.config, "d_model", 0) or 0)
    trains = [any(p.requires_grad for p in block.parameters()) for block in blocks]
    lowest = trains.index(True) if True in trains else len(blocks)
    embedding = set(layout.embedding_params)
    in_blocks = tuple(b + "." for b in layout.blocks)
    named = dict(model.named_parameters())
    head = sum(
        logical_numel(p)
        for n, p in named.items()
        if p.dim() >= 2 and n not in embedding and not n.startswith(in_blocks)
    )
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied_head = 0
    if output is not None and getattr(output, "weight", None) is not None:
        if not any(output.weight is p for n, p in named.items() if n not in embedding):
            tied_head = output.weight.numel()  # a tied LM head: listed as the embedding, but a matmul per token
    per_block = [_matmul_params(block) for block in blocks]
    head_cost = (head + tied_head) * head_share
    forward_params = sum(per_block) + head_cost
    backward_params = sum(per_block[lowest:]) + head_cost
    trainable = sum(
        p.numel() * (head_share if not n.startswith(in_blocks) else 1.0)
        for n, p in named.items()
        if p.requires_grad and p.dim() >= 2 and n not in embedding
    )
    if tied_head and output.weight.requires_grad:  # type: ignore[union-attr]
        trainable += tied_head * head_share  # an embedding lookup costs nothing, the tied head's matmul does
    attention = 4 * seq_len * hidden
    forward = 2 * forward_params + len(blocks) * attention
    backward_activations = 2 * backward_params + 2 * (len(blocks) - lowest) * attention
    backward_weights = 2 * trainable
    return {
        "flops_per_token": forward + backward_activations + backward_weights,
        "forward": forward,
        "backward_activations": backward_activations,
        "backward_weights": backward_weights,
        "lowest_trained_block": lowest,
        "seq_len": seq_len,
        "head_share": head_share,
    }
