"""A memory estimate made before anything is allocated: from the model's config, the strategy, AdamW and
the sequence length. It refuses absurd settings at validate time (exit 2, naming the keys), and each cell
records it next to its measured peak so its accuracy is visible.

Training peak ~ weights (4 bytes/parameter; a quantised base's linear weights 0.5 byte (NF4) or 1 byte
(int8) plus their scales) + gradients (4/trainable parameter) + optimizer state (AdamW 8/trainable
parameter; 8-bit AdamW 2, and 8 for tensors under 4,096 elements; GaLore 2 x rank x the longer side
plus rank x the shorter side of each projected matrix, AdamW for the rest) + activations kept for the
backward pass, per block
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
        # width of keys and values (grouped-query attention shares them between heads)
        "kv_hidden": hidden
        * int(config.get("num_key_value_heads") or config.get("num_attention_heads") or 1)
        // int(config.get("num_attention_heads") or 1),
        "gated": int(str(config.get("hidden_act", "")) in GATED_ACTIVATIONS),  # SwiGLU-style MLP (3 matrices)
    }


GATED_ACTIVATIONS = ("silu", "swish", "swiglu", "geglu")
# What a causal decoder block saves for the backward pass, in values per token (no dropout, fused SDPA
# attention that keeps q, k, v and its output), by what trains. Measured against the saved-tensor hooks on
# SmolLM2-135M (4 x 200 tokens, fp32): full 1,176 MiB saved against 1,222 estimated, LoRA 873 against 870,
# adapters 1,055 against 1,029, frozen-lower 662 against 686.
#   full: both norms' input, normalised value and output (3h each), q/k/v (h + 2 kv), attention output and
#         output-projection input (2h), gated MLP: gate output, its activation, up output, down input (4i)
#   frozen_base (LoRA, peft, quantised bases): norms' inputs only (2h), the q/v input LoRA reads (h), q/k/v
#         and attention output (2h + 2 kv); MLP: gate output, activation and up output (3i), no frozen input
#   adapter: frozen_base plus the trained norms' normalised values (2h) and the adapters' inputs (2h), less
#         the q/v input (h)
SAVED_PER_TOKEN = {
    "full": lambda h, kv, i, gated: 9 * h + 2 * kv + (4 if gated else 2) * i,
    "frozen_base": lambda h, kv, i, gated: 5 * h + 2 * kv + (3 if gated else 1) * i,
    "adapter": lambda h, kv, i, gated: 8 * h + 2 * kv + (3 if gated else 1) * i,
}
REGIMES = {"full": "full", "frozen-lower": "full", "lora": "frozen_base", "peft": "frozen_base", "adapter": "adapter"}


def parameters_from_shape(shape: dict[str, int]) -> int:
    h, blocks = shape["hidden"], shape["blocks"]
    return shape["vocab"] * h + blocks * (4 * h * h + 2 * h * shape["intermediate"])


NF4_BLOCK, NF4_NESTED_BLOCK = 64, 256  # weights per absmax scale; scales per second-level scale (double quant)
ADAMW8BIT_MIN_SIZE, ADAMW8BIT_BLOCK = 4096, 256  # bitsandbytes: smaller tensors keep fp32 state; block size


def weight_bytes(total: int, quantized: int = 0, scheme: str = "none", double_quant: bool = True) -> int:
    """Bytes of the weights: `quantized` of the `total` parameters stored in `scheme`, the rest in fp32."""
    if scheme == "nf4":
        blocks = quantized / NF4_BLOCK
        scales = blocks * (1 + 4 / NF4_NESTED_BLOCK) if double_quant else blocks * 4  # 8-bit scales, or fp32
        stored = quantized / 2 + scales
    elif scheme == "int8":
        stored = quantized * 1.0  # plus one fp32 scale per output row: under 1% at these widths
    else:
        return 4 * total
    return int(4 * (total - quantized) + stored)


def optimizer_bytes(
    trainable: int, optimizer: str = "adamw", sizes: tuple[int, ...] = (), projected: tuple = (), rank: int = 0
) -> int:
    """Optimizer state bytes: AdamW's two fp32 moments per trainable weight, or 8-bit AdamW's (`sizes`: the
    trainable tensors' element counts, when known), or GaLore's for the `projected` (m, n) matrices."""
    if optimizer == "adamw8bit":
        if not sizes:
            return 2 * trainable
        quantised = [n for n in sizes if n >= ADAMW8BIT_MIN_SIZE]
        state = sum(2 * n + 8 * -(-n // ADAMW8BIT_BLOCK) for n in quantised)  # moments, an fp32 scale a block each
        code_books = 2 * 256 * 4 if quantised else 0  # the two moments' 256-entry maps, shared by every tensor
        return state + code_books + sum(8 * n for n in sizes if n < ADAMW8BIT_MIN_SIZE)
    if optimizer == "galore_adamw":
        state, covered = 0, 0
        for m, n in projected:
            r = min(rank, m, n)
            state += 4 * (2 * max(m, n) * r + min(m, n) * r)
            covered += m * n
        return state + 8 * (trainable - covered)
    return 8 * trainable


def estimate(
    shape: dict[str, int],
    total: int,
    trainable: int,
    batch_size: int,
    seq_len: int,
    precision: str = "fp32",
    gradient_checkpointing: bool = False,
    logits: bool = True,
    weights: int | None = None,
    optimizer: int | None = None,
    saved: str | None = None,
    trained_blocks: int | None = None,
) -> Estimate:
    """The estimate at one input shape; `weights` and `optimizer` (bytes) replace the fp32/AdamW figures
    where the base is quantised or the optimizer saves memory (weight_bytes, optimizer_bytes). `saved`
    (a SAVED_PER_TOKEN regime) counts a causal decoder's activations by what trains, over the
    `trained_blocks` that keep them (the upper ones under frozen-lower); without it, Korthikanti et al.'s
    count for every block."""
    h, blocks, heads = shape["hidden"], shape["blocks"], shape["heads"]
    half = 1 if precision in ("bf16", "fp16") else 2  # the formula counts 2-byte values
    per_block = seq_len * batch_size * (34 * h + 5 * heads * seq_len) * 2 * half // 2
    if saved is not None and trainable and not gradient_checkpointing:
        values = SAVED_PER_TOKEN[saved](h, shape.get("kv_hidden", h), shape["intermediate"], shape.get("gated", 0))
        activations = (blocks if trained_blocks is None else trained_blocks) * seq_len * batch_size * values * 2 * half
    elif trainable == 0:
        activations = per_block
    elif gradient_checkpointing:
        activations = per_block + blocks * seq_len * batch_size * h * 4
    else:
        activations = blocks * per_block
    if logits:
        activations += batch_size * seq_len * shape["vocab"] * 4
    return Estimate(
        4 * total if weights is None else weights,
        4 * trainable,
        8 * trainable if optimizer is None else optimizer,
        activations,
    )


def model_estimate(
    model, params: dict, kind: str, training, rows: int, seq_len: int, precision: str, strategy: str = "full"
) -> Estimate:
    """The estimate for a built model (before it trains): its parameter counts, how its weights are
    stored, what its optimizer will hold for the weights that train, and which blocks keep activations."""
    from harness.run.optimizers import galore_targets
    from harness.strategies.layers import discover
    from harness.strategies.quantize import logical_numel, storage_kind

    trainable = int(params["trainable"])
    stored = list({id(p): (storage_kind(p), logical_numel(p)) for p in model.parameters()}.values())
    schemes = {k for k, _ in stored if k in ("nf4", "int8")}
    scheme = schemes.pop() if len(schemes) == 1 else "none"  # one scheme per base
    quantization = getattr(model.config, "quantization_config", None)
    double_quant = bool(getattr(quantization, "bnb_4bit_use_double_quant", True))
    trained = [p for p in model.parameters() if p.requires_grad]
    targets = galore_targets(model, training) if training.optimizer == "galore_adamw" and trainable else set()
    projected = tuple(tuple(p.shape) for n, p in model.named_parameters() if n in targets)
    regime = REGIMES.get(strategy, "full") if kind == "causal" and trainable else None
    # blocks from the lowest one holding a trainable weight up keep activations (frozen-lower: the upper ones)
    blocks = discover(model).blocks if regime else ()
    trains = [any(p.requires_grad for p in model.get_submodule(b).parameters()) for b in blocks]
    return estimate(
        model_shape(model.config.to_dict()),
        int(params["total"]),
        trainable,
        rows,
        seq_len,
        precision,
        training.gradient_checkpointing,
        logits=kind != "encoder",
        weights=weight_bytes(int(params["total"]), sum(n for k, n in stored if k == scheme), scheme, double_quant),
        optimizer=optimizer_bytes(
            trainable, training.optimizer, tuple(p.numel() for p in trained), projected, training.galore_rank
        ),
        saved=regime,
        trained_blocks=len(blocks) - trains.index(True) if True in trains else None,
    )


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
    h, i, blocks = shape["hidden"], shape["intermediate"], shape["blocks"]
    linear = blocks * (4 * h * h + 2 * h * i)  # the blocks' linear weights: what is quantised or projected
    scheme = getattr(cell.options, "quantize", "none")
    double_quant = getattr(cell.options, "double_quant", True)
    regime = REGIMES.get(strategy, "full") if causal and trainable else None
    return estimate(
        shape,
        total,
        trainable,
        batch,
        cell.task.model.max_length,
        "fp32" if training.precision == "auto" else training.precision,  # the larger, where unknown
        training.gradient_checkpointing,
        logits=causal,
        weights=weight_bytes(total, linear if scheme != "none" else 0, scheme, double_quant),
        optimizer=optimizer_bytes(
            trainable,
            training.optimizer,
            projected=((h, h),) * 4 * blocks + ((h, i),) * 2 * blocks if trainable >= linear else (),
            rank=training.galore_rank,
        ),
        saved=regime,
        trained_blocks=blocks // 2 if strategy == "frozen-lower" else None,
    )
