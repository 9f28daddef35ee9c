"""Rows of similar length batched together, so that a padded batch is mostly real tokens.

Training batches, where a task asks for it ([training] group_by_length), are grouped as transformers'
`group_by_length` groups them: the epoch's shuffled order is cut into buckets of 50 batches' rows and
each bucket is sorted by length, so a batch holds rows of similar length; the batches are then shuffled
(seeded) so that an epoch does not run from long rows to short ones. It is off by default: where length
goes with the label, batches lose their label mix (on SMS spam, 16 of 30 grouped batches hold no spam
against 1 of 30 shuffled ones) and training changes, not only its speed. Evaluation needs no
randomness: its rows are always sorted by length, longest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

BUCKET_BATCHES = 50  # rows sorted together: 50 batches' worth, as transformers' LengthGroupedSampler


def grouped_batches(order: Sequence[int], lengths: Sequence[int], batch_size: int, generator) -> list[list[int]]:
    """Training batches (row indices) from a shuffled `order`: every row once, rows of similar length
    together, batches in an order drawn from `generator`."""
    bucket = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        rows = sorted(order[start : start + bucket], key=lambda i: -lengths[i])  # stable: ties keep the shuffle
        batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches (row indices): longest rows first, ties in row order."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
