"""Strategies on BERT-, GPT-2-, Llama- and T5-style tiny models: what trains, what is inserted."""

from __future__ import annotations

import pytest
import torch

from harness.measure.params import count_parameters
from harness.strategies import STRATEGIES, ModelContext, freeze_all_but
from harness.strategies.layers import discover, output_projections
from tests.helpers import HEADS, tiny_model

KINDS = ("bert", "gpt2", "llama", "t5")
BLOCKS = {"bert": 4, "gpt2": 4, "llama": 4, "t5": 4}  # t5: 2 encoder + 2 decoder blocks


def apply(kind: str, strategy: str, **options):
    model = tiny_model(kind)
    cls = STRATEGIES.get(strategy)
    applied = cls(cls.Options(**options)).apply(model, ModelContext(HEADS[kind], "SEQ_CLS"))
    freeze_all_but(applied.model, applied, HEADS[kind] if cls.trains else ())
    return applied.model


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def inputs(kind: str) -> dict:
    ids = torch.tensor([[5, 6, 7, 8, 9, 1], [11, 12, 13, 14, 15, 1]])  # 1 ends each: T5 pools at its eos
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.mark.parametrize("kind", KINDS)
def test_layer_discovery(kind):
    model = tiny_model(kind)
    layout = discover(model)
    assert len(layout.blocks) == BLOCKS[kind]
    assert layout.embedding_params, "embeddings must be found"
    embedding = model.get_input_embeddings().weight
    named = dict(model.named_parameters())
    assert any(named[n] is embedding for n in layout.embedding_params)
    for block in layout.blocks:
        assert output_projections(model, block), f"no sublayer output projection in {block}"


@pytest.mark.parametrize("kind", KINDS)
def test_trainable_counts_order(kind):
    options = {"adapter": {"bottleneck": 4}, "lora": {"r": 2}}  # sized for a 32-wide model
    counts = {
        s: count_parameters(apply(kind, s, **options.get(s, {})))["trainable"]
        for s in ("none", "full", "frozen-lower", "adapter", "lora")
    }
    assert counts["none"] == 0
    assert counts["full"] > counts["frozen-lower"] > counts["adapter"] > 0
    assert counts["frozen-lower"] > counts["lora"] > 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("strategy", ("full", "frozen-lower", "adapter", "lora"))
def test_fresh_head_always_trains(kind, strategy):
    model = apply(kind, strategy)
    head = HEADS[kind][0]
    head_params = [n for n in trainable_names(model) if head in n]
    assert head_params, f"{strategy} froze the fresh {head} head"


@pytest.mark.parametrize("kind", KINDS)
def test_frozen_lower_freezes_embeddings_and_lowest_blocks(kind):
    model = tiny_model(kind)
    layout = discover(model)
    model = apply(kind, "frozen-lower", layers=1)
    trainable = trainable_names(model)
    assert not trainable & set(layout.embedding_params)
    assert not any(n.startswith(layout.blocks[0] + ".") for n in trainable)
    for block in layout.blocks[1:]:
        assert any(n.startswith(block + ".") for n in trainable), f"{block} should train"


