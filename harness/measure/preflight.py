"""A memory estimate made before anything is allocated: from the model's config, the strategy, AdamW and
the sequence length. It refuses absurd settings at validate time (exit 2, naming the keys), and each cell
records it next to its measured peak so its accuracy is visible.

Training peak ~ weights (4 bytes/parameter) + gradients (4/trainable parameter) + AdamW state
(8/trainable parameter) + activations kept for the backward pass, per block
s*b*(34*h + 5*a*s) half-precision values (Korthikanti et al. 2022, "Reducing Activation Recomputation
in Large Transformer Models", no recomputation; twice that in fp32), plus the logits (b*s*vocab*4).
Gradient checkpointing keeps one block's activations and each block's input. Evaluation-only cells
(`none`) keep one block's activations at the evaluation batch size. It is an estimate: runtime,
allocator and library overheads come on top (on CPU the process's resident set includes the Python runtime).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

FRESH_SHARE = {"adapter": 0.02, "lora": 0.02, "peft": 0.02}  # trainable share assumed before the model is built


@dataclass(frozen=True)
class Estimate:
    weights_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activations_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes

    def record(self) -> dict:
        return {
            **asdict(self),
            "total_bytes": self.total_bytes,
            "method": "preflight estimate (see harness.measure.preflight)",
        }


def model_shape(config: dict) -> dict[str, int]:
    """hidden size, blocks, heads, intermediate size and vocabulary of a Hugging Face config dict."""
    hidden = int(config.get("hidden_size") or config.get("n_embd") or config.get("d_model") or 768)
    return {
        "hidden": hidden,
        "blocks": int(config.get("num_hidden_layers") or config.get("n_layer") or config.get("num_layers") or 12),
        "heads": int(config.get("num_attention_heads") or config.get("n_head") or config.get("num_heads") or 12),
        "intermediate": int(
            config.get("intermediate_size") or config.get("n_inner") or config.get("d_ff") or 4 * hidden
        ),
        "vocab": int(config.get("vocab_size") or 32000),
    }


def parameters_from_shape(shape: dict[str, int]) -> int:
    h, blocks = shape["hidden"], shape["blocks"]
    return shape["vocab"] * h + blocks * (4 * h * h + 2 * h * shape["intermediate"])


def estimate(
    shape: dict[str, int],
    total: int,
    trainable: int,
    batch_size: int,
    seq_len: int,
    precision: str = "fp32",
    gradient_checkpointing: bool = False,
    logits: bool = True,
) -> Estimate:
    h, blocks, heads = shape["hidden"], shape["blocks"], shape["heads"]
    half = 1 if precision in ("bf16", "fp16") else 2  # the formula counts 2-byte values
    per_block = seq_len * batch_size * (34 * h + 5 * heads * seq_len) * 2 * half // 2
    if trainable == 0:
        activations = per_block
    elif gradient_checkpointing:
        activations = per_block + blocks * seq_len * batch_size * h * 4
    else:
        activations = blocks * per_block
    if logits:
        activations += batch_size * seq_len * shape["vocab"] * 4
    return Estimate(4 * total, 4 * trainable, 8 * trainable, activations)


def config_of(task) -> dict | None:
    """The model's config.json as a dict, without loading weights; None where only a download or a GGUF
    conversion could tell (a GGUF model's converted config is used once it is cached)."""
    from harness.models import cache_entry_ready, gguf_cache_folder, resolve_source

    try:
        folder = Path(resolve_source(task.model.source, task.path.parent, task.model.gguf_file))
        if task.model.gguf_file:
            folder = gguf_cache_folder(str(folder), task.model.gguf_file)
            if not cache_entry_ready(folder):
                return None
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cell_estimate(cell) -> Estimate | None:
    """Before the cell runs: the estimate from its config, its strategy and its training settings."""
    config = config_of(cell.task)
    if config is None:
        return None
    shape = model_shape(config)
    total = parameters_from_shape(shape)
    training = cell.task.training
    strategy = cell.registered
    if strategy == "none":
        trainable = 0
    elif strategy == "frozen-lower":
        trainable = total // 2
    else:
        trainable = int(total * FRESH_SHARE.get(strategy, 1.0))
    batch = training.eval_batch_size if trainable == 0 else training.batch_size
    causal = config.get("model_type") not in ("bert", "roberta", "distilbert", "electra", "deberta", "albert", "mpnet")
    return estimate(
        shape,
        total,
        trainable,
        batch,
        cell.task.model.max_length,
        "fp32" if training.precision == "auto" else training.precision,  # the larger, where unknown
        training.gradient_checkpointing,
        logits=causal,
    )
