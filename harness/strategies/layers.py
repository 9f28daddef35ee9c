"""Architecture-generic discovery of embeddings, transformer blocks and output projections.

Works on encoder (BERT, RoBERTa), decoder (GPT-2, Llama) and encoder-decoder
(T5, BART) models without per-architecture tables: blocks are the outermost
ModuleLists whose entries share one class; embeddings are the parameters
registered before the first block, plus any other named like an embedding
outside the blocks (a decoder's own position embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# Last projection of an attention or feed-forward sublayer, by attribute name,
# across BERT/RoBERTa (`output.dense`), GPT-2 (`c_proj`), Llama (`o_proj`,
# `down_proj`), T5 (`o`, `wo`), BART/OPT (`out_proj`, `fc2`).
OUTPUT_PROJECTIONS = ("o_proj", "out_proj", "c_proj", "o", "wo", "down_proj", "fc2", "dense_4h_to_h")


@dataclass(frozen=True)
class Layout:
    """Where the parts of a transformer live, as qualified names."""

    embedding_params: tuple[str, ...]
    blocks: tuple[str, ...]  # in depth order: encoder blocks first, then decoder blocks


def _block_lists(model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
    found: list[tuple[str, nn.ModuleList]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if any(name.startswith(prefix + ".") for prefix, _ in found):
            continue  # nested inside a block already found
        kinds = {type(child) for child in module}
        if len(kinds) == 1 and sum(p.numel() for p in module[0].parameters()) > 0:
            found.append((name, module))
    return found


def discover(model: nn.Module) -> Layout:
    """The layout of `model`; ValueError if it has no recognisable blocks."""
    lists = _block_lists(model)
    if not lists:
        raise ValueError(f"cannot find transformer blocks in {type(model).__name__}")
    blocks = tuple(f"{name}.{i}" for name, module in lists for i in range(len(module)))
    in_blocks = tuple(b + "." for b in blocks)
    embedding_params: list[str] = []
    seen_block = False
    for name, _ in model.named_parameters():
        if name.startswith(in_blocks):
            seen_block = True
        elif not seen_block or "embed" in name.lower():  # e.g. a decoder's position embeddings (BART)
            embedding_params.append(name)
    return Layout(tuple(embedding_params), blocks)


def output_projections(model: nn.Module, block: str, names: tuple[str, ...] | None = None) -> list[str]:
    """Qualified names of the sublayer output projections inside one block."""
    wanted = names or OUTPUT_PROJECTIONS
    found = []
    for name, module in model.get_submodule(block).named_modules():
        leaf = name.rsplit(".", 1)[-1]
        is_projection = leaf in wanted or (names is None and name.endswith("output.dense"))
        if is_projection and hasattr(module, "weight") and module.weight is not None and module.weight.dim() == 2:
            found.append(f"{block}.{name}")
    return found
