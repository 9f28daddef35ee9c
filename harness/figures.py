"""Measured figures, each declared once: its column name, unit, better direction, whether it aggregates
over seeds, and where a cell result keeps it. `load_results`, the aggregates, the exports and the report
read this registry, so a figure a tracker declares reaches all of them without further edits.

Trackers (harness.measure) register their figures with themselves; the figures below come from the
cell itself (the model's parameter counts and saved weights, and the primary metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.registry import Registry

HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Figure:
    """One measured figure of a cell."""

    name: str  # its column in load_results and the exports
    unit: str  # what it is measured in, e.g. "bytes", "tokens/s", "s"
    path: tuple[str, ...]  # where the cell result keeps it, e.g. ("memory", "peak_bytes")
    better: str | None = None  # HIGHER, LOWER, or None when neither (e.g. a parameter count)
    aggregate: bool = True  # mean, std and 95% CI over seeds in the aggregates
    label: str = ""  # the report's column header; the name when empty
    show: bool = False  # a column of its own in the Markdown, LaTeX and HTML tables (the built-in
    # figures have fixed places there already)

    def __post_init__(self) -> None:
        if self.better not in (HIGHER, LOWER, None):
            raise ValueError(f"figure {self.name!r}: better must be {HIGHER!r}, {LOWER!r} or None")
        if not self.path:
            raise ValueError(f"figure {self.name!r}: path must name where the result keeps it")

    @property
    def header(self) -> str:
        return f"{self.label or self.name} ({self.unit})" if self.unit else (self.label or self.name)

    def value(self, result: dict) -> Any:
        """The figure in one cell result, or None when the result does not have it."""
        value: Any = result
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value


FIGURES: Registry[Figure] = Registry("figure")


def register_figures(*figures: Figure) -> None:
    for figure in figures:
        FIGURES.register(figure.name)(figure)


register_figures(
    Figure("primary_value", "", ("primary_value",), label="primary metric"),  # direction: the metric's
    Figure("trainable_params", "parameters", ("params", "trainable")),
    Figure("total_params", "parameters", ("params", "total")),
    Figure("trainable_percent", "%", ("params", "trainable_percent")),
    Figure("weights_bytes", "bytes", ("weights", "bytes"), better=LOWER, label="saved weights"),
    Figure("general_text_loss", "nats/token", ("forgetting", "general_text_loss"), better=LOWER),
    Figure("memory_estimate_bytes", "bytes", ("preflight", "total_bytes"), label="pre-flight memory estimate"),
    Figure(
        "training_tensor_bytes",
        "bytes",
        ("memory", "breakdown", "tensors_bytes"),
        better=LOWER,
        label="training tensors (weights + gradients + optimizer state + activations)",
    ),
    Figure("activation_bytes", "bytes", ("memory", "breakdown", "activations_bytes"), better=LOWER),
    Figure(
        "weight_memory_bytes",
        "bytes",
        ("memory", "breakdown", "weights_bytes"),
        better=LOWER,
        label="weights in memory (as stored: 4-bit, 8-bit or float, with quantisation constants)",
    ),
    Figure("optimizer_state_bytes", "bytes", ("memory", "breakdown", "optimizer_state_bytes"), better=LOWER),
    Figure(
        "memory_estimate_at_measured_shape_bytes",
        "bytes",
        ("preflight", "at_measured_shape", "total_bytes"),
        label="pre-flight estimate at the measured step's input shape",
    ),
    Figure("train_mfu", "%", ("efficiency", "train_mfu_percent"), better=HIGHER, label="MFU", show=True),
    Figure("flops_per_token", "FLOPs", ("efficiency", "flops_per_token"), label="training FLOPs per token"),
)


def shown_figures(frame=None) -> list[Figure]:
    """Figures that ask for a column of their own in the Markdown, LaTeX and HTML tables; given a frame of
    cells or aggregates, only those with a value in it (a run without a price gets no cost column)."""

    def present(figure: Figure) -> bool:
        columns = [c for c in (figure.name, f"{figure.name}_mean") if c in frame]
        return any(frame[c].notna().any() for c in columns)

    return [f for f in FIGURES.registered() if f.show and (frame is None or present(f))]