def test_frozen_lower_fraction_and_too_many_layers():
    model = apply("bert", "frozen-lower", fraction=0.75)
    assert not any(n.startswith("bert.encoder.layer.2.") for n in trainable_names(model))
    assert any(n.startswith("bert.encoder.layer.3.") for n in trainable_names(model))
    with pytest.raises(ValueError, match="has 4 blocks"):
        apply("bert", "frozen-lower", layers=9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", ("houlsby", "pfeiffer"))
def test_adapter_with_zero_init_and_no_layer_norms_leaves_the_model_unchanged(kind, placement):
    reference = tiny_model(kind).eval()
    with torch.no_grad():
        before = reference(**inputs(kind)).logits
        adapted = apply(kind, "adapter", placement=placement, bottleneck=8, init="zero", train_layer_norms=False)
        after = adapted.eval()(**inputs(kind)).logits
    torch.testing.assert_close(after, before)
    n_adapters = sum(1 for n, _ in adapted.named_modules() if n.endswith("adapter_down"))
    per_block = 1 if placement == "pfeiffer" else 2
    minimum = BLOCKS[kind] * per_block
    assert n_adapters >= minimum  # T5 decoder blocks have cross-attention too
    trainable = trainable_names(adapted)
    assert all("adapter_" in n or HEADS[kind][0] in n for n in trainable)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_as_published_starts_near_identity_and_trains_the_layer_norms(kind):
    from harness.strategies.adapter import HOULSBY_STD, layer_norm_parameters

    reference = tiny_model(kind).eval()
    with torch.no_grad():
        before = reference(**inputs(kind)).logits
        adapted = apply(kind, "adapter", bottleneck=8)  # the defaults: Houlsby et al. 2019
        after = adapted.eval()(**inputs(kind)).logits
    assert not torch.equal(after, before)  # small random weights both ways: near, not exactly, the identity
    torch.testing.assert_close(after, before, atol=0.05, rtol=0.05)
    for name, param in adapted.named_parameters():
        if name.endswith(("adapter_down.weight", "adapter_up.weight")):
            assert param.abs().max() <= 2 * HOULSBY_STD and 0.3 * HOULSBY_STD < param.std() < HOULSBY_STD
        if name.endswith(("adapter_down.bias", "adapter_up.bias")):
            assert not param.any()
    norms = layer_norm_parameters(adapted)
    assert norms and norms <= trainable_names(adapted)  # LayerNorm (BERT, GPT-2, T5) or RMSNorm (Llama)
    assert trainable_names(adapted) - norms == trainable_names(
        apply(kind, "adapter", bottleneck=8, train_layer_norms=False)
    )


def test_adapter_trains_to_change_outputs():
    model = apply("bert", "adapter", bottleneck=4)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if "adapter_up" in n}
    loss = model(**inputs("bert"), labels=torch.tensor([0, 1])).loss
    loss.backward()
    optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)


@pytest.mark.parametrize("kind", KINDS)
def test_lora_count_matches_peft(kind):
    model = apply(kind, "lora", r=4, target_modules=None if kind != "gpt2" else ("c_attn",))
    trainable, total = model.get_nb_trainable_parameters()
    assert count_parameters(model)["trainable"] == trainable
    assert count_parameters(model)["total"] == total


def test_lora_on_bert_counts_exactly():
    # r=8 on query and value of 4 blocks of width 32: 4 * 2 * (8*32 + 32*8); plus a trainable copy of the 2x32 head
    model = apply("bert", "lora", r=8, target_modules=("query", "value"))
    assert count_parameters(model)["trainable"] == 4 * 2 * (8 * 32 + 32 * 8) + (2 * 32 + 2)


@pytest.mark.parametrize(
    "method,config",
    [
        ("IA3", {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dense"]}),
        ("PROMPT_TUNING", {"num_virtual_tokens": 4}),
        ("LORA", {"r": 2, "use_dora": True, "target_modules": ["query"]}),
    ],
)
def test_peft_passthrough_methods_train_and_run(method, config):
    model = apply("bert", "peft", method=method, config=config)
    trainable, _ = model.get_nb_trainable_parameters()
    assert 0 < trainable == count_parameters(model)["trainable"]
    model(**inputs("bert"), labels=torch.tensor([0, 1])).loss.backward()


def test_peft_options_are_checked_against_peft():
    cls = STRATEGIES.get("peft")
    problems = cls.check_options(cls.Options(method="IA3", config={"target_modulez": ["key"]}))
    assert problems and problems[0][0] == "config.target_modulez" and "did you mean 'target_modules'" in problems[0][1]


def test_decoder_position_embeddings_count_as_embeddings():
    from transformers import BartConfig, BartForSequenceClassification

    model = BartForSequenceClassification(
        BartConfig(
            vocab_size=100,
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=64,
        )
    )
    layout = discover(model)
    assert len(layout.blocks) == 4
    assert {"model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"} <= set(
        layout.embedding_params
    )
