"""Training memory by part, computed from the actual tensors: weights (by storage: 4-bit, 8-bit, float,
and the quantisation constants), gradients, optimizer state (8-bit moments and GaLore's projections as
stored) and activations (the tensors autograd saves for the backward pass, seen through saved-tensor hooks)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


def _state_tensors(value) -> list:
    """The tensors in one optimizer-state entry: a tensor, or an object holding some (GaLore's projector
    keeps its projection matrix as an attribute)."""
    if torch.is_tensor(value):
        return [value]
    found = []
    for inner in vars(value).values() if hasattr(value, "__dict__") else ():
        if torch.is_tensor(inner):
            found.append(inner)
        elif isinstance(inner, (list, tuple)):
            found += [t for t in inner if torch.is_tensor(t)]
    return found


def weights_by_storage(model) -> dict[str, int]:
    """Bytes of the model's weights by how they are stored: "nf4" (4-bit, two weights a byte), "int8",
    a float dtype ("float32", "bfloat16"), and "quant_constants" (the scales and code books the quantised
    weights need). Buffers count under their dtype."""
    from harness.strategies.quantize import quant_constants, storage_kind

    out: dict[str, int] = {}
    seen: set[int] = set()
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        kind = storage_kind(tensor)
        out[kind] = out.get(kind, 0) + tensor.numel() * tensor.element_size()
        constants = [t for t in quant_constants(tensor) if id(t) not in seen]
        seen.update(id(t) for t in constants)
        if constants:
            extra = sum(t.numel() * t.element_size() for t in constants)
            out["quant_constants"] = out.get("quant_constants", 0) + extra
    return out


def _bytes(tensors) -> int:
    seen, total = set(), 0
    for tensor in tensors:
        if tensor is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * tensor.element_size()
    return total


class MemoryBreakdown:
    """Attach to the optimizer; it records the largest gradient and optimizer-state footprints seen.

    Gradients are read just before each optimizer step (when they all exist), optimizer
    state just after (AdamW creates it lazily). Scalar step counters are not state memory
    in any sense that matters and are left out.
    """

    def __init__(self, model) -> None:
        self.weights_by_storage = weights_by_storage(model)
        self.weights_bytes = sum(self.weights_by_storage.values())
        self._weight_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self.gradients_bytes = 0
        self.optimizer_state_bytes = 0
        self.activations_bytes = 0
        self.activation_shape: tuple[int, ...] | None = None  # the input shape of the step that saved the most

    @contextlib.contextmanager
    def step(self, shape: tuple[int, ...] | None = None):
        """Around one training step: records the bytes autograd saves for the backward pass (each storage
        once, the weights left out: they are counted already), the largest over the steps, with the
        input shape of that step. The hook costs about a microsecond per saved tensor (a few hundred
        per step), under 0.5% of a step here."""
        seen: set[int] = set()
        total = 0

        def pack(tensor):
            nonlocal total
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key not in seen and key not in self._weight_storages:
                seen.add(key)
                total += storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            yield
        if total > self.activations_bytes:
            self.activations_bytes, self.activation_shape = total, shape

    def watch(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.register_step_pre_hook(self._before_step)
        optimizer.register_step_post_hook(self._after_step)

    def _before_step(self, optimizer, args, kwargs) -> None:
        grads = (p.grad for group in optimizer.param_groups for p in group["params"])
        self.gradients_bytes = max(self.gradients_bytes, _bytes(grads))

    def _after_step(self, optimizer, args, kwargs) -> None:
        state = (
            tensor
            for per_param in optimizer.state.values()
            for key, value in per_param.items()
            if key != "step"
            for tensor in _state_tensors(value)
        )
        self.optimizer_state_bytes = max(self.optimizer_state_bytes, _bytes(state))

    def summary(self, train_peak_bytes: int | None) -> dict[str, Any]:
        """The parts in bytes; `tensors_bytes` is their sum (what the pre-flight estimate predicts) and
        `other_bytes` the phase peak minus it (workspace, fragmentation and, on CPU where the peak is
        the process's resident set, the runtime, libraries, tokenizer and data)."""
        known = self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes + self.activations_bytes
        return {
            "weights_bytes": self.weights_bytes,
            "weights_by_storage": self.weights_by_storage,
            "gradients_bytes": self.gradients_bytes,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "activations_bytes": self.activations_bytes,
            "activations_input_shape": list(self.activation_shape) if self.activation_shape else None,
            "tensors_bytes": known,
            "other_bytes": max(0, train_peak_bytes - known) if train_peak_bytes is not None else None,
        }
