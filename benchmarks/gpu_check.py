"""GPU check: a short strategy matrix on a ~0.5B-parameter Llama-style model built from config
(random weights), bf16 autocast, through the harness's own training loop and trackers.

Prints, per strategy: training tokens/s (CUDA-synchronised, warm-up excluded), peak CUDA memory
(allocated and reserved) and model FLOPs utilisation. Run it through benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import sys

import torch

from harness.config import TrainingSpec
from harness.measure import TrackerContext
from harness.measure.memory import MemoryTracker
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


def build_model(device):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
        max_position_embeddings=2048,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(device), config


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
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    print(f"device: {name}; bf16 peak {'%.0f TFLOP/s' % (peak / 1e12) if peak else 'unknown: MFU not computed'}")
    training = TrainingSpec(
        max_steps=args.steps, batch_size=args.batch_size, precision="bf16", measure_warmup_steps=3, learning_rate=1e-4
    )
    print(
        f"{'strategy':<14}{'params':>10}{'trainable':>12}{'tokens/s':>12}"
        f"{'peak alloc':>12}{'peak reserved':>15}{'MFU':>10}"
    )
    for strategy in ("full", "frozen-lower", "adapter", "lora"):
        model, config = build_model(device)
        n_params = sum(p.numel() for p in model.parameters())
        cls = STRATEGIES.get(strategy)
        applied = cls(cls.Options()).apply(model, ModelContext((), "CAUSAL_LM"))
        freeze_all_but(applied.model, applied, ())
        trainable = sum(p.numel() for p in applied.model.parameters() if p.requires_grad)
        steps = ThroughputTracker(training.measure_warmup_steps, synchronize=lambda: torch.cuda.synchronize(device))
        memory = MemoryTracker(TrackerContext(device))
        data = SyntheticText(config.vocab_size, args.steps * args.batch_size, args.length)
        with memory.phase("train"):
            train(
                applied.model,
                data,
                training,
                device,
                0,
                TrainHooks(step_context=lambda b, steps=steps: steps.step(b.n_samples, b.n_tokens)),
            )
        tokens_per_s = steps.summary("train")["train_tokens_per_s"]
        phase = memory.phases["train"]
        mfu = tokens_per_s * flops_per_token(n_params, config, args.length) / peak if peak else None
        mfu_text = "n/a" if mfu is None else f"{100 * mfu:.1f}%" + ("" if strategy == "full" else " (ub)")
        print(
            f"{strategy:<14}{n_params / 1e6:>9.0f}M{trainable / 1e6:>11.2f}M{tokens_per_s:>12.0f}"
            f"{phase['cuda_max_allocated_bytes'] / 2**30:>10.2f}Gi{phase['cuda_max_reserved_bytes'] / 2**30:>13.2f}Gi"
            f"{mfu_text:>10}"
        )
        del model, applied
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
