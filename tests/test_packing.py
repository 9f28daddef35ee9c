"""Packed training batches (the same rows on fewer positions, the same loss and gradients) for encoder
classifiers and causal LMs, and causal-LM losses computed on the scored positions only (the same loss
and perplexity)."""

from __future__ import annotations

import random

import pytest
import torch

from harness.config import load_matrix
from harness.data import load_rows
from harness.models import load_tokenizer
from harness.scenarios import SCENARIOS
from harness.scenarios.base import Batch
from harness.scenarios.packing import IGNORE, Packing, first_fit_decreasing
from tests.helpers import TINY, tiny_model, write_task
from tests.test_scenarios import write_scenario_task


def test_first_fit_decreasing_places_every_row_once_within_capacity():
    lengths = [random.Random(i).randint(1, 40) for i in range(200)]
    bins = first_fit_decreasing(lengths, 40)
    assert sorted(i for b in bins for i in b) == list(range(200))
    assert all(sum(lengths[i] for i in b) <= 40 for b in bins)
    assert len(bins) <= 1.25 * sum(lengths) / 40  # first fit decreasing stays within 11/9 OPT + 1
    assert first_fit_decreasing([3, 9, 3, 9, 1], 9) == [[1], [3], [0, 2, 4]]
    assert first_fit_decreasing([5, 4, 4], 8) == [[0], [1, 2]]  # a row that fills a bin's room exactly goes in


def _padded_batch(lengths: list[int], vocab: int = 100) -> dict:
    torch.manual_seed(1)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(1, vocab, (n,))
        mask[row, :n] = 1
    labels = torch.tensor([row % 2 for row in range(len(lengths))])
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}


def test_the_packed_mask_lets_a_row_see_only_itself_and_padding_only_padding():
    """Rows of 3, 2 and 3 tokens at capacity 3: bins [row 0], [row 2], [row 1 + one padding position]. The
    mask, by hand: each real token sees its own row's tokens (all of them: not causal unless asked), the
    padding position sees only itself; the same as 0 / the dtype's minimum for eager attention."""
    from harness.scenarios.packing import pack

    inputs = _padded_batch([3, 2, 3])
    packed, layout, positions = pack(inputs, "bool")
    assert positions == 9 and packed["attention_mask"].dtype == torch.bool
    full, own, pad = [True] * 3, [True, True, False], [False, False, True]
    expected = torch.tensor([[full] * 3, [full] * 3, [own, own, pad]])[:, None]  # bins x heads x query x key
    assert torch.equal(packed["attention_mask"], expected)
    assert packed["position_ids"].tolist() == [[0, 1, 2], [0, 1, 2], [0, 1, 0]]
    assert packed["input_ids"][2].tolist() == [*inputs["input_ids"][1, :2].tolist(), 0]
    assert torch.equal(packed["labels"], inputs["labels"])  # per-row entries are kept as they are
    causal, _, _ = pack(inputs, "bool", causal=True)
    assert torch.equal(causal["attention_mask"], expected & torch.ones(3, 3, dtype=torch.bool).tril())
    floats, _, _ = pack(inputs, "float")
    assert floats["attention_mask"].dtype == torch.float32
    assert torch.equal(floats["attention_mask"] == 0, expected)
    assert torch.all(floats["attention_mask"][~expected] == torch.finfo(torch.float32).min)
    moved = layout.to("meta")
    assert moved.padded_index.device.type == moved.packed_index.device.type == "meta"
    assert moved.padded_shape == (3, 3) and layout.packed_index.tolist() == list(range(8))
    assert layout.padded_index.tolist() == [0, 1, 2, 6, 7, 8, 3, 4]  # row 0, row 2, row 1


