"""Quantised bases for the adapter-style strategies (`lora`, `adapter`, `peft`): QLoRA's 4-bit NF4 base
(Dettmers et al. 2023) or an 8-bit base (LLM.int8(), Dettmers et al. 2022), through transformers'
`BitsAndBytesConfig` at load and peft's `prepare_model_for_kbit_training` before the adapters go in.

An option of those strategies, not a strategy of its own: `[strategies.qlora] type = "lora"` with
`quantize = "nf4"` is LoRA on a 4-bit base, a row next to `lora`. The frozen base's linear layers are
stored in 4 or 8 bits and de-quantised on the fly for each matmul (in `compute_dtype`); the task head,
the language-model head, embeddings and layer norms stay in floating point, and the adapters train in
fp32 as they do on a float base. Needs bitsandbytes: `pip install 'tunebench[quantize]'`.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any, Literal

from harness.schema import field

EXTRA = "tunebench[quantize]"
# Imported on a CPU with AVX512-BF16, bitsandbytes looks for an optional 4-bit kernel fetched from the
# Hugging Face hub (the `kernels` package) and logs a warning when that package is absent; its built-in CPU
# kernel is then used, the one measured here. Said once in the README instead of before every run.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# Modules never quantised: task heads (fresh, they train) and the language-model head (it shares the
# embedding matrix in most causal LMs). transformers' own default list is replaced by this one.
KEEP_IN_FLOAT = ("lm_head", "classifier", "score", "qa_outputs")
COMPUTE_DTYPES = ("auto", "fp32", "bf16", "fp16")


def missing_package(module: str) -> str | None:
    """A one-line reason when an optional package is not installed, else None."""
    if importlib.util.find_spec(module) is None:
        return f"needs the {module} package, which is not installed: pip install '{EXTRA}'"
    return None


@dataclass(frozen=True, kw_only=True)
class QuantizedBaseOptions:
    """Options every adapter-style strategy takes for its frozen base (keyword fields: they come last)."""

    quantize: Literal["none", "nf4", "int8"] = field(
        "none", help="store the frozen base's linear layers in 4-bit NF4 (QLoRA) or 8 bits; needs tunebench[quantize]"
    )
    compute_dtype: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", help="dtype the quantised layers compute in (auto: bf16 on a CUDA device that has it, else fp32)"
    )
    double_quant: bool = field(True, help="NF4: quantise the quantisation constants as well (QLoRA's double quant)")


class QuantizableBase:
    """What a strategy whose Options derive from QuantizedBaseOptions gets (listed before `Strategy`): the
    quantisation config at load and the check that bitsandbytes is installed. Its `apply` calls `prepare`."""

    options: Any  # the strategy's Options, a QuantizedBaseOptions

    @classmethod
    def check_options(cls, options) -> list[tuple[str, str]]:
        return quantize_problems(options)

    def load_options(self, device) -> dict:
        return load_options(self.options, device)


def quantize_problems(options: QuantizedBaseOptions) -> list[tuple[str, str]]:
    """(key, message) for a quantised base this machine cannot build."""
    if options.quantize == "none":
        return []
    missing = missing_package("bitsandbytes")
    return [("quantize", f"quantize = {options.quantize!r} {missing}")] if missing else []


def compute_dtype(options: QuantizedBaseOptions, device):
    import torch

    if options.compute_dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[options.compute_dtype]


def load_options(options: QuantizedBaseOptions, device) -> dict:
    """Keyword arguments of `from_pretrained` that quantise the base as it loads (none for a float base)."""
    if options.quantize == "none":
        return {}
    from transformers import BitsAndBytesConfig

    if options.quantize == "nf4":
        config = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute_dtype(options, device),
            bnb_4bit_use_double_quant=options.double_quant,
            llm_int8_skip_modules=list(KEEP_IN_FLOAT),
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(KEEP_IN_FLOAT))
    return {"quantization_config": config, "device_map": {"": str(device)}}


def prepare(model, options: QuantizedBaseOptions):
    """peft's preparation of a quantised base for adapter training (float layer norms, input gradients);
    a float base is returned as it is."""
    if options.quantize == "none":
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def storage_kind(param) -> str:
    """How a parameter is stored: "nf4"/"fp4" (4-bit, packed two to a byte), "int8", or its float dtype."""
    state = getattr(param, "quant_state", None)
    if state is not None and getattr(state, "quant_type", None):
        return str(state.quant_type)
    if type(param).__name__ == "Int8Params" or str(param.dtype) == "torch.int8":
        return "int8"
    return str(param.dtype).removeprefix("torch.")


def logical_numel(param) -> int:
    """The parameter's element count before packing (a 4-bit tensor stores two weights per byte)."""
    state = getattr(param, "quant_state", None)
    shape = getattr(state, "shape", None)
    if shape is not None:
        count = 1
        for size in shape:
            count *= int(size)
        return count
    return int(param.numel())


def quant_constants(param) -> list:
    """The tensors a quantised parameter needs besides its packed weights: block scales (absmax), the
    code book, and with double quantisation the scales' own scales; int8's per-row scales (SCB)."""
    found = []
    state = getattr(param, "quant_state", None)
    if state is not None:
        found += [getattr(state, name, None) for name in ("absmax", "code", "offset")]
        nested = getattr(state, "state2", None)
        if nested is not None:
            found += [getattr(nested, name, None) for name in ("absmax", "code")]
    found.append(getattr(param, "SCB", None))
    import torch

    return [t for t in found if torch.is_tensor(t)]
