"""Length grouping: training batches of similar-length rows (seeded, opt-in), evaluation always sorted by
length, and results put back in row order."""

from __future__ import annotations

import contextlib
import random

import torch

from harness.config import load_matrix
from harness.data import load_rows
from harness.models import load_tokenizer
from harness.scenarios import SCENARIOS
from harness.scenarios.lengths import grouped_batches, sorted_batches
from tests.helpers import write_task
from tests.test_scenarios import write_scenario_task


def _efficiency(batches, lengths) -> float:
    real = sum(lengths[i] for batch in batches for i in batch)
    return real / sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


def test_grouped_batches_hold_every_row_once_and_pad_little():
    lengths = [random.Random(i).randint(4, 120) for i in range(1000)]
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    batches = grouped_batches(order, lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert sum(len(batch) < 16 for batch in batches) == 1  # 1000 = 62 x 16 + 8: one short batch
    plain = [order[i : i + 16] for i in range(0, 1000, 16)]
    assert _efficiency(plain, lengths) < 0.7 < 0.95 < _efficiency(batches, lengths)


def test_grouped_batches_are_seeded_and_not_long_to_short():
    lengths = list(range(800))
    order = list(range(800))
    first = grouped_batches(order, lengths, 16, torch.Generator().manual_seed(1))
    assert first == grouped_batches(order, lengths, 16, torch.Generator().manual_seed(1))
    assert first != grouped_batches(order, lengths, 16, torch.Generator().manual_seed(2))
    longest = [max(lengths[i] for i in batch) for batch in first]
    assert longest != sorted(longest, reverse=True)  # the batch order is shuffled


def test_sorted_batches_put_the_longest_first_ties_in_row_order():
    assert sorted_batches([3, 9, 3, 9, 1], 2) == [[1, 3], [0, 2], [4]]


def _classification(tmp_path, tiny_bert_dir, grouped: bool):
    body = "group_by_length = true\n" if grouped else ""  # appended to the [training] table; off by default
    task = load_matrix([write_task(tmp_path, f"cls-{grouped}", tiny_bert_dir, body=body)]).cells[0].task
    assert task.training.group_by_length is grouped
    train, evaluation = load_rows(task, ("text", "label"))
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    return SCENARIOS.get("classification").create(task, tokenizer, "encoder", train * 4, evaluation)


def test_classification_training_batches_pad_less_when_grouped(tiny_bert_dir, tmp_path):
    def efficiency(scenario) -> float:
        slots = [b.slots for b in scenario.train_batches(16, torch.Generator().manual_seed(0))]
        return sum(real for real, _ in slots) / sum(total for _, total in slots)

    grouped, plain = (_classification(tmp_path, tiny_bert_dir, g) for g in (True, False))
    assert efficiency(grouped) >= 0.85 > efficiency(plain)


def test_sorted_evaluation_gives_predictions_in_row_order(tiny_bert_dir, tmp_path):
    scenario = _classification(tmp_path, tiny_bert_dir, False)
    torch.manual_seed(0)
    model, _ = scenario.load_model(str(tiny_bert_dir))
    model.eval()

    def by_length(module, args, kwargs, output):  # an answer that depends on the row: its length's parity
        odd = kwargs["attention_mask"].sum(dim=1) % 2
        output.logits[:, 0] += 100.0 * (1 - odd)
        output.logits[:, 1] += 100.0 * odd
        return output

    model.register_forward_hook(by_length, with_kwargs=True)
    seen = []

    @contextlib.contextmanager
    def on_batch(batch):
        seen.append(batch.slots)
        yield batch

    batched = scenario.evaluate(model, 8, "cpu", on_batch)  # length-sorted batches of 8
    real, padded = sum(r for r, _ in seen), sum(t for _, t in seen)
    one_by_one = scenario.evaluate(model, 1, "cpu", lambda batch: contextlib.nullcontext(batch))  # no padding
    assert batched.predictions == one_by_one.predictions
    assert len(set(batched.predictions)) > 1  # one class for every row would hide a reordering
    assert batched.references == [str(r["label"]) for r in scenario.eval_rows]
    in_row_order = [
        scenario.training_batch(scenario.eval_rows[i : i + 8]).slots for i in range(0, len(scenario.eval_rows), 8)
    ]
    assert real == sum(r for r, _ in in_row_order) and padded < sum(t for _, t in in_row_order)


def test_length_grouping_is_off_unless_asked_for(tiny_bert_dir, tmp_path):
    task = load_matrix([write_task(tmp_path, "default", tiny_bert_dir)]).cells[0].task
    assert task.training.group_by_length is False


def test_generation_outputs_land_on_their_own_rows(tiny_llama_dir, tmp_path):
    """A fake model answers each prompt with a token naming the prompt's length: every output must be
    its own row's, though the batches ran longest prompts first."""
    path = write_scenario_task(tmp_path, "summarization-causal", tiny_llama_dir, max_length=512)
    task = load_matrix([path]).cells[0].task
    tokenizer = load_tokenizer(str(tiny_llama_dir))
    train, evaluation = load_rows(task, ("input", "target"))
    scenario = SCENARIOS.get("generation").create(task, tokenizer, "causal", train, evaluation)
    batches = []

    class Answerer:
        def generate(self, input_ids, attention_mask, **settings):
            batches.append(attention_mask.sum(dim=1).tolist())
            answer = attention_mask.sum(dim=1, keepdim=True) + 10  # a token id per prompt length
            return torch.cat([input_ids, answer, torch.full_like(answer, tokenizer.eos_token_id)], dim=1)

    outputs = scenario.generate(Answerer(), 2, "cpu", lambda batch: contextlib.nullcontext(batch))
    prompts = [scenario.prompt(r) for r in evaluation]
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    assert len(set(lengths)) > 2 and lengths != sorted(lengths, reverse=True)
    assert outputs == [tokenizer.decode([n + 10], skip_special_tokens=True).strip() for n in lengths]
    assert [n for batch in batches for n in batch] == sorted(lengths, reverse=True)