@pytest.mark.parametrize(("attention", "style"), [("sdpa", "bool"), ("eager", "float")])
def test_a_models_attention_decides_the_mask_it_gets(attention, style):
    """sdpa takes a boolean mask (a byte per entry), eager an additive float one; a packed batch keeps its
    row and token counts, which throughput is counted from."""
    from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM

    encoder = BertForSequenceClassification(BertConfig(vocab_size=100, attn_implementation=attention, **TINY))
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=100, num_key_value_heads=2, attn_implementation=attention, **TINY))
    for packing, _ in (Packing.for_encoder(encoder), Packing.for_causal_lm(lm)):
        assert packing.mask_style == style
        inputs = _padded_batch([3, 2, 3])
        if packing.causal:
            inputs["labels"] = inputs["input_ids"].clone()
        packed = packing.pack_batch(Batch(inputs, 3, 8, 9, None))
        mask = packed.inputs["attention_mask"]
        assert mask.dtype == (torch.bool if style == "bool" else torch.float32)
        assert (packed.n_samples, packed.n_tokens, packed.positions) == (3, 8, 9)


def _loss_and_grads(model, run) -> tuple[float, list[torch.Tensor]]:
    model.zero_grad()
    loss = run()
    loss.backward()
    return float(loss.detach()), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_packed_batch_gives_the_padded_batchs_loss_and_gradients_on_fewer_positions(attention):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, num_labels=2, attn_implementation=attention, **TINY)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0  # dropout draws differ by layout
    model = BertForSequenceClassification(config)
    lengths = [5, 17, 3, 16, 2, 7, 12, 1]
    inputs = _padded_batch(lengths)
    packing, why_not = Packing.for_encoder(model)
    assert packing is not None and why_not == ""
    packed = packing.pack_batch(Batch(dict(inputs), len(lengths), sum(lengths)))
    assert packed.inputs["input_ids"].shape == (4, 17)  # 68 positions for 63 tokens, against 8 x 17 = 136
    assert packed.slots == (63, 68)
    assert packed.inputs["labels"].tolist() == inputs["labels"].tolist()

    padded_loss, padded_grads = _loss_and_grads(model, lambda: model(**inputs).loss)
    packed_inputs = dict(packed.inputs)
    layout = packed_inputs.pop("layout")

    def packed_run():
        with packing.unpacked(layout):
            return model(**packed_inputs).loss

    packed_loss, packed_grads = _loss_and_grads(model, packed_run)
    assert packed_loss == pytest.approx(padded_loss, abs=1e-6)
    assert len(packed_grads) == len(padded_grads)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(packed_grads, padded_grads))
    assert not packing.encoder._forward_hooks  # the unpacking hook is gone after the step


def test_a_packed_causal_batch_gives_the_padded_batchs_loss_and_gradients(tiny_llama_dir, tmp_path):
    scenario, model = _causal(tmp_path, tiny_llama_dir)
    assert scenario.prepare_training(model) == {"lm_head_on": "target positions", "packed": True}

    def cut(text: str, words: int) -> str:
        return " ".join(text.split()[:words])

    sizes = [(40, 20), (3, 2), (5, 3), (30, 12), (2, 2), (8, 3)]  # words of input and target: lengths differ
    rows = [
        {**r, "input": cut(r["input"], i), "target": cut(r["target"], t)}
        for r, (i, t) in zip(scenario.train_rows, sizes)
    ]
    padded = scenario.training_batch(rows)
    packed = scenario.packing.pack_batch(padded)
    assert packed.inputs["input_ids"].size(0) < len(rows) and "labels" not in packed.inputs
    assert packed.slots[0] == padded.slots[0] and packed.slots[1] < padded.slots[1]
    assert packed.head_positions == padded.head_positions == int((padded.inputs["labels"] != IGNORE).sum())
    own_loss, own_grads = _loss_and_grads(model, lambda: model(**padded.on("cpu")).loss)
    packed_loss, packed_grads = _loss_and_grads(model, lambda: scenario.training_loss(model, packed.on("cpu")))
    assert packed_loss == pytest.approx(own_loss, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(packed_grads, own_grads))
    off = _causal(tmp_path, tiny_llama_dir, body="packing = false\n")[0]
    assert off.prepare_training(model)["why_not_packed"] == "[training] packing = false"


