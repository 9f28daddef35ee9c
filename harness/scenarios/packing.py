"""Packed training batches for classification on encoders: the same rows, on fewer positions.

A padded batch spends positions on padding wherever its rows differ in length (on SMS spam 6 in 10).
Grouping rows by length removes most of it but changes which rows share a batch, and where length goes
with the label it changes what is learned (harness.scenarios.lengths). Packing keeps the batch training
would build anyway and only changes its layout: the rows are laid end to end, first fit by decreasing
length, into bins as long as the batch's longest row; each row attends only to itself (a block-diagonal
attention mask) and keeps its own position ids, starting at 0. The encoder's output is then put back
in the padded layout before the model's head reads it, so the head sees each row's [CLS] state as it
would have. Per row the model computes what it computes on the padded batch, up to float rounding and
which dropout draws fall where (tests/test_packing.py checks the loss and gradients).

Packing needs a backbone whose `encoder` returns the hidden states (BERT, RoBERTa, ELECTRA, DeBERTa
style), an attention implementation that takes a 4D mask (sdpa or eager), and input ids as the model's
input: `EncoderPacking.for_model` says why not otherwise, and training then runs padded batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from harness.models import base_model, prepends_virtual_tokens
from harness.scenarios.base import Batch

MASKED_ATTENTION = ("sdpa", "eager")  # implementations that take a ready 4D mask as it is


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Row indices per bin: longest rows first, each into the first bin with room (ties in row order)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for b, free in enumerate(room):
            if lengths[i] <= free:
                bins[b].append(i)
                room[b] -= lengths[i]
                break
        else:
            bins.append([i])
            room.append(capacity - lengths[i])
    return bins


@dataclass
class Layout:
    """Where each real token of the padded batch sits in the packed one: flat positions, padded
    (rows x width) and packed (bins x capacity)."""

    padded_shape: tuple[int, int]
    padded_index: torch.Tensor  # flat positions in the padded batch
    packed_index: torch.Tensor  # the same tokens' flat positions in the packed batch

    def to(self, device) -> Layout:
        return Layout(self.padded_shape, self.padded_index.to(device), self.packed_index.to(device))

    def unpack(self, hidden: torch.Tensor) -> torch.Tensor:
        """Packed hidden states (bins x capacity x H) in the padded layout (rows x width x H), zeros at
        padding."""
        rows, width = self.padded_shape
        flat = hidden.reshape(-1, hidden.size(-1)).index_select(0, self.packed_index)
        padded = hidden.new_zeros(rows * width, hidden.size(-1)).index_copy(0, self.padded_index, flat)
        return padded.view(rows, width, hidden.size(-1))


def pack(inputs: dict, mask_style: str) -> tuple[dict, Layout, int]:
    """Packed model inputs for a right-padded batch (input_ids, attention_mask and any other per-token
    input such as token_type_ids; other entries such as labels are kept as they are), its layout, and
    the number of positions the packed batch holds."""
    attention = inputs["attention_mask"]
    rows, width = attention.shape
    lengths = attention.sum(dim=1).tolist()
    capacity = max(lengths)
    bins = first_fit_decreasing(lengths, capacity)
    segment = torch.full((len(bins), capacity), -1, dtype=torch.long)  # -1: padding, which sees padding only
    positions = torch.zeros((len(bins), capacity), dtype=torch.long)
    padded_index, packed_index = [], []
    for b, members in enumerate(bins):
        offset = 0
        for row in members:
            n = lengths[row]
            segment[b, offset : offset + n] = row
            positions[b, offset : offset + n] = torch.arange(n)
            padded_index.append(torch.arange(n) + row * width)
            packed_index.append(torch.arange(n) + b * capacity + offset)
            offset += n
    layout = Layout((rows, width), torch.cat(padded_index), torch.cat(packed_index))
    per_token = [k for k, v in inputs.items() if torch.is_tensor(v) and v.shape == attention.shape]
    packed = {k: v for k, v in inputs.items() if k not in per_token}
    for key in per_token:
        if key == "attention_mask":
            continue
        values = inputs[key].new_zeros(len(bins) * capacity)
        values[layout.packed_index] = inputs[key].reshape(-1)[layout.padded_index]
        packed[key] = values.view(len(bins), capacity)
    packed["position_ids"] = positions
    allowed = (segment[:, :, None] == segment[:, None, :])[:, None]  # bins x 1 x query x key
    packed["attention_mask"] = (
        allowed if mask_style == "bool" else torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo().min)
    )
    return packed, layout, len(bins) * capacity


class EncoderPacking:
    """Packing for one model: where its encoder is, and how its attention takes a mask."""

    def __init__(self, encoder: torch.nn.Module, mask_style: str) -> None:
        self.encoder = encoder
        self.mask_style = mask_style

    @classmethod
    def for_model(cls, model) -> tuple[EncoderPacking | None, str]:
        """The packing for `model`, or None and the reason it cannot pack."""
        if prepends_virtual_tokens(model):
            return None, "prompt-learning methods prepend virtual tokens to the rows"
        base = base_model(model)
        backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
        encoder = getattr(backbone, "encoder", None)
        if not isinstance(encoder, torch.nn.Module):
            return None, f"{type(base).__name__} has no `encoder` module whose output could be unpacked"
        implementation = getattr(base.config, "_attn_implementation", None)
        if implementation not in MASKED_ATTENTION:
            return None, f"attention implementation {implementation!r} takes no 4D mask"
        return cls(encoder, "float" if implementation == "eager" else "bool"), ""

    def pack_batch(self, batch: Batch) -> Batch:
        """The batch packed; its inputs carry the layout under "layout" for `unpacked`."""
        inputs, layout, positions = pack(batch.inputs, self.mask_style)
        return Batch({**inputs, "layout": layout}, batch.n_samples, batch.n_tokens, positions, batch.head_positions)

    @contextlib.contextmanager
    def unpacked(self, layout: Layout) -> Iterator[None]:
        """While open, the encoder's output is put back in the padded layout."""

        def hook(module, args, output):
            if isinstance(output, tuple):
                return (layout.unpack(output[0]), *output[1:])
            output.last_hidden_state = layout.unpack(output.last_hidden_state)
            return output

        handle = self.encoder.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
