"""Training memory by part, computed from the actual tensors: weights, gradients, optimizer state and
activations (the tensors autograd saves for the backward pass, seen through saved-tensor hooks)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch


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
        self.weights_bytes = _bytes(list(model.parameters()) + list(model.buffers()))
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
            value
            for per_param in optimizer.state.values()
            for key, value in per_param.items()
            if torch.is_tensor(value) and key != "step"
        )
        self.optimizer_state_bytes = max(self.optimizer_state_bytes, _bytes(state))

    def summary(self, train_peak_bytes: int | None) -> dict[str, Any]:
        """The parts in bytes; `tensors_bytes` is their sum (what the pre-flight estimate predicts) and
        `other_bytes` the phase peak minus it (workspace, fragmentation and, on CPU where the peak is
        the process's resident set, the runtime, libraries, tokenizer and data)."""
        known = self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes + self.activations_bytes
        return {
            "weights_bytes": self.weights_bytes,
            "gradients_bytes": self.gradients_bytes,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "activations_bytes": self.activations_bytes,
            "activations_input_shape": list(self.activation_shape) if self.activation_shape else None,
            "tensors_bytes": known,
            "other_bytes": max(0, train_peak_bytes - known) if train_peak_bytes is not None else None,
        }
