"""GPU check: a short strategy matrix on a ~0.5B-parameter Llama-style model built from config
(random weights: memory and speed do not depend on their values), bf16 autocast, through the harness's own
strategies, optimizers, training loop and trackers.

Prints, per row: training tokens/s (CUDA-synchronised, warm-up excluded), peak CUDA memory (allocated and
reserved), weights as stored, optimizer state (measured tensors) and model FLOPs utilisation. Rows are the
strategies and the memory-saving variants of tasks/suites/memory.toml (`--rows`). Run it through
benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile

import torch

from harness.config import TrainingSpec
from harness.measure import TrackerContext
from harness.measure.breakdown import MemoryBreakdown
from harness.measure.memory import MemoryTracker
from harness.measure.params import count_parameters
from harness.measure.throughput import ThroughputTracker
from harness.run.train import TrainHooks, train
from harness.scenarios import Batch
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but

# Dense bf16 peak of common accelerators, FLOP/s (vendor datasheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}


class SyntheticText:
    """Random token sequences: enough to time training (the loss is next-token prediction)."""

    def __init__(self, vocab: int, rows: int, length: int) -> None:
        self.train_rows = list(range(rows))
        self.vocab, self.length = vocab, length

    def train_batches(self, batch_size: int, generator):
        for _ in range(0, len(self.train_rows), batch_size):
            ids = torch.randint(0, self.vocab, (batch_size, self.length), generator=generator)
            yield Batch({"input_ids": ids, "labels": ids}, batch_size, ids.numel())

    def training_loss(self, model, inputs: dict):
        return model(**inputs).loss


def rows() -> dict[str, tuple[str, dict, dict]]:
    """row -> (registered strategy, its options, training settings): the four plain strategies and the
    memory-saving variants tasks/suites/memory.toml defines."""
    import tomllib
    from pathlib import Path

    suite = Path(__file__).resolve().parents[1] / "tasks/suites/memory.toml"
    variants = tomllib.loads(suite.read_text(encoding="utf-8"))["strategies"]
    found: dict[str, tuple[str, dict, dict]] = {s: (s, {}, {}) for s in ("full", "frozen-lower", "adapter", "lora")}
    for name, table in variants.items():
        options = {k: v for k, v in table.items() if k not in ("type", "training")}
        found[name] = (table["type"], options, table.get("training", {}))
    return found


def model_config(tiny: bool = False):
    """~0.47B parameters (24 blocks of width 1024, untied 32k vocabulary); `tiny` for a dry run on CPU."""
    from transformers import LlamaConfig

    if tiny:
        return LlamaConfig(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2
        )
    return LlamaConfig(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=2048,
    )


def build_model(device, strategy, folder: str, config):
    """The model as the strategy loads it: from a saved checkpoint through `from_pretrained` with the
    strategy's load options (a quantised base quantises as it loads), else built in place."""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    extra = strategy.load_options(device)
    if not extra:
        torch.manual_seed(0)
        return LlamaForCausalLM(config).to(device)
    return AutoModelForCausalLM.from_pretrained(folder, **extra)


def flops_per_token(n_params: int, config, length: int) -> float:
    """Training FLOPs per token: 6N for the weights plus attention scores (Kaplan et al. / PaLM appendix).
    PEFT methods skip weight gradients of frozen layers, so 6N overstates their work: MFU for them is an
    upper bound and is labelled so."""
    return 6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * length


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=512)
    rows_help = "comma-separated: full, frozen-lower, adapter, lora and the variants of tasks/suites/memory.toml"
    parser.add_argument("--rows", default="full,frozen-lower,adapter,lora", help=rows_help)
    parser.add_argument("--dry-run", action="store_true", help="a tiny model on CPU: checks the script only")
    args = parser.parse_args(argv)
    if args.dry_run:
        device, name, peak = torch.device("cpu"), "CPU (dry run: a tiny model, figures mean nothing)", None
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"device: {name}; bf16 peak {'%.0f TFLOP/s' % (peak / 1e12) if peak else 'unknown: MFU not computed'}")
    base = TrainingSpec(
        max_steps=args.steps, batch_size=args.batch_size, precision="bf16", measure_warmup_steps=3, learning_rate=1e-4
    )
    config = model_config(tiny=args.dry_run)
    folder = tempfile.mkdtemp(prefix="gpu-check-model-")
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)  # for the rows that quantise as they load
    print(
        f"{'row':<16}{'params':>9}{'trainable':>11}{'tokens/s':>10}{'peak alloc':>12}{'peak reserved':>15}"
        f"{'weights':>10}{'optim state':>13}{'MFU':>11}  weights by storage"
    )
    known = rows()
    for row in args.rows.split(","):
        registered, options, settings = known[row]
        training = dataclasses.replace(base, **settings)
        cls = STRATEGIES.get(registered)
        strategy = cls(cls.Options(**options))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model = build_model(device, strategy, folder, config)
        applied = strategy.apply(model, ModelContext((), "CAUSAL_LM"))
        freeze_all_but(applied.model, applied, ())
        counts = count_parameters(applied.model)
        breakdown = MemoryBreakdown(applied.model)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        steps = ThroughputTracker(training.measure_warmup_steps, synchronize=sync)
        memory = MemoryTracker(TrackerContext(device))
        data = SyntheticText(config.vocab_size, args.steps * args.batch_size, args.length)
        with memory.phase("train"):
            train(
                applied.model,
                data,
                training,
                device,
                0,
                TrainHooks(
                    step_context=lambda b, steps=steps: steps.step(b.n_samples, b.n_tokens),
                    watch_optimizer=breakdown.watch,
                ),
            )
        tokens_per_s = steps.summary("train")["train_tokens_per_s"]
        phase = memory.phases["train"]
        n_params = counts["total"]
        mfu = tokens_per_s * flops_per_token(n_params, config, args.length) / peak if peak else None
        mfu_text = "n/a" if mfu is None else f"{100 * mfu:.1f}%" + ("" if registered == "full" else " (ub)")
        storage = ", ".join(f"{k} {v / 2**20:.0f}Mi" for k, v in sorted(breakdown.weights_by_storage.items()))
        print(
            f"{row:<16}{n_params / 1e6:>8.0f}M{counts['trainable'] / 1e6:>10.2f}M{tokens_per_s:>10.0f}"
            f"{phase.get('cuda_max_allocated_bytes', phase.get('peak_rss_bytes', 0)) / 2**30:>10.2f}Gi"
            f"{phase.get('cuda_max_reserved_bytes', 0) / 2**30:>13.2f}Gi"
            f"{breakdown.weights_bytes / 2**20:>8.0f}Mi{breakdown.optimizer_state_bytes / 2**20:>11.0f}Mi"
            f"{mfu_text:>11}  {storage}",
            flush=True,
        )
        del model, applied
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