def test_packing_says_why_a_model_cannot_pack():
    from peft import PromptTuningConfig, get_peft_model

    no_encoder, why = Packing.for_encoder(tiny_model("gpt2"))
    assert (
        no_encoder is None
        and why == "GPT2ForSequenceClassification has no `encoder` module whose output could be unpacked"
    )
    from types import SimpleNamespace

    class Plain(torch.nn.Module):  # no base_model_prefix, and a config that may lack _attn_implementation
        def __init__(self, **config):
            super().__init__()
            self.config = SimpleNamespace(**config)

    assert Packing.for_encoder(Plain()) == (None, "attention implementation None takes no 4D mask")
    assert Packing.for_encoder(Plain(_attn_implementation="sdpa")) == (
        None,
        "Plain has no `encoder` module whose output could be unpacked",
    )
    prompted = get_peft_model(tiny_model("bert"), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4))
    virtual, why = Packing.for_encoder(prompted)
    assert virtual is None and "virtual tokens" in why
    flex = tiny_model("bert")
    flex.config._attn_implementation = "flex_attention"
    unmasked, why = Packing.for_encoder(flex)
    assert unmasked is None and "flex_attention" in why
    from transformers import LlamaConfig, LlamaForCausalLM

    causal = LlamaForCausalLM(LlamaConfig(vocab_size=100, num_key_value_heads=2, **TINY))
    packing, why = Packing.for_causal_lm(causal)
    assert packing is not None and packing.causal and why == ""
    prompted_lm = get_peft_model(causal, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert Packing.for_causal_lm(prompted_lm) == (None, "prompt-learning methods prepend virtual tokens to the rows")


def _classification(tmp_path, tiny_bert_dir, body: str = ""):
    name = "padded" if body else "packed"
    task = load_matrix([write_task(tmp_path, name, tiny_bert_dir, body=body)]).cells[0].task
    train, evaluation = load_rows(task, ("text", "label"))
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    return SCENARIOS.get("classification").create(task, tokenizer, "encoder", train * 4, evaluation)


def test_classification_packs_its_training_batches_unless_told_not_to(tiny_bert_dir, tmp_path):
    scenario = _classification(tmp_path, tiny_bert_dir)
    model, _ = scenario.load_model(str(tiny_bert_dir))
    padded = list(scenario.train_batches(16, torch.Generator().manual_seed(0)))
    decided = scenario.prepare_training(model)
    assert decided["packed"] is True and "why_not_packed" not in decided
    assert decided["class_weights"] == "none"  # and why: the tiny task's classes are balanced
    packed = list(scenario.train_batches(16, torch.Generator().manual_seed(0)))

    def efficiency(batches) -> float:
        return sum(b.slots[0] for b in batches) / sum(b.slots[1] for b in batches)

    assert [b.inputs["labels"].tolist() for b in packed] == [b.inputs["labels"].tolist() for b in padded]
    assert efficiency(packed) > efficiency(padded) + 0.05  # template rows vary little in length (0.79 vs 0.70)
    loss = scenario.training_loss(model, packed[0].on("cpu"))
    assert loss.requires_grad and torch.isfinite(loss)

    off = _classification(tmp_path, tiny_bert_dir, body="packing = false\n")
    assert off.prepare_training(model)["packed"] is False
    assert off.prepare_training(model)["why_not_packed"] == "[training] packing = false"
    assert all("layout" not in b.inputs for b in off.train_batches(16, torch.Generator().manual_seed(0)))


def _causal(tmp_path, tiny_llama_dir, body: str = ""):
    path = write_scenario_task(tmp_path, "summarization-causal", tiny_llama_dir)
    if body:  # added to the task's [training] table
        text = path.read_text().replace("[training]\n", "[training]\n" + body)
        path = path.with_name("padded.toml")
        path.write_text(text)
    task = load_matrix([path]).cells[0].task
    train, evaluation = load_rows(task, ("input", "target"))
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    scenario = SCENARIOS.get("generation").create(task, tokenizer, "causal", train, evaluation)
    torch.manual_seed(0)
    model, _ = scenario.load_model(str(tiny_llama_dir))
    return scenario, model


def test_causal_training_loss_on_scored_positions_is_the_models_own_loss(tiny_llama_dir, tmp_path):
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    scenario, model = _causal(tmp_path, tiny_llama_dir)
    assert scenario.prepare_training(model)["lm_head_on"] == "target positions"
    scenario.packing = None  # padded batches: the model's own loss takes them
    batch = scenario.training_batch(scenario.train_rows[:4])
    assert (batch.inputs["labels"] == IGNORE).float().mean() > 0.3  # prompt positions are not scored
    seen = []
    handle = model.lm_head.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[:-1]))
    own = model(**batch.on("cpu")).loss
    ours = scenario.training_loss(model, batch.on("cpu"))
    handle.remove()
    assert float(ours) == pytest.approx(float(own), rel=1e-5)
    scored = int((batch.inputs["labels"][:, 1:] != IGNORE).sum())
    assert seen[0] == batch.inputs["input_ids"].shape and seen[1] == (scored,)  # the head ran on targets only
    assert batch.head_positions == scored  # what the FLOPs count takes

    lora = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj"]))
    assert float(scenario.training_loss(lora, batch.on("cpu"))) == pytest.approx(float(own), rel=1e-5)
    _, fresh = _causal(tmp_path, tiny_llama_dir)
    prompted = get_peft_model(fresh, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    assert scenario.prepare_training(prompted) == {
        "lm_head_on": "every position",
        "packed": False,
        "why_not_packed": "the head cannot run on chosen positions",
    }
    expected = prompted(**batch.on("cpu")).loss  # peft scores the inputs' positions past the virtual tokens
    assert float(scenario.training_loss(prompted, batch.on("cpu"))) == pytest.approx(float(expected), rel=1e-5)


def test_perplexity_on_scored_positions_matches_one_computed_from_every_position(tiny_llama_dir, tmp_path):
    scenario, model = _causal(tmp_path, tiny_llama_dir)
    model.eval()
    perplexity, items = scenario.perplexity(model, 3, "cpu")
    nll, tokens, expected_items = 0.0, 0, []
    with torch.no_grad():
        for row in scenario.eval_rows:  # one row at a time, every position's logits
            inputs = scenario.training_batch([row]).on("cpu")
            labels = inputs.pop("labels")[0, 1:]
            logits = model(**inputs).logits[0, :-1]
            row_nll = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="sum")
            n = int((labels != IGNORE).sum())
            nll, tokens = nll + float(row_nll), tokens + n
            expected_items.append(float(row_nll) / n)
    assert perplexity == pytest.approx(torch.exp(torch.tensor(nll / tokens)).item(), rel=1e-4)
    assert items == pytest.approx(expected_items, rel=1e-4)


def test_scenarios_that_do_not_pack_say_why(tiny_bert_dir, tiny_t5_dir, tmp_path):
    cases = [
        ("qa-extractive", tiny_bert_dir, "encoder", "its span loss scores every position of a window"),
        ("summarization-seq2seq", tiny_t5_dir, "seq2seq", "does not pack its training batches"),
    ]
    for name, model_dir, kind, reason in cases:
        task = load_matrix([write_scenario_task(tmp_path, name, model_dir)]).cells[0].task
        scenario_class = SCENARIOS.get(task.task.scenario)
        train, evaluation = load_rows(task, scenario_class.required_fields(task.scenario))
        scenario = scenario_class.create(task, load_tokenizer(str(model_dir)), kind, train, evaluation)
        decided = scenario.prepare_training(scenario.load_model(str(model_dir))[0])
        assert decided["packed"] is False and reason in decided["why_not_packed"]
        assert scenario.packing is None
