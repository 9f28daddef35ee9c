"""Packed training batches: the same rows, on fewer positions (classification on encoders, causal LMs).

A padded batch spends positions on padding wherever its rows differ in length (on SMS spam 6 in 10).
Grouping rows by length removes most of it but changes which rows share a batch, and where length goes
with the label it changes what is learned (harness.scenarios.lengths). Packing keeps the batch training
would build anyway and only changes its layout: the rows are laid end to end, first fit by decreasing
length, into bins as long as the batch's longest row; each row attends only to itself (a block-diagonal
attention mask) and keeps its own position ids, starting at 0. The encoder's output is then put back
in the padded layout before the model's head reads it, so the head sees each row's [CLS] state as it
would have. A causal LM's rows attend causally within themselves, and its loss reads each position's
next token in its own row (`next_labels`), so nothing is predicted across a row boundary and no
unpacking is needed. Per row the model computes what it computes on the padded batch, up to float
rounding and which dropout draws fall where (tests/test_packing.py checks the losses and gradients).

Packing needs an attention implementation that takes a 4D mask (sdpa or eager) and input ids as the
model's input (no prompt-learning virtual tokens); an encoder also needs a backbone whose `encoder`
returns the hidden states (BERT, RoBERTa, ELECTRA, DeBERTa style), a causal LM a forward that takes
position ids. `Packing.for_encoder` and `Packing.for_causal_lm` say why not otherwise, and training
then runs padded batches.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from harness.models import base_model, prepends_virtual_tokens
from harness.scenarios.base import Batch

MASKED_ATTENTION = ("sdpa", "eager")  # implementations that take a ready 4D mask as it is
IGNORE = -100  # label value the loss skips (transformers' convention)


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


def pack(inputs: dict, mask_style: str, causal: bool = False) -> tuple[dict, Layout, int]:
    """Packed model inputs for a right-padded batch (input_ids, attention_mask and any other per-token
    input such as token_type_ids or next_labels; other entries such as a classifier's labels are kept as
    they are), its layout, and the number of positions the packed batch holds."""
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
        values = inputs[key].new_full((len(bins) * capacity,), IGNORE if key == "next_labels" else 0)
        values[layout.packed_index] = inputs[key].reshape(-1)[layout.padded_index]
        packed[key] = values.view(len(bins), capacity)
    packed["position_ids"] = positions
    allowed = segment[:, :, None] == segment[:, None, :]  # bins x query x key
    if causal:
        allowed &= torch.ones(capacity, capacity, dtype=torch.bool).tril()
    allowed = allowed[:, None]  # bins x 1 (every head) x query x key
    packed["attention_mask"] = (
        allowed if mask_style == "bool" else torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo().min)
    )
    return packed, layout, len(bins) * capacity


def next_labels(labels: torch.Tensor) -> torch.Tensor:
    """Each position's next token where it is scored, else IGNORE: the causal-LM loss's targets, which
    stay within their row when packed."""
    following = torch.full_like(labels, IGNORE)
    following[:, :-1] = labels[:, 1:]
    return following


class Packing:
    """Packing for one model: how its attention takes a mask, whether it is causal, and for an encoder
    the module whose output is put back in the padded layout."""

    def __init__(self, mask_style: str, causal: bool = False, encoder: torch.nn.Module | None = None) -> None:
        self.mask_style = mask_style
        self.causal = causal
        self.encoder = encoder

    @staticmethod
    def _problem(model) -> str:
        if prepends_virtual_tokens(model):
            return "prompt-learning methods prepend virtual tokens to the rows"
        implementation = getattr(base_model(model).config, "_attn_implementation", None)
        if implementation not in MASKED_ATTENTION:
            return f"attention implementation {implementation!r} takes no 4D mask"
        return ""

    @staticmethod
    def _mask_style(model) -> str:
        return "float" if base_model(model).config._attn_implementation == "eager" else "bool"

    @classmethod
    def for_encoder(cls, model) -> tuple[Packing | None, str]:
        """The packing for an encoder classifier, or None and the reason it cannot pack."""
        if problem := cls._problem(model):
            return None, problem
        base = base_model(model)
        backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
        encoder = getattr(backbone, "encoder", None)
        if not isinstance(encoder, torch.nn.Module):
            return None, f"{type(base).__name__} has no `encoder` module whose output could be unpacked"
        return cls(cls._mask_style(model), encoder=encoder), ""

    @classmethod
    def for_causal_lm(cls, model) -> tuple[Packing | None, str]:
        """The packing for a causal LM, or None and the reason it cannot pack."""
        if problem := cls._problem(model):
            return None, problem
        base = base_model(model)
        if "position_ids" not in inspect.signature(base.forward).parameters:
            return None, f"{type(base).__name__} takes no position ids"
        return cls(cls._mask_style(model), causal=True), ""

    def pack_batch(self, batch: Batch) -> Batch:
        """The batch packed. An encoder's inputs carry the layout under "layout" for `unpacked`; a causal
        LM's carry `next_labels` in place of labels."""
        inputs = dict(batch.inputs)
        if self.causal:
            inputs["next_labels"] = next_labels(inputs.pop("labels"))
        packed, layout, positions = pack(inputs, self.mask_style, self.causal)
        if self.encoder is not None:
            packed["layout"] = layout
        return Batch(packed, batch.n_samples, batch.n_tokens, positions, batch.head_positions)

    @contextlib.contextmanager
    def unpacked(self, layout: Layout) -> Iterator[None]:
        """While open, the encoder's output is put back in the padded layout."""
        assert self.encoder is not None, "only an encoder's output is unpacked"

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
