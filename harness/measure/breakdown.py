"""Training memory by part, computed from the actual tensors: weights, gradients, optimizer state."""

from __future__ import annotations

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
        self.gradients_bytes = 0
        self.optimizer_state_bytes = 0

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

    def summary(self, train_peak_bytes: int | None) -> dict[str, int | None]:
        """The parts in bytes; `other_bytes` is the phase peak minus the rest (activations, workspace
        and, on CPU where the peak is the process's resident set, the runtime itself)."""
        known = self.weights_bytes + self.gradients_bytes + self.optimizer_state_bytes
        return {
            "weights_bytes": self.weights_bytes,
            "gradients_bytes": self.gradients_bytes,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "other_bytes": max(0, train_peak_bytes - known) if train_peak_bytes is not None else None,
        }
